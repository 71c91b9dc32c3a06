//! `verse quarantine` (files that left an env, held and scanned) and
//! `verse copy` (a file from one env to another, under the spec's policy).

use crate::output::{self, table};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use verse_api::Client;
use verse_api::quarantine::{CopyReport, CopyRequest, Item, ReleaseRequest, State};

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined files: id, env, name, size, state, verdict, hold.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show one file's scan report.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a held file into a running env (never over an existing file).
    Release {
        id: String,
        /// ENV or ENV:/dir (default dir /inbox).
        #[arg(long, value_name = "ENV[:PATH]")]
        to: String,
        /// Release a file the scan flagged (recorded in the audit log).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a held file; its record stays.
    Reject {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

fn verdict(item: &Item) -> String {
    if item.report.clean() {
        "clean".into()
    } else {
        format!("FLAGGED ({})", item.report.findings.len())
    }
}

fn hold(item: &Item) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = item.hold_until - now;
    if item.state != State::Held {
        "-".into()
    } else if left > 0 {
        format!("{}s left", left)
    } else {
        "passed".into()
    }
}

fn print_item(item: &Item) {
    println!("id:        {}", item.id);
    println!("from env:  {}", item.env);
    println!("name:      {}", item.name);
    println!("size:      {} bytes", item.report.size);
    println!("blake3:    {}", item.report.blake3);
    println!(
        "content:   {}",
        item.report.content_type.as_deref().unwrap_or("unknown")
    );
    println!("state:     {}", item.state);
    println!("hold:      {}", hold(item));
    if let Some(target) = &item.target {
        println!("sent to:   {target}");
    }
    if let Some(to) = &item.released_to {
        println!(
            "released:  {to}{}",
            if item.forced { " (forced)" } else { "" }
        );
    }
    println!("verdict:   {}", verdict(item));
    for f in &item.report.findings {
        println!("  [{}] {}", f.check, f.message);
    }
}

pub async fn run(command: QuarantineCommand, client: &Client) -> Result<ExitCode> {
    match command {
        QuarantineCommand::Ls { json } => {
            let items: Vec<Item> = client.get("/v1/quarantine").await?;
            if json {
                output::json(&items);
            } else {
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.clone(),
                            i.env.clone(),
                            i.name.clone(),
                            i.report.size.to_string(),
                            i.state.to_string(),
                            verdict(i),
                            hold(i),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "ENV", "NAME", "SIZE", "STATE", "VERDICT", "HOLD"],
                    &rows,
                );
            }
        }
        QuarantineCommand::Show { id, json } => {
            let item: Item = client.get(&format!("/v1/quarantine/{id}")).await?;
            if json {
                output::json(&item);
            } else {
                print_item(&item);
            }
        }
        QuarantineCommand::Release {
            id,
            to,
            force,
            json,
        } => {
            let item: Item = client
                .post(
                    &format!("/v1/quarantine/{id}/release"),
                    &ReleaseRequest { to, force },
                )
                .await?;
            if json {
                output::json(&item);
            } else {
                println!(
                    "released {} to {}{}",
                    item.name,
                    item.released_to.as_deref().unwrap_or("?"),
                    if item.forced {
                        " (forced past the scan's findings)"
                    } else {
                        ""
                    }
                );
            }
        }
        QuarantineCommand::Reject { id, json } => {
            let item: Item = client
                .post(&format!("/v1/quarantine/{id}/reject"), &())
                .await?;
            if json {
                output::json(&item);
            } else {
                println!("rejected {} ({}): deleted", item.id, item.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn copy(client: &Client, from: String, to: String, json: bool) -> Result<ExitCode> {
    let report: CopyReport = client.post("/v1/copy", &CopyRequest { from, to }).await?;
    if json {
        output::json(&report);
    } else if let Some(path) = &report.copied_to {
        println!("copied to {path}");
    } else if let Some(item) = &report.quarantined {
        println!(
            "quarantined as {} ({}); it goes to {} once held and clean",
            item.id,
            verdict(item),
            item.target.as_deref().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}
