//! `verse compose`: natural language in, a checked spec fragment out. Composes in this
//! process (offline, or through VERSE_COMPOSE_ENDPOINT); the daemon is only needed for
//! `--apply`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use verse_api::{ApplyReport, ApplyRequest, Client, DiffReport, Paths};
use verse_compose::model::{ModelConfig, compose_blocking};
use verse_compose::{Options, merge_into};

pub struct ComposeArgs {
    pub prompt: Vec<String>,
    pub json: bool,
    pub name: Option<String>,
    pub into: Option<PathBuf>,
    pub apply: bool,
}

pub fn run(args: ComposeArgs, paths: Paths) -> Result<ExitCode> {
    let prompt = args.prompt.join(" ");
    if args.apply && args.into.is_none() {
        bail!(
            "--apply needs --into FILE: `verse apply` declares a host's whole state, so the composed env is merged into your spec (e.g. --into verse.toml) and that file is applied"
        );
    }
    let options = Options { name: args.name };
    let config = ModelConfig::from_env();
    let composition = compose_blocking(&prompt, &options, config.as_ref())?;
    if args.json {
        crate::output::json(&composition.to_json());
    } else {
        print!("{}", composition.rendered.toml);
        eprint!("\n{}", composition.explain());
    }
    let Some(into) = args.into else {
        return Ok(ExitCode::SUCCESS);
    };
    let existing = match std::fs::read_to_string(&into) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", into.display())),
    };
    let file_name = into.display().to_string();
    let merged = merge_into(&existing, &file_name, &composition)?;
    if args.apply {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(apply(&paths, &into, &file_name, merged));
    }
    write_atomically(&into, &merged)?;
    eprintln!(
        "merged [env.{}] into {}",
        composition.draft.name,
        into.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Show what applying the merged file changes (`verse diff`), then write the file and apply it.
async fn apply(paths: &Paths, into: &Path, file_name: &str, merged: String) -> Result<ExitCode> {
    let client = Client::new(paths);
    let mut request = ApplyRequest {
        file_name: file_name.to_string(),
        source: merged.clone(),
        dry_run: true,
        spec_dir: std::path::absolute(into)
            .ok()
            .and_then(|f| f.parent().map(|d| d.display().to_string())),
    };
    let diff: DiffReport = client.post("/v1/diff", &request).await?;
    println!("\nverse diff {file_name} (with the composed env):");
    crate::lifecycle::print_diff(&diff);
    write_atomically(into, &merged)?;
    request.dry_run = false;
    let report: ApplyReport = client.post("/v1/apply", &request).await?;
    Ok(crate::commands::print_apply(&report, false, false))
}

/// Replace `path` with `text` in one rename, so a reader never sees half a spec.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.compose-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("spec"),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("replacing {}", path.display())
    })
}
