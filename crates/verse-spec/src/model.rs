//! The typed, defaulted result of parsing a spec.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desktop::{DesktopSpec, Label};
use crate::image::{ImageSpec, TrustPolicy};

/// Default time between the stop signal and the kill, in milliseconds.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;

/// A whole host's desired state, as declared in `verse.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Environments by name.
    pub envs: BTreeMap<String, EnvSpec>,
    /// Image recipes by name (`[image.NAME]`). Left out of the JSON when empty, so specs
    /// without images keep the digest they had before images existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageSpec>,
    /// Which images may run (`[trust]`); left out of the JSON when it is the default.
    #[serde(default, skip_serializing_if = "TrustPolicy::is_default")]
    pub trust: TrustPolicy,
}

/// One environment (`[env.NAME]`), with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Name of an image in the store.
    pub image: String,
    /// How the environment is isolated.
    pub backend: Backend,
    /// CPU limit in cores (fractional allowed); `None` means unlimited.
    pub cpu: Option<f64>,
    /// Memory limit in bytes; `None` means unlimited.
    pub memory: Option<u64>,
    /// Maximum number of processes; `None` means unlimited.
    pub pids: Option<u64>,
    /// Network mode.
    pub network: Network,
    /// Discard the writable layer when the environment stops.
    pub ephemeral: bool,
    /// The command to run, as argv; `None` lets the runtime pick a shell that waits.
    /// A string command in the file becomes `["/bin/sh", "-c", command]`.
    pub command: Option<Vec<String>>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Host name inside the environment; defaults to the environment's name.
    pub hostname: String,
    /// Host directories mounted into the environment, sorted by `path`.
    pub volumes: Vec<Volume>,
    /// Working directory for the command; `None` means the image's default (or `/`).
    pub workdir: Option<String>,
    /// User and group the command runs as; `None` means the image's default (root).
    pub user: Option<UserSpec>,
    /// Milliseconds between the stop signal and the kill.
    pub stop_timeout_ms: u64,
    /// A virtual display with a window manager (`desktop = true`). Left out of
    /// the JSON when absent, as are `autostart` and `label`, so specs without
    /// them keep their digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<DesktopSpec>,
    /// Commands started on the desktop once it is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub autostart: Vec<String>,
    /// Colour and name shown on the env's tab and around its desktop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

impl EnvSpec {
    /// An environment on `image` with every other field at its default.
    pub fn new(name: &str, image: &str) -> Self {
        EnvSpec {
            image: image.to_string(),
            backend: Backend::default(),
            cpu: None,
            memory: None,
            pids: None,
            network: Network::default(),
            ephemeral: false,
            command: None,
            env: BTreeMap::new(),
            hostname: name.to_string(),
            volumes: Vec::new(),
            workdir: None,
            user: None,
            stop_timeout_ms: DEFAULT_STOP_TIMEOUT_MS,
            desktop: None,
            autostart: Vec::new(),
            label: None,
        }
    }
}

/// How an environment is isolated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Linux namespaces, cgroups, overlayfs, seccomp, landlock.
    #[default]
    Container,
}

/// Network mode of an environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Own network namespace with loopback only.
    #[default]
    None,
}

/// A host directory mounted into an environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Absolute, normalised path inside the environment.
    pub path: String,
    /// Absolute, normalised directory on the host.
    pub host: String,
    /// Mounted read-only (`":ro"` suffix).
    pub readonly: bool,
}

/// The identity the environment's command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Spec {
    /// Canonical JSON: object keys sorted at every level, no whitespace. Two specs with the same
    /// meaning produce the same bytes, whatever their file's layout or key order.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("a Spec always serialises to JSON");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// `blake3:` followed by the hex BLAKE3 hash of [`Spec::canonical_json`]; names a resolved
    /// spec in generation records.
    pub fn digest(&self) -> String {
        format!(
            "blake3:{}",
            blake3::hash(self.canonical_json().as_bytes()).to_hex()
        )
    }
}

/// Writes JSON with sorted keys regardless of how `serde_json::Map` orders them
/// (another crate in the build may enable its `preserve_order` feature).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
