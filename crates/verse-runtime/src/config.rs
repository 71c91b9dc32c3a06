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
    /// What the env runs in: the backend, with what only it needs.
    pub launch: Launch,
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

/// Where finished envs' directories wait to be deleted, under the state dir.
pub fn trash_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("trash")
}

pub use crate::shim::gvisor::GvisorConfig;

/// The backend an env's shim runs it on. Serialised as `"container"`,
/// `{"gvisor": {...}}` or `{"vm": {...}}`; a config without it (written by an
/// older build) is refused rather than taken for a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launch {
    /// Namespaces and an overlay on the host kernel ([`verse_sandbox`]).
    Container,
    /// gVisor's user-space kernel, under runsc.
    Gvisor(GvisorConfig),
    /// A microVM under QEMU, with `verse-agent` inside.
    Vm(verse_vm::VmConfig),
}

impl ShimConfig {
    /// The writable layer: in the env dir, or on the env's own disk (`disk = "SIZE"`).
    pub fn upper(&self) -> PathBuf {
        verse_disk::layer_dir(&self.env_dir).join("upper")
    }
    pub fn work(&self) -> PathBuf {
        verse_disk::layer_dir(&self.env_dir).join("work")
    }
    /// The overlay mount options of the env's rootfs: its layers under its
    /// writable layer.
    pub fn overlay_options(&self) -> String {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.upper().display(),
            self.work().display()
        )
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
        (matches!(self.launch, Launch::Container) && self.id_base != ID_BASE).then_some(
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

#[cfg(test)]
impl ShimConfig {
    /// A container env `web` in `/e`, for tests.
    pub(crate) fn sample() -> ShimConfig {
        ShimConfig {
            name: "web".into(),
            env_dir: "/e".into(),
            socket: "/s".into(),
            lowers: Vec::new(),
            volumes: Vec::new(),
            hostname: "web".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            id_base: ID_BASE,
            cgroup: "verse/web".into(),
            cpu: None,
            memory: None,
            pids: None,
            stop_timeout_ms: 1,
            shm: None,
            log_max: 1 << 20,
            ephemeral: false,
            remove_on_exit: false,
            attach: false,
            net: None,
            launch: Launch::Container,
            restore: None,
            incoming: None,
            guest_downloads: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_names_the_backend_and_a_config_without_it_is_refused() {
        assert_eq!(
            serde_json::to_value(Launch::Container).unwrap(),
            serde_json::json!("container")
        );
        let gvisor = Launch::Gvisor(GvisorConfig {
            runsc: "/usr/bin/runsc".into(),
            platform: "ptrace".into(),
            network: false,
        });
        let value = serde_json::to_value(&gvisor).unwrap();
        assert_eq!(value["gvisor"]["runsc"], "/usr/bin/runsc");
        assert!(matches!(
            serde_json::from_value::<Launch>(value).unwrap(),
            Launch::Gvisor(g) if g.platform == "ptrace"
        ));
        // An older build's config (no `launch`, maybe `vm`) must not start
        // as a container by default.
        let config = ShimConfig::sample();
        let mut value = serde_json::to_value(&config).unwrap();
        assert_eq!(value["launch"], "container");
        let object = value.as_object_mut().unwrap();
        object.remove("launch");
        object.insert("vm".into(), serde_json::Value::Null);
        let error = serde_json::from_value::<ShimConfig>(value).unwrap_err();
        assert!(
            error.to_string().contains("missing field `launch`"),
            "{error}"
        );
    }
}
