//! One function per subcommand.

use crate::output::{self, bytes, duration, table};
use crate::stream;
use crate::{Command, ImageCommand};
use anyhow::{Context, Result, bail};
use std::process::ExitCode;
use verse_api::{
    ApplyAction, ApplyReport, ApplyRequest, Client, EnvInfo, ExecRequest, GenerationInfo,
    GenerationsGcReport, GenerationsGcRequest, ImageInfo, ImportReport, ImportRequest, Paths,
    RollbackRequest, RunRequest, VerifyReport,
};

pub fn dispatch(command: Command, paths: Paths) -> Result<ExitCode> {
    match command {
        Command::Doctor { json, probe_vm } => doctor(&paths, json, probe_vm),
        Command::Daemon {
            listen,
            tls_cert,
            tls_key,
            web,
        } => {
            let tcp = match (listen, tls_cert, tls_key) {
                (Some(addr), Some(cert), Some(key)) => {
                    Some(verse_daemon::tcp::TcpConfig { addr, cert, key })
                }
                _ => None,
            };
            daemon(paths, tcp, &web)
        }
        Command::Key(key) => crate::images::key(key, &paths),
        Command::Fs(command) => crate::fs::run(command, &paths),
        Command::Compose {
            prompt,
            json,
            name,
            into,
            apply,
        } => crate::compose::run(
            crate::compose::ComposeArgs {
                prompt,
                json,
                name,
                into,
                apply,
            },
            paths,
        ),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(client_command(command, Client::new(&paths)))
        }
    }
}

fn doctor(paths: &Paths, json: bool, probe_vm: bool) -> Result<ExitCode> {
    let mut report = verse_doctor::probe(&paths.root);
    let exe = std::env::current_exe().context("finding the verse binary")?;
    report
        .checks
        .extend(crate::vm_doctor::checks(paths, &exe, probe_vm));
    report.checks.push(crate::idmap_doctor::idmap_check(paths));
    if json {
        output::json(&report);
    } else {
        println!("{}", report.to_string().trim_end());
    }
    Ok(if report.containers_can_run() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Log to stderr, filtered by VERSE_LOG (default `default`).
pub(crate) fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VERSE_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn daemon(paths: Paths, tcp: Option<verse_daemon::tcp::TcpConfig>, web: &str) -> Result<ExitCode> {
    init_logging("info");
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the daemon needs root (namespaces, cgroups and mounts); run it with sudo or as root"
        );
    }
    let exe = std::env::current_exe().context("finding the verse binary for the shims")?;
    crate::fs::mount_for_daemon(&paths)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let web = if web == verse_daemon::DEFAULT_WEB_ADDR {
        verse_daemon::WebListen::Default
    } else {
        verse_daemon::WebListen::parse(web).map_err(anyhow::Error::msg)?
    };
    runtime.block_on(verse_daemon::serve(paths, exe, tcp, web))?;
    Ok(ExitCode::SUCCESS)
}

fn parse_env_pairs(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("`{pair}` is not KEY=VALUE"),
        })
        .collect()
}

fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

enum EnvAct {
    Up,
    Down,
    Rm,
}

/// `verse up/down/rm NAME...`: each env in turn; one that fails is reported
/// and the rest still go ahead. Exit code 1 if any failed.
async fn each_env(client: &Client, names: &[String], act: EnvAct) -> Result<ExitCode> {
    let mut failed = 0;
    for name in names {
        let done: Result<String> = match act {
            EnvAct::Up => client
                .post::<_, EnvInfo>(&format!("/v1/envs/{name}/up"), &())
                .await
                .map(|env| env.state.to_string()),
            EnvAct::Down => client
                .post::<_, EnvInfo>(&format!("/v1/envs/{name}/down"), &())
                .await
                .map(|env| env.state.to_string()),
            EnvAct::Rm => client
                .delete::<verse_api::Removed>(&format!("/v1/envs/{name}"))
                .await
                .map(|_| "removed".to_string()),
        }
        .map_err(anyhow::Error::from);
        match done {
            Ok(state) => println!("{name}: {state}"),
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => {
                failed += 1;
                eprint!("{name}: ");
                crate::output::report(&e);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn client_command(command: Command, client: Client) -> Result<ExitCode> {
    match command {
        Command::Image(
            image @ (ImageCommand::Build { .. }
            | ImageCommand::Inspect { .. }
            | ImageCommand::Rm { .. }
            | ImageCommand::Gc { .. }
            | ImageCommand::Sign { .. }
            | ImageCommand::Export { .. }),
        ) => return crate::images::image(image, &client).await,
        Command::Image(ImageCommand::Import { name, path, json }) => {
            let (path, tag) = crate::images::split_tag(&path);
            let path = absolute(std::path::Path::new(&path))?;
            let request = ImportRequest {
                name,
                path: path.display().to_string(),
                tag,
            };
            let report: ImportReport = if json {
                client.post("/v1/images", &request).await?
            } else {
                crate::images::import_with_progress(&client, &request).await?
            };
            if json {
                output::json(&report);
            } else {
                let image = &report.image;
                println!(
                    "imported {} from {}: {} files, {} ({} new) in {} ms",
                    image.name,
                    path.display(),
                    image.files,
                    bytes(image.size),
                    bytes(report.new_bytes),
                    report.millis
                );
                println!("layer root {}", image.root);
                for note in crate::images::import_notes(&report) {
                    println!("{note}");
                }
            }
        }
        Command::Image(ImageCommand::Ls { json }) => {
            let images: Vec<ImageInfo> = client.get("/v1/images").await?;
            if json {
                output::json(&images);
            } else {
                let rows: Vec<Vec<String>> = images
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            i.root.chars().take(16).collect(),
                            bytes(i.size),
                            i.files.to_string(),
                            i.layers.to_string(),
                            bytes(i.unique_bytes),
                            bytes(i.shared_bytes),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME", "ROOT", "SIZE", "FILES", "LAYERS", "UNIQUE", "SHARED",
                    ],
                    &rows,
                );
            }
        }
        Command::Image(ImageCommand::Verify { name, json }) => {
            let report: VerifyReport = client.get(&format!("/v1/images/{name}/verify")).await?;
            if json {
                output::json(&report);
            } else if report.changes.is_empty() {
                println!(
                    "ok: image {} matches its layer root {}",
                    report.image, report.root
                );
            } else {
                for change in &report.changes {
                    println!("{:<8} {}  {}", change.kind, change.path, change.detail);
                }
                eprintln!(
                    "image {}: {} path(s) differ from layer root {}",
                    report.image,
                    report.changes.len(),
                    report.root
                );
            }
            if !report.changes.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Apply {
            file,
            dry_run,
            json,
        } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let spec_dir = absolute(&file)?.parent().map(|d| d.display().to_string());
            let request = ApplyRequest {
                file_name: file.display().to_string(),
                source,
                dry_run,
                spec_dir,
            };
            let report: ApplyReport = client.post("/v1/apply", &request).await?;
            return Ok(print_apply(&report, json, dry_run));
        }
        Command::Generations {
            action: Some(crate::GenerationsCommand::Gc { keep, json }),
            ..
        } => {
            let report: GenerationsGcReport = client
                .post("/v1/generations/gc", &GenerationsGcRequest { keep })
                .await?;
            if json {
                output::json(&report);
            } else if report.removed.is_empty() {
                println!(
                    "nothing to remove: {} generation(s) kept",
                    report.kept.len()
                );
            } else {
                let removed: Vec<String> = report.removed.iter().map(u64::to_string).collect();
                let kept: Vec<String> = report.kept.iter().map(u64::to_string).collect();
                println!(
                    "removed generation(s) {}; kept {}",
                    removed.join(", "),
                    kept.join(", ")
                );
            }
        }
        Command::Generations { json, action: None } => {
            let generations: Vec<GenerationInfo> = client.get("/v1/generations").await?;
            if json {
                output::json(&generations);
            } else {
                let rows: Vec<Vec<String>> = generations
                    .iter()
                    .map(|g| {
                        vec![
                            format!("{}{}", g.id, if g.active { " *" } else { "" }),
                            ago(g.created_at),
                            g.digest
                                .trim_start_matches("blake3:")
                                .chars()
                                .take(12)
                                .collect(),
                            g.envs.join(","),
                            g.source_file.clone(),
                        ]
                    })
                    .collect();
                table(&["GEN", "CREATED", "DIGEST", "ENVS", "FILE"], &rows);
            }
        }
        Command::Rollback { generation, json } => {
            let report: ApplyReport = client
                .post("/v1/rollback", &RollbackRequest { generation })
                .await?;
            return Ok(print_apply(&report, json, false));
        }
        Command::Ls { json } => {
            let envs: Vec<EnvInfo> = client.get("/v1/envs").await?;
            if json {
                output::json(&envs);
            } else {
                let rows: Vec<Vec<String>> = envs
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            match (e.state, e.exit_code) {
                                (verse_api::EnvState::Failed, Some(code)) => {
                                    format!("failed ({code})")
                                }
                                (state, _) => state.to_string(),
                            },
                            e.backend.to_string(),
                            e.image.clone(),
                            e.cpu.map_or("-".into(), |c| format!("{c}")),
                            e.memory.map_or("-".into(), bytes),
                            e.uptime_secs.map_or("-".into(), duration),
                            e.health.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME", "STATE", "BACKEND", "IMAGE", "CPU", "MEMORY", "UPTIME", "HEALTH",
                    ],
                    &rows,
                );
                for e in envs.iter().filter(|e| e.note.is_some()) {
                    println!(
                        "note: {}: {}",
                        e.name,
                        e.note.as_deref().unwrap_or_default()
                    );
                }
            }
        }
        Command::Up { names } => return each_env(&client, &names, EnvAct::Up).await,
        Command::Down { names } => return each_env(&client, &names, EnvAct::Down).await,
        Command::Rm { names } => return each_env(&client, &names, EnvAct::Rm).await,
        Command::Exec {
            tty,
            env,
            workdir,
            name,
            command,
        } => {
            let (rows, cols) = stream::terminal_size();
            let request = ExecRequest {
                argv: command,
                env: parse_env_pairs(&env)?,
                tty,
                cwd: workdir,
                rows,
                cols,
            };
            return stream::exec(&client, &name, request).await;
        }
        Command::Shell { name, shell } => {
            let (rows, cols) = stream::terminal_size();
            let tty = stream::stdin_is_tty();
            let request = ExecRequest {
                argv: vec![shell, "-l".into()],
                env: Vec::new(),
                tty,
                cwd: None,
                rows,
                cols,
            };
            return stream::exec(&client, &name, request).await;
        }
        Command::Logs { name, follow } => stream::logs(&client, &name, follow).await?,
        Command::Net(command) => crate::net::run(&client, command).await?,
        Command::Run {
            rm,
            name,
            tty,
            env,
            disk,
            image,
            command,
        } => {
            let (rows, cols) = stream::terminal_size();
            let request = RunRequest {
                image,
                name,
                rm,
                argv: command,
                env: parse_env_pairs(&env)?,
                tty,
                rows,
                cols,
                disk,
            };
            return stream::run(&client, request).await;
        }
        Command::Web => crate::web::print_url(&client).await?,
        Command::Lifecycle(command) => return crate::lifecycle::run(command, &client).await,
        Command::Audit(command) => return crate::audit::run(command, &client).await,
        Command::Token(command) => return crate::token::run(command, &client).await,
        Command::Quarantine(command) => return crate::quarantine::run(command, &client).await,
        Command::Copy { from, to, json } => {
            return crate::quarantine::copy(&client, from, to, json).await;
        }
        Command::Doctor { .. }
        | Command::Daemon { .. }
        | Command::Shim { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Spec(_)
        | Command::BuildStep { .. }
        | Command::Key(_)
        | Command::Fs(_)
        | Command::Compose { .. } => {
            unreachable!("handled before")
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_apply(report: &ApplyReport, json: bool, dry_run: bool) -> ExitCode {
    if json {
        output::json(report);
    } else {
        for action in &report.actions {
            let detail = if action.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", action.detail)
            };
            let verb = match (dry_run, action.action) {
                (true, ApplyAction::Unchanged) => "unchanged".to_string(),
                (true, verb) => format!("would {verb}"),
                (false, verb) => verb.to_string(),
            };
            println!("{:<10} {}{}", action.env, verb, detail);
        }
        for failure in &report.failures {
            eprintln!(
                "{:<10} FAILED to {}: {}",
                failure.env, failure.action, failure.detail
            );
        }
        if let Some(generation) = report.generation {
            println!("generation {generation} is active");
        }
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!("{} ago", duration((now - unix).max(0) as u64))
}
