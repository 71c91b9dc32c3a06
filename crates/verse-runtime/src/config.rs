//! What the daemon tells a shim to run (written as JSON next to the env).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Start of the host id ranges of container envs, far above any real account,
/// so a process that escaped its env would own nothing of the host's. Image
/// checkouts (and image build steps, and envs made before ranges were per env)
/// use ID_BASE..ID_BASE+65536 itself; every other container env gets a range
/// of its own, `ID_BASE + slot × ID_RANGE` (see [`id_base_of_slot`]).
pub const ID_BASE: u32 = 100_000_000;

/// Highest slot whose range still fits below 2^32.
pub const MAX_ID_SLOT: u32 = (u32::MAX - ID_BASE) / ID_RANGE - 1;

/// Host id of the root of the env with id slot `slot` (0: ID_BASE).
pub fn id_base_of_slot(slot: u32) -> u32 {
    ID_BASE + slot.min(MAX_ID_SLOT) * ID_RANGE
}

/// Length of the id range mapped into each env.
pub const ID_RANGE: u32 = 65_536;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeMount {
    pub host: PathBuf,
    pub path: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub name: String,
    /// The env's directory: upper/, work/ (or disk.img mounted on disk/ holding
    /// them), rootfs/, console.log, records.
    pub env_dir: PathBuf,
    pub socket: PathBuf,
    /// Read-only layer checkouts, top-most first.
    pub lowers: Vec<PathBuf>,
    pub volumes: Vec<VolumeMount>,
    pub hostname: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Host uid/gid that container id 0 maps to; the range is 65536 long.
    pub id_base: u32,
    /// Cgroup path relative to each hierarchy root, e.g. `verse/novel`.
    pub cgroup: String,
    pub cpu: Option<f64>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub stop_timeout_ms: u64,
    /// Size of the env's `/dev/shm` (`shm`); `None`: the sandbox's default.
    #[serde(default)]
    pub shm: Option<u64>,
    /// Most bytes console.log and console.log.1 hold together (`log_max`).
    #[serde(default = "default_log_max")]
    pub log_max: u64,
    /// Discard the writable layer when the env stops.
    pub ephemeral: bool,
    /// Remove the whole env directory when the env stops (`verse run --rm`).
    pub remove_on_exit: bool,
    /// Start the env only when a client attaches, with its stdio streamed to
    /// that client (`verse run`). Otherwise stdio is /dev/null and the log file.
    pub attach: bool,
    /// The env's veth and addresses; `None`: loopback only.
    #[serde(default)]
    pub net: Option<verse_net::EnvNet>,
    /// Set for `backend = "vm"`: the env runs in this microVM.
    #[serde(default)]
    pub vm: Option<verse_vm::VmConfig>,
    /// Set for `backend = "gvisor"`: the env runs under runsc.
    #[serde(default)]
    pub gvisor: Option<GvisorConfig>,
    /// Resume: restore the env's processes from `checkpoint/` with this criu
    /// instead of starting its command (container backend).
    #[serde(default)]
    pub restore: Option<PathBuf>,
    /// Resume (vm backend): load the VM QEMU saved to this file
    /// (`checkpoint/vm.state`) instead of booting it.
    #[serde(default)]
    pub incoming: Option<PathBuf>,
    /// vm backend, `downloads = "quarantine"`: the directory in the guest
    /// the agent makes for the env's user at boot (the daemon takes files
    /// from it through the agent).
    #[serde(default)]
    pub guest_downloads: Option<String>,
}

fn default_log_max() -> u64 {
    verse_spec::DEFAULT_LOG_MAX
}

/// Where finished envs' directories wait to be deleted, under the state dir.
pub fn trash_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("trash")
}

pub use verse_gvisor::GvisorConfig;

impl ShimConfig {
    /// The writable layer: in the env dir, or on the env's own disk (`disk = "SIZE"`).
    pub fn upper(&self) -> PathBuf {
        verse_disk::layer_dir(&self.env_dir).join("upper")
    }
    pub fn work(&self) -> PathBuf {
        verse_disk::layer_dir(&self.env_dir).join("work")
    }
    pub fn mountpoint(&self) -> PathBuf {
        self.env_dir.join("rootfs")
    }
    pub fn log_path(&self) -> PathBuf {
        self.env_dir.join("console.log")
    }
    /// For a container env whose range is not the one image checkouts are owned by
    /// (ID_BASE): the translation of its layers into its range (see
    /// `verse_sandbox::Rootfs::lower_idmap`).
    pub fn lower_idmap(&self) -> Option<verse_sandbox::IdMap> {
        (self.vm.is_none() && self.gvisor.is_none() && self.id_base != ID_BASE).then_some(
            verse_sandbox::IdMap {
                container_id: ID_BASE,
                host_id: self.id_base,
                size: ID_RANGE,
            },
        )
    }
    pub fn config_path(env_dir: &std::path::Path) -> PathBuf {
        env_dir.join("shim-config.json")
    }
    /// The config an env was last started with, saved in its directory.
    pub fn load(env_dir: &std::path::Path) -> Result<ShimConfig, String> {
        let path = Self::config_path(env_dir);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}
