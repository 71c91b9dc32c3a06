//! What compose decided, before it is written as a spec: the one structure the offline
//! composer fills, a model answers in, and the renderer turns into TOML and JSON.

use serde::{Deserialize, Serialize};

/// The default base system.
pub const DEFAULT_BASE: &str = "debian:bookworm";

/// The composed environment and its image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Env name (also the image's name).
    pub name: String,
    /// Base system of the image.
    pub base: String,
    /// Debian packages installed in the image, sorted.
    pub packages: Vec<String>,
    /// How the env is isolated.
    pub backend: Backend,
    /// CPU limit in cores.
    pub cpu: Option<f64>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Disk size in bytes.
    pub disk: Option<u64>,
    /// Network policy.
    pub network: NetworkIntent,
    /// Discard the env's writes when it stops.
    pub ephemeral: bool,
    /// Streamed as a desktop (graphical) rather than a terminal.
    pub desktop: bool,
    /// Free-form labels: purpose ("banking") and colour ("red").
    pub labels: Vec<String>,
    /// Image build steps (a pip-in-venv step for libraries Debian does not package).
    #[serde(default)]
    pub run: Vec<String>,
    /// Files the env downloads leave it into the host's quarantine (sketchy files).
    #[serde(default)]
    pub quarantine: bool,
}

impl Draft {
    /// An env named `name` with every field at its safe default.
    pub fn new(name: &str) -> Draft {
        Draft {
            name: name.to_string(),
            base: DEFAULT_BASE.to_string(),
            packages: Vec::new(),
            backend: Backend::Container,
            cpu: None,
            memory: None,
            disk: None,
            network: NetworkIntent::None,
            ephemeral: false,
            desktop: false,
            labels: Vec::new(),
            run: Vec::new(),
            quarantine: false,
        }
    }
}

/// Isolation backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Container,
    Gvisor,
    Vm,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Container => "container",
            Backend::Gvisor => "gvisor",
            Backend::Vm => "vm",
        }
    }
}

/// Network policy, from least to most access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkIntent {
    /// Loopback only.
    None,
    /// Only these host:port destinations.
    Allow { hosts: Vec<String> },
    /// Everything through this proxy (socks5:// or http://).
    Proxy { url: String },
    /// Full outbound access (NAT).
    Nat,
}

impl NetworkIntent {
    /// 0 for none, growing with what the env can reach.
    pub fn reach(&self) -> u8 {
        match self {
            NetworkIntent::None => 0,
            NetworkIntent::Allow { .. } => 1,
            NetworkIntent::Proxy { .. } => 2,
            NetworkIntent::Nat => 3,
        }
    }

    /// Short words for explanations.
    pub fn describe(&self) -> String {
        match self {
            NetworkIntent::None => "no network (loopback only)".into(),
            NetworkIntent::Allow { hosts } => format!("only {}", hosts.join(", ")),
            NetworkIntent::Proxy { url } => format!("everything through the proxy {url}"),
            NetworkIntent::Nat => "full internet access (nat)".into(),
        }
    }
}

/// A size as the spec writes it: the largest binary unit that divides it.
pub fn size_string(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 19) {
        // 1.5GiB reads better than 1536MiB
        return format!("{}MiB", bytes >> 20);
    }
    format!("{bytes}B")
}
