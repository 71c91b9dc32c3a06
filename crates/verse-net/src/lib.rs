//! Host-side networking of Verse envs: one routed veth per env, policy in one nftables table
//! per Verse root, policy routing for router chains, and a DNS forwarder.
//!
//! # Shape
//!
//! Each networked env gets a veth pair: `eth0` inside its network namespace, `vs<TAG><N>` on
//! the host. There is no bridge: every env sits on its own point-to-point link (a /32 address,
//! the gateway reached on-link), so envs share no layer-2 segment and cannot ARP-spoof or sniff
//! each other, and on the host the input interface names the env. The gateway address (`.1` of
//! the root's /24) is put on every host-side veth.
//!
//! All rules live in `table inet verse_<TAG>`, regenerated whole and swapped atomically by
//! one `nft -f` transaction (so a reapply never duplicates anything and never leaves a
//! half-applied state); named counters carry their values across swaps. An env's network
//! namespace is owned by the initial user namespace, so even its root holds no
//! `CAP_NET_ADMIN` over it: it cannot change its addresses, routes or these rules.
//!
//! # Order of setup
//!
//! The shim calls [`attach`] between clone and the env's first instruction (a hook in
//! `verse_sandbox::spawn_with`): the env's command never runs without its network in place.
//! The daemon installs the env's rules ([`Host::apply`]) before it launches the shim; a veth
//! without rules matches nothing but the final drop.

mod attach;
mod dns;
mod host;
mod rules;
mod tap;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

pub use attach::{attach, attach_netns, detach, router_forwarded};
pub use dns::{DnsForwarder, host_resolvers};
pub use host::{Counters, Host, HostError, uplink_interfaces};
pub use rules::{EnvPolicy, Mode};
pub use tap::{guest_mac, open_tap};

/// Inside the env, the env's end of its veth.
pub const ENV_IFNAME: &str = "eth0";

/// What the shim needs to wire an env's network namespace (from the daemon, in the shim
/// config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvNet {
    /// Host-side veth name (`vs<TAG><N>`).
    pub host_ifname: String,
    /// The env's address (a /32 on its `eth0`).
    pub address: Ipv4Addr,
    /// The host's end, the env's default gateway and DNS forwarder.
    pub gateway: Ipv4Addr,
    /// Forward other envs' traffic (router env): ip_forward on, masquerade out of `eth0`.
    pub router: bool,
}

/// A failed host networking step: what was run and what it said.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("running `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("{0}")]
    Other(String),
}

/// Runs `program args...` with `input` on stdin; the error carries the command line and stderr.
pub(crate) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, NetError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if let Some(input) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| NetError::Spawn {
                command: shown.clone(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| NetError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(NetError::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Six hex digits naming one Verse root in host-global names (interfaces, the nft table).
pub fn short_tag(instance_tag: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in instance_tag.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", hash & 0xff_ffff)
}
