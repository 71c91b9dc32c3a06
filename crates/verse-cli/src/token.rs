//! `verse token`: mint, attenuate and revoke capability tokens.

use crate::output;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::process::ExitCode;
use verse_api::Client;
use verse_api::guard::{MintRequest, Minted, RevokeRequest, Revoked};
use verse_guard::token;

/// What a token (or its attenuation) grants.
#[derive(clap::Args)]
pub struct Grant {
    /// Rights, KIND:NAME:OPS separated by `;` or spaces, e.g.
    /// 'env:novel:exec,read' or 'env:*:read image:*:read'. Kinds: env,
    /// image, spec, audit, token, daemon; NAME may be `*`; OPS are read,
    /// write, exec (or `*`).
    #[arg(long, value_name = "RIGHTS")]
    allow: String,
    /// How long it is valid: 90s, 30m, 1h, 7d (default: until revoked).
    #[arg(long)]
    ttl: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token granting exactly the rights given (asks the daemon, as root).
    Mint(Grant),
    /// Narrow a token offline, without the daemon or any key: the result
    /// allows only what both the token and --allow allow.
    Attenuate {
        /// The token to narrow (base64, as printed by `verse token mint`).
        token: String,
        #[command(flatten)]
        grant: Grant,
    },
    /// Revoke a token by id: it and every token attenuated from it are refused from now on.
    Revoke { id: String },
}

fn print(minted: &Minted, json: bool) {
    if json {
        output::json(minted);
    } else {
        println!("{}", minted.token);
        eprintln!(
            "id {}  rights {}  expires {}",
            minted.id,
            minted.rights.join(" "),
            minted.expires.as_deref().unwrap_or("never")
        );
    }
}

pub async fn run(command: TokenCommand, client: &Client) -> Result<ExitCode> {
    match command {
        TokenCommand::Mint(Grant { allow, ttl, json }) => {
            // Parse here too, so bad input is named before the daemon is asked.
            token::parse_rights(&allow)?;
            let minted: Minted = client
                .post("/v1/tokens", &MintRequest { allow, ttl })
                .await?;
            print(&minted, json);
        }
        TokenCommand::Attenuate {
            token: parent,
            grant: Grant { allow, ttl, json },
        } => {
            let rights = token::parse_rights(&allow)?;
            let ttl = ttl.as_deref().map(token::parse_ttl).transpose()?;
            let minted =
                token::attenuate(&parent, &rights, ttl).context("attenuating the token")?;
            print(&minted, json);
        }
        TokenCommand::Revoke { id } => {
            let _: Revoked = client
                .post("/v1/tokens/revoke", &RevokeRequest { id: id.clone() })
                .await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
