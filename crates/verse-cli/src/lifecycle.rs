//! Lifecycle subcommands: pause, snapshots, restore, hibernate, events, diff.

use crate::output::{self, bytes, table};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use verse_api::{
    Applies, ApplyRequest, Client, DiffReport, EnvInfo, EventInfo, RestoreRequest, SnapshotInfo,
    SnapshotRequest,
};

#[derive(Subcommand)]
pub enum LifecycleCommand {
    /// Freeze every process of a running env in place (cgroup freezer; vm envs: QMP stop).
    Pause { name: String },
    /// Let a paused env run again.
    Unpause { name: String },
    /// Change an env's cpu, memory or pids limit; a running env gets it live (its
    /// cgroup), a stopped one at its next start. It holds until `verse apply` declares
    /// the env again.
    Limit {
        name: String,
        /// Cores, fractions allowed (e.g. 1.5).
        #[arg(long)]
        cpu: Option<f64>,
        /// A size, e.g. 512MiB.
        #[arg(long, value_parser = memory_size)]
        memory: Option<u64>,
        /// Processes.
        #[arg(long)]
        pids: Option<u64>,
    },
    /// Snapshot an env's writable layer: `snapshot NAME [LABEL]`, or `snapshot rm NAME SNAPSHOT`.
    ///
    /// The env is frozen only while its writable layer is read into the store;
    /// unchanged files are shared with everything the store holds. Volumes are
    /// included only with --volumes (read-write ones; `verse restore` then brings
    /// their host directories back too).
    #[command(verbatim_doc_comment)]
    Snapshot {
        /// NAME [LABEL], or: rm NAME SNAPSHOT
        #[arg(required = true, num_args = 1..=3, value_name = "ARGS")]
        args: Vec<String>,
        /// Also copy the env's read-write volumes (their host directories).
        #[arg(long)]
        volumes: bool,
        #[arg(long)]
        json: bool,
    },
    /// List an env's snapshots with their size and time.
    Snapshots {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Bring an env's writable layer (and volumes, if the snapshot has them) back to a snapshot (by id or label); restarts it if it ran.
    Restore { name: String, snapshot: String },
    /// Save a running env's processes to disk and free their memory (CRIU; vm envs: QMP migration to a file).
    Hibernate {
        name: String,
        /// Drop a hibernated env's saved processes instead (it becomes stopped).
        #[arg(long)]
        discard: bool,
        /// How long CRIU may take to stop the env's processes (e.g. "30s") before it gives
        /// up and lets them run on; whole seconds. Container envs; default CRIU's (10s).
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
        timeout: Option<u64>,
    },
    /// Bring a hibernated env back with its processes where they were.
    Resume { name: String },
    /// Show lifecycle events (every transition, with time and cause).
    Events {
        /// Keep printing new events as they happen.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only this env's events.
        #[arg(long)]
        env: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show what applying a spec would change per env, and whether it applies live or needs a restart.
    Diff {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: LifecycleCommand, client: &Client) -> Result<ExitCode> {
    match command {
        LifecycleCommand::Pause { name } => {
            let env: EnvInfo = client.post(&format!("/v1/envs/{name}/pause"), &()).await?;
            println!("{}: {}", env.name, env.state);
        }
        LifecycleCommand::Limit {
            name,
            cpu,
            memory,
            pids,
        } => {
            let request = verse_api::LimitsRequest { cpu, memory, pids };
            let env: EnvInfo = client
                .post(&format!("/v1/envs/{name}/limits"), &request)
                .await?;
            let or_max = |v: Option<String>| v.unwrap_or_else(|| "max".into());
            println!(
                "{}: cpu {} memory {} pids {}",
                env.name,
                or_max(env.cpu.map(|c| c.to_string())),
                or_max(env.memory.map(bytes)),
                or_max(env.pids.map(|p| p.to_string()))
            );
        }
        LifecycleCommand::Unpause { name } => {
            let env: EnvInfo = client
                .post(&format!("/v1/envs/{name}/unpause"), &())
                .await?;
            println!("{}: {}", env.name, env.state);
        }
        LifecycleCommand::Snapshot {
            args,
            volumes,
            json,
        } => match args.as_slice() {
            [rm, name, id] if rm == "rm" => {
                let _: verse_api::Removed = client
                    .delete(&format!("/v1/envs/{name}/snapshots/{id}"))
                    .await?;
                println!("{name}: snapshot {id} removed");
            }
            [name] | [name, _] => {
                let label = args.get(1).cloned();
                let s: SnapshotInfo = client
                    .post(
                        &format!("/v1/envs/{name}/snapshots"),
                        &SnapshotRequest { label, volumes },
                    )
                    .await?;
                if json {
                    output::json(&s);
                } else {
                    println!(
                        "{}: snapshot {}{}: {} files, {} ({} new), env frozen {} ms{}",
                        s.env,
                        s.id,
                        s.label
                            .as_ref()
                            .map_or(String::new(), |l| format!(" \"{l}\"")),
                        s.files,
                        bytes(s.size),
                        bytes(s.new_bytes),
                        s.frozen_ms,
                        volume_note(&s)
                    );
                }
            }
            _ => bail!("usage: verse snapshot NAME [LABEL], or verse snapshot rm NAME SNAPSHOT"),
        },
        LifecycleCommand::Snapshots { name, json } => {
            let list: Vec<SnapshotInfo> = client.get(&format!("/v1/envs/{name}/snapshots")).await?;
            if json {
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.clone(),
                            s.label.clone().unwrap_or_else(|| "-".into()),
                            time(s.created_at),
                            bytes(s.size),
                            bytes(s.new_bytes),
                            s.files.to_string(),
                            s.origin.clone(),
                            if s.volumes.is_empty() {
                                "-".into()
                            } else {
                                s.volumes
                                    .iter()
                                    .map(|v| v.path.as_str())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID", "LABEL", "TAKEN", "SIZE", "NEW", "FILES", "BY", "VOLUMES",
                    ],
                    &rows,
                );
            }
        }
        LifecycleCommand::Restore { name, snapshot } => {
            let env: EnvInfo = client
                .post(
                    &format!("/v1/envs/{name}/restore"),
                    &RestoreRequest {
                        snapshot: snapshot.clone(),
                    },
                )
                .await?;
            println!("{}: restored to {snapshot}, {}", env.name, env.state);
        }
        LifecycleCommand::Hibernate {
            name,
            discard,
            timeout,
        } => {
            let query = match (discard, timeout) {
                (true, _) => "?discard=true".to_string(),
                (false, Some(ms)) => format!("?timeout_ms={ms}"),
                (false, None) => String::new(),
            };
            let env: EnvInfo = client
                .post(&format!("/v1/envs/{name}/hibernate{query}"), &())
                .await?;
            println!("{}: {}", env.name, env.state);
        }
        LifecycleCommand::Resume { name } => {
            let env: EnvInfo = client.post(&format!("/v1/envs/{name}/resume"), &()).await?;
            println!("{}: {}", env.name, env.state);
        }
        LifecycleCommand::Events { follow, env, json } => events(client, follow, env, json).await?,
        LifecycleCommand::Diff { file, json } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let report: DiffReport = client
                .post(
                    "/v1/diff",
                    &ApplyRequest {
                        file_name: file.display().to_string(),
                        source,
                        dry_run: true,
                        spec_dir: std::path::absolute(&file)
                            .ok()
                            .and_then(|f| f.parent().map(|d| d.display().to_string())),
                    },
                )
                .await?;
            if json {
                output::json(&report);
            } else {
                print_diff(&report);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_diff(report: &DiffReport) {
    for env in &report.envs {
        let how = match env.applies {
            Applies::Live => " (live, no restart)",
            Applies::Restart => " (needs a restart)",
            Applies::Start | Applies::Stop | Applies::Nothing => "",
        };
        println!("{} {}{}", env.env, env.action, how);
        for change in &env.changes {
            println!(
                "  {:<16} {} -> {}  [{}]",
                change.field, change.old, change.new, change.applies
            );
        }
    }
}

async fn events(client: &Client, follow: bool, env: Option<String>, json: bool) -> Result<()> {
    use http_body_util::BodyExt;
    let mut path = format!("/v1/events?follow={follow}");
    if let Some(env) = &env {
        path.push_str(&format!("&env={env}"));
    }
    let mut body = client.stream(&path).await?;
    let mut out = std::io::stdout();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            if json {
                out.write_all(&line)?;
            } else if let Ok(event) = serde_json::from_slice::<EventInfo>(&line) {
                writeln!(
                    out,
                    "{}  {:<12} {:<10} {}",
                    time_ms(event.time_ms),
                    event.env,
                    event.kind,
                    event.cause
                )?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

fn time(unix: i64) -> String {
    time_ms(unix * 1000)
}

/// Local-free, unambiguous: `YYYY-MM-DD HH:MM:SS.mmm` UTC.
fn time_ms(ms: i64) -> String {
    let at = verse_api::time::Utc::from_unix(ms.div_euclid(1000));
    format!("{}.{:03}", at.date_time(), ms.rem_euclid(1000))
}

/// `, with volumes /a, /b` when a snapshot copied volumes.
fn volume_note(s: &SnapshotInfo) -> String {
    if s.volumes.is_empty() {
        return String::new();
    }
    let paths: Vec<&str> = s.volumes.iter().map(|v| v.path.as_str()).collect();
    format!(", with volumes {}", paths.join(", "))
}

/// `--timeout` of `verse hibernate`: a duration such as "30s" or "10m", in ms.
fn parse_timeout(text: &str) -> Result<u64, String> {
    match verse_spec::units::parse_duration_ms(text) {
        Ok(0) => Err("must be more than 0".into()),
        Ok(ms) => Ok(ms),
        Err(e) => Err(format!(
            "{e}; write e.g. \"30s\" or \"10m\" (units: ms, s, m, h)"
        )),
    }
}

/// `--memory SIZE`: a size as the spec writes it.
fn memory_size(text: &str) -> Result<u64, String> {
    verse_spec::units::parse_size(text).map_err(|e| {
        format!(
            "{e}; write e.g. \"512MiB\" (units: {})",
            verse_spec::units::SIZE_UNITS
        )
    })
}
