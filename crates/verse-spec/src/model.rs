//! The typed, defaulted result of parsing a spec.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desktop::{Clipboard, DesktopSpec, Label};
use crate::guard::{CopyAction, Downloads};
use crate::image::{ImageSpec, TrustPolicy};

/// Default time between the stop signal and the kill, in milliseconds.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;

/// Default cap of an env's console log on the host (`log_max`): 16 MiB.
pub const DEFAULT_LOG_MAX: u64 = 16 << 20;
/// Smallest `log_max` accepted: 128 KiB (two files of 64 KiB, one read's worth each).
pub const MIN_LOG_MAX: u64 = 128 << 10;

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
    /// `[copy]`: policy of `verse copy` by `"from -> to"` (names or `*`); left
    /// out of the JSON when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copy: BTreeMap<String, CopyAction>,
}

/// One environment (`[env.NAME]`), with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Name of an image in the store.
    pub image: String,
    /// How the environment is isolated.
    pub backend: Backend,
    /// Accelerator of a vm env: "auto" (KVM where it runs guests at speed,
    /// TCG otherwise), "kvm" or "tcg". Ignored by other backends.
    /// Left out of the JSON when "auto", so digests of specs without it stay as they were.
    #[serde(default, skip_serializing_if = "Accel::is_auto")]
    pub accel: Accel,
    /// CPU limit in cores (fractional allowed); `None` means unlimited.
    pub cpu: Option<f64>,
    /// Memory limit in bytes; `None` means unlimited.
    pub memory: Option<u64>,
    /// Maximum number of processes; `None` means unlimited.
    pub pids: Option<u64>,
    /// Size of the env's own filesystem for its writes, in bytes; `None`: its writes go
    /// to the host's filesystem, unlimited. Left out of the JSON when absent, so specs
    /// without it keep their digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    /// Network mode.
    pub network: Network,
    /// Other envs' services this env may connect to, as `(env, port)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<Reach>,
    /// The env forwards other envs' traffic (`network = { via = "THIS" }`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub router: bool,
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
    /// When the daemon starts the env again after its main process ended.
    #[serde(default, skip_serializing_if = "Restart::is_no")]
    pub restart: Restart,
    /// A command run inside the env at an interval; failing it `retries` times in a
    /// row makes the env unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Automatic snapshots of the env's writable layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotSchedule>,
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
    /// Which way the clipboard may cross between the browser and the env's
    /// desktop; left out of the JSON when "none" (the default).
    #[serde(default, skip_serializing_if = "Clipboard::is_none")]
    pub clipboard: Clipboard,
    /// `downloads = "quarantine"` with its `hold` and `release_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<Downloads>,
    /// Most bytes the env's console log may take on the host (`log_max`), the
    /// current file and the one rotated out together; `None` means
    /// [`DEFAULT_LOG_MAX`]. Left out of the JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max: Option<u64>,
    /// Size of the env's `/dev/shm` in bytes (`shm`, container envs); `None`:
    /// 64 MiB. Left out of the JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm: Option<u64>,
}

/// `restart = "no" | "on-failure" | "always"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never: an env whose main process ended stays stopped (or failed).
    #[default]
    No,
    /// When the main process ended with a non-zero code or a signal.
    OnFailure,
    /// Whenever the main process ended, unless the user stopped the env.
    Always,
}

impl Restart {
    pub fn is_no(&self) -> bool {
        *self == Restart::No
    }
}

/// `health = { command = "...", interval = "10s", timeout = "2s", retries = 3, grace = "60s" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// argv run inside the env; a string command becomes `["/bin/sh", "-c", command]`.
    pub command: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures before the env counts as unhealthy.
    pub retries: u32,
    /// After `verse apply` changes the env, how long it has to become healthy before
    /// the daemon falls back to the previous definition.
    pub grace_ms: u64,
}

/// Defaults of a health check.
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 10_000;
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_HEALTH_GRACE_MS: u64 = 60_000;

/// `snapshots = { every = "1h", keep = 24 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSchedule {
    pub every_ms: u64,
    /// Scheduled snapshots kept per env (older ones are removed; snapshots taken
    /// by hand are never pruned).
    pub keep: u32,
}

impl EnvSpec {
    /// An environment on `image` with every other field at its default.
    pub fn new(name: &str, image: &str) -> Self {
        EnvSpec {
            image: image.to_string(),
            backend: Backend::default(),
            accel: Accel::default(),
            cpu: None,
            memory: None,
            pids: None,
            disk: None,
            network: Network::default(),
            reach: Vec::new(),
            router: false,
            ephemeral: false,
            command: None,
            env: BTreeMap::new(),
            hostname: name.to_string(),
            volumes: Vec::new(),
            workdir: None,
            user: None,
            stop_timeout_ms: DEFAULT_STOP_TIMEOUT_MS,
            restart: Restart::No,
            health: None,
            snapshots: None,
            desktop: None,
            autostart: Vec::new(),
            label: None,
            clipboard: Clipboard::None,
            downloads: None,
            log_max: None,
            shm: None,
        }
    }

    /// The console log's cap in bytes: `log_max` or the default.
    pub fn log_max_bytes(&self) -> u64 {
        self.log_max.unwrap_or(DEFAULT_LOG_MAX)
    }
}

/// How an environment is isolated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Linux namespaces, cgroups, overlayfs, seccomp, landlock.
    #[default]
    Container,
    /// A QEMU microVM with its own guest kernel.
    Vm,
    /// gVisor's user-space kernel (runsc).
    Gvisor,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Container => "container",
            Backend::Vm => "vm",
            Backend::Gvisor => "gvisor",
        }
    }
}

/// The API reports an env's backend with its own enum (`verse-api` depends on nothing of
/// Verse's); the words are the same, which `backend_words_match_the_api` checks.
impl From<Backend> for verse_api::Backend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Container => verse_api::Backend::Container,
            Backend::Vm => verse_api::Backend::Vm,
            Backend::Gvisor => verse_api::Backend::Gvisor,
        }
    }
}

/// How a vm env's CPU is virtualised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM if a tiny guest boots at speed under it, TCG otherwise.
    #[default]
    Auto,
    Kvm,
    /// QEMU's software emulation: works everywhere, slow.
    Tcg,
}

impl Accel {
    pub fn is_auto(&self) -> bool {
        *self == Accel::Auto
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Network mode of an environment. Enforced by the host, outside the env.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Own network namespace with loopback only.
    #[default]
    None,
    /// A routed veth, NAT to the host's uplinks, DNS through the host.
    Nat,
    /// Like `Nat`, but only to these destinations (`"host:port"`, `"10.0.0.0/8:*"`,
    /// `"name:8000-8080"`; see [`crate::Destination`]).
    Allow(Vec<String>),
    /// Only this proxy is reachable (`"socks5://HOST:PORT"` or `"http://HOST:PORT"`); the
    /// proxy is set in the env's environment.
    Proxy(String),
    /// All traffic leaves through this router env (`router = true` there).
    Via(String),
}

impl Network {
    /// The mode's name: none, nat, allow, proxy or via.
    pub fn mode(&self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Nat => "nat",
            Network::Allow(_) => "allow",
            Network::Proxy(_) => "proxy",
            Network::Via(_) => "via",
        }
    }
}

/// `reach = ["other-env:8080"]`: this env may open connections to that env's port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reach {
    /// The other env's name.
    pub env: String,
    /// Its TCP/UDP port.
    pub port: u16,
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
