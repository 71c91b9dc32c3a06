//! `verse audit`: read, verify and checkpoint the tamper-evident audit log.

use crate::output::{self, table};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use verse_api::Client;
use verse_api::guard::{Checkpoint, Record, VerifyReport, VerifyRequest};
use verse_guard::audit::{self, CheckpointExt};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the log: seq, time, actor, action, env, detail.
    Log {
        /// Only records about this env.
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Follow the hash chain and check every signed checkpoint; exit 1 and
    /// name the first changed, removed, reordered or inserted record.
    Verify {
        /// Also check against a checkpoint exported earlier (kept off this machine).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Verify a copy of an audit directory here, without a daemon
        /// (checkpoints are checked against the key each one names).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Sign the head of the log with the host key now.
    Checkpoint {
        /// Write the signed checkpoint to FILE, to keep it off the machine.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: AuditCommand, client: &Client) -> Result<ExitCode> {
    match command {
        AuditCommand::Log { env, json } => {
            let path = match &env {
                Some(env) => format!("/v1/audit/log?env={env}"),
                None => "/v1/audit/log".to_string(),
            };
            let records: Vec<Record> = client.get(&path).await?;
            if json {
                output::json(&records);
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        vec![
                            r.seq.to_string(),
                            r.time.clone(),
                            r.actor.clone(),
                            r.action.clone(),
                            r.env.clone().unwrap_or_else(|| "-".into()),
                            r.detail.clone(),
                        ]
                    })
                    .collect();
                table(&["SEQ", "TIME", "ACTOR", "ACTION", "ENV", "DETAIL"], &rows);
            }
        }
        AuditCommand::Verify {
            checkpoint,
            dir,
            json,
        } => {
            let exported = checkpoint
                .as_deref()
                .map(Checkpoint::load)
                .transpose()
                .context("reading the exported checkpoint")?;
            let report: VerifyReport = match dir {
                Some(dir) => audit::verify(&dir, None, exported.as_ref())
                    .with_context(|| format!("verifying the audit log in {}", dir.display()))?,
                None => {
                    client
                        .post(
                            "/v1/audit/verify",
                            &VerifyRequest {
                                checkpoint: exported,
                            },
                        )
                        .await?
                }
            };
            if json {
                output::json(&report);
            } else if report.ok() {
                println!(
                    "ok: {} records, chain intact, {} signed checkpoint(s) match; head {}",
                    report.records, report.checkpoints, report.head_hash
                );
            } else {
                for problem in &report.problems {
                    println!(
                        "{:<10} {}",
                        format!("{:?}", problem.kind).to_lowercase(),
                        problem.message
                    );
                }
                eprintln!(
                    "the audit log was tampered with: {} problem(s); the chain holds for the first {} record(s)",
                    report.problems.len(),
                    report.verified
                );
            }
            if !report.ok() {
                return Ok(ExitCode::from(1));
            }
        }
        AuditCommand::Checkpoint { export, json } => {
            let checkpoint: Checkpoint = client.post("/v1/audit/checkpoint", &()).await?;
            if let Some(file) = &export {
                let text = serde_json::to_string_pretty(&checkpoint).expect("serialises") + "\n";
                std::fs::write(file, text)
                    .with_context(|| format!("writing the checkpoint to {}", file.display()))?;
            }
            if json {
                output::json(&checkpoint);
            } else {
                println!(
                    "signed record {} (hash {}) with host key {}",
                    checkpoint.seq, checkpoint.hash, checkpoint.key
                );
                if let Some(file) = export {
                    println!(
                        "exported to {}; verify later with `verse audit verify --checkpoint {}`",
                        file.display(),
                        file.display()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
