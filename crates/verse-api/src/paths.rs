//! Every host path Verse uses derives from one root (`VERSE_ROOT`, default `/`),
//! so several daemons run side by side in temporary directories.

use std::path::{Path, PathBuf};

/// The host layout of one Verse installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Reads `VERSE_ROOT` (default `/`).
    pub fn from_env() -> Self {
        let root = std::env::var_os("VERSE_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::new(root)
    }

    fn under(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn etc(&self) -> PathBuf {
        self.under("etc/verse")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.under("var/lib/verse")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.under("run/verse")
    }
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("verse.sock")
    }
    pub fn database(&self) -> PathBuf {
        self.state_dir().join("state.db")
    }
    pub fn store(&self) -> PathBuf {
        self.state_dir().join("store")
    }
    pub fn envs(&self) -> PathBuf {
        self.state_dir().join("envs")
    }
    pub fn env_dir(&self, name: &str) -> PathBuf {
        self.envs().join(name)
    }
    pub fn shim_socket(&self, name: &str) -> PathBuf {
        self.run_dir().join("shims").join(format!("{name}.sock"))
    }
    /// Cache of vm envs' erofs layer images, initramfs and the accelerator decision.
    pub fn vm_cache(&self) -> PathBuf {
        self.state_dir().join("vm")
    }
    /// The accelerator decision (KVM or TCG) the first vm env made, and `verse doctor` shows.
    pub fn accel_cache(&self) -> PathBuf {
        self.vm_cache().join("accel.json")
    }

    /// A short tag unique to this root, used to keep host-global names (cgroups)
    /// of different installations apart.
    pub fn instance_tag(&self) -> String {
        let canonical = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        if canonical == Path::new("/") {
            return "verse".to_string();
        }
        // FNV-1a: stable across builds and platforms, no dependency needed for 8 hex digits.
        let mut hash: u32 = 0x811c_9dc5;
        for byte in canonical.as_os_str().as_encoded_bytes() {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        format!("verse-{hash:08x}")
    }
}
