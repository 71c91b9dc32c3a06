//! `verse net ...`: an env's network as the host enforces it.

use anyhow::Result;
use clap::Subcommand;
use verse_api::{Client, NetInfo};

use crate::output;

#[derive(Subcommand)]
pub enum NetCommand {
    /// An env's network mode, addresses, policy in words, installed rules, and counters of
    /// allowed connections and dropped packets.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(client: &Client, command: NetCommand) -> Result<()> {
    match command {
        NetCommand::Show { name, json } => {
            let info: NetInfo = client.get(&format!("/v1/envs/{name}/net")).await?;
            if json {
                output::json(&info);
                return Ok(());
            }
            println!("env:       {}", info.env);
            println!(
                "mode:      {}{}",
                info.mode,
                if info.router { " (router)" } else { "" }
            );
            if let Some(address) = &info.address {
                println!("address:   {address}/32 on eth0");
            }
            if let Some(gateway) = &info.gateway {
                println!("gateway:   {gateway}");
            }
            if let Some(interface) = &info.interface {
                println!("interface: {interface} (host side)");
            }
            println!("policy:");
            for line in &info.policy {
                println!("  - {line}");
            }
            if !info.rules.is_empty() {
                println!("rules:");
                for rule in &info.rules {
                    println!("  {rule}");
                }
            }
            println!("allowed:   {} connections", info.allowed);
            println!("dropped:   {} packets", info.dropped);
        }
    }
    Ok(())
}
