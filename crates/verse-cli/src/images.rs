//! `verse image build|inspect|rm|gc|sign|export` and `verse key generate`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use verse_api::{
    BuildReport, BuildRequest, Client, ExportReport, ExportRequest, ImageDetail, ImageGcReport,
    ImageInfo, Paths, SignatureDetail, SignatureRequest,
};

use crate::output::{self, bytes, table};
use crate::{ImageCommand, KeyCommand};

fn default_key(paths: &Paths) -> std::path::PathBuf {
    paths.etc().join("keys/signing.key")
}

pub fn key(command: KeyCommand, paths: &Paths) -> Result<ExitCode> {
    let KeyCommand::Generate { out } = command;
    let out = out.unwrap_or_else(|| default_key(paths));
    if out.exists() {
        bail!(
            "{} already exists; give another path with --out (a key is never overwritten)",
            out.display()
        );
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = verse_store::generate_signing_key().context("reading /dev/urandom")?;
    let (secret, public) = verse_store::encode_signing_key(&key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .with_context(|| format!("creating {}", out.display()))?;
    writeln!(f, "{secret}").with_context(|| format!("writing {}", out.display()))?;
    let pub_path = out.with_extension("key.pub");
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    eprintln!(
        "secret key: {} (keep it private); public key: {}",
        out.display(),
        pub_path.display()
    );
    println!("{public}");
    Ok(ExitCode::SUCCESS)
}

pub async fn image(command: ImageCommand, client: &Client) -> Result<ExitCode> {
    match command {
        ImageCommand::Build { names, file, json } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let dir = std::path::absolute(&file)?
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "/".into());
            let request = BuildRequest {
                file_name: file.display().to_string(),
                source,
                spec_dir: dir,
                names,
            };
            if json {
                let report: BuildReport = client.post("/v1/images/build", &request).await?;
                output::json(&report);
            } else {
                let mut progress = crate::progress::Progress::new();
                let report: Result<BuildReport, _> = client
                    .post_progress("/v1/images/build?progress=true", &request, &mut |e| {
                        progress.event(e)
                    })
                    .await;
                progress.finish();
                let report = report?;
                for i in &report.images {
                    println!(
                        "built {}: {} layers, {} files, {}, manifest {}",
                        i.name,
                        i.layers,
                        i.files,
                        bytes(i.size),
                        i.manifest
                    );
                }
                println!(
                    "{} layer(s) built, {} from cache, in {} ms",
                    report.built_layers, report.cached_layers, report.millis
                );
            }
        }
        ImageCommand::Inspect { name, json } => {
            let d: ImageDetail = client.get(&format!("/v1/images/{name}")).await?;
            if json {
                output::json(&d);
            } else {
                println!("image     {}", d.info.name);
                println!("manifest  {}", d.info.manifest);
                println!("size      {} in {} files", bytes(d.info.size), d.info.files);
                let rows: Vec<Vec<String>> = d
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        vec![
                            (i + 1).to_string(),
                            l.root.chars().take(16).collect(),
                            bytes(l.size),
                            l.files.to_string(),
                            l.input.clone(),
                        ]
                    })
                    .collect();
                table(&["#", "LAYER", "SIZE", "FILES", "INPUT"], &rows);
                if !d.entrypoint.is_empty() || !d.cmd.is_empty() {
                    println!("command   {:?} {:?}", d.entrypoint, d.cmd);
                }
                if let Some(u) = &d.user {
                    println!("user      {u}");
                }
                if let Some(w) = &d.workdir {
                    println!("workdir   {w}");
                }
                for (k, v) in &d.env {
                    println!("env       {k}={v}");
                }
                for (k, v) in &d.labels {
                    println!("label     {k}={v}");
                }
                if d.signatures.is_empty() {
                    println!("signatures: none");
                }
                for s in &d.signatures {
                    println!(
                        "signature {} {}",
                        s.key,
                        if s.valid { "valid" } else { "INVALID" }
                    );
                }
            }
        }
        ImageCommand::Rm { name } => {
            let i: ImageInfo = client.delete(&format!("/v1/images/{name}")).await?;
            println!(
                "removed image {} (its layers stay until `verse image gc`)",
                i.name
            );
        }
        ImageCommand::Gc { json } => {
            let r: ImageGcReport = client.post("/v1/images/gc", &()).await?;
            if json {
                output::json(&r);
            } else {
                println!(
                    "freed {}: {} objects, {} trees, {} layers, {} manifests, {} checkouts",
                    bytes(r.freed_bytes),
                    r.objects_removed,
                    r.trees_removed,
                    r.layers_removed,
                    r.manifests_removed,
                    r.checkouts_removed
                );
            }
        }
        ImageCommand::Sign { name, key } => {
            let path = match key {
                Some(p) => p,
                None => default_key(&Paths::from_env()),
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the secret key {}", path.display()))?;
            let key = verse_store::decode_signing_key(&text).with_context(|| {
                format!(
                    "{} is not a key made by `verse key generate`",
                    path.display()
                )
            })?;
            let d: ImageDetail = client.get(&format!("/v1/images/{name}")).await?;
            let h: verse_store::Hash = d
                .info
                .manifest
                .parse()
                .context("the daemon sent a bad manifest hash")?;
            use verse_store::Signer;
            let signature: String = key
                .sign(&h.0)
                .to_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let public = verse_store::key_id(&key.verifying_key());
            let s: SignatureDetail = client
                .post(
                    &format!("/v1/images/{name}/signatures"),
                    &SignatureRequest {
                        key: public,
                        signature,
                    },
                )
                .await?;
            println!("signed {name} (manifest {h}) with {}", s.key);
        }
        ImageCommand::Export {
            name,
            file,
            format,
            json,
        } => {
            let path = std::path::absolute(&file)?;
            let r: ExportReport = client
                .post(
                    &format!("/v1/images/{name}/export"),
                    &ExportRequest {
                        path: path.display().to_string(),
                        format: Some(format),
                    },
                )
                .await?;
            if json {
                output::json(&r);
            } else {
                println!(
                    "exported {} (manifest {}) to {} as {} {}: {} layers, {} files, {}, {} signature(s), in {} ms",
                    r.image,
                    r.manifest,
                    r.path,
                    r.format,
                    r.reference,
                    r.layers,
                    r.files,
                    bytes(r.bytes),
                    r.signatures,
                    r.millis
                );
            }
        }
        _ => unreachable!("only image build/inspect/rm/gc/sign/export come here"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits `verse image import`'s PATH[:TAG]: PATH as given when it exists, else the longest
/// prefix before a `:` that exists, the rest being the tag (tags hold `:` themselves, as in
/// `all.tar:localhost/app:1`).
pub fn split_tag(arg: &str) -> (String, Option<String>) {
    if std::path::Path::new(arg).exists() {
        return (arg.to_string(), None);
    }
    arg.match_indices(':')
        .map(|(i, _)| i)
        .find(|&i| i > 0 && i + 1 < arg.len() && std::path::Path::new(&arg[..i]).exists())
        .map(|i| (arg[..i].to_string(), Some(arg[i + 1..].to_string())))
        .unwrap_or_else(|| (arg.to_string(), None))
}

/// The lines `verse image import` prints after "imported ...": the archive's tag, and the
/// device nodes left out.
pub fn import_notes(report: &verse_api::ImportReport) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(r) = &report.reference {
        notes.push(format!("from the archive's image {r}"));
    }
    let left = &report.devices_left_out;
    if !left.is_empty() {
        let outside: Vec<&str> = left
            .iter()
            .map(String::as_str)
            .filter(|p| !p.starts_with("/dev/"))
            .collect();
        let mut line = format!(
            "left out {} device node(s) (envs get their own /dev): {} under /dev",
            left.len(),
            left.len() - outside.len()
        );
        if !outside.is_empty() {
            line.push_str(&format!("; outside /dev: {}", outside.join(" ")));
        }
        notes.push(line);
    }
    notes
}

/// `verse image import` with live progress (files and bytes, an archive's layers).
pub async fn import_with_progress(
    client: &Client,
    request: &verse_api::ImportRequest,
) -> Result<verse_api::ImportReport> {
    let mut progress = crate::progress::Progress::new();
    let report = client
        .post_progress("/v1/images?progress=true", request, &mut |e| {
            progress.event(e)
        })
        .await;
    progress.finish();
    Ok(report?)
}
