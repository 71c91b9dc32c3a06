//! Isolation primitives of Verse's container backend: our own runtime built directly on
//! namespaces, overlayfs, cgroups, capabilities, no_new_privs, Landlock and seccomp.
//!
//! - [`spawn`] starts an environment (its PID 1) from a [`ContainerConfig`];
//! - [`exec`] starts another process inside a running environment;
//! - [`Cgroup`] creates, limits, inspects, kills and removes an environment's cgroup
//!   (v2 when `/sys/fs/cgroup` is cgroup2, v1 otherwise).
//!
//! `spawn` and `exec` fork with raw clone(2) and **must be called from a single-threaded
//! process** (Verse's per-env shim).
//!
//! ID mapping: container uid `u` is host uid `host_id + u` (the store shifts file owners
//! accordingly), e.g. `IdMap { container_id: 0, host_id: 100_000_000, size: 65536 }`.
//! Layers checked out for another range are presented through idmapped mounts
//! ([`Rootfs::lower_idmap`], [`idmapped_tree`]).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

mod cgroup;
mod child;
mod error;
mod exec;
mod idmap;
mod mounts;
mod process;
mod security;
mod spawn;

pub use cgroup::{Cgroup, CgroupStats, CgroupVersion, Limits, cgroup_version};
pub use error::SandboxError;
pub use exec::exec;
pub use idmap::{attach_tree, idmapped_tree, layer_userns};
pub use nix::unistd::Pid;
pub use security::ALLOWED_CAPS;
pub use spawn::{spawn, spawn_with};

/// One contiguous id range of a user namespace mapping (used for uids and gids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the env.
    pub container_id: u32,
    /// Host id that `container_id` maps to.
    pub host_id: u32,
    /// Number of ids mapped.
    pub size: u32,
}

/// A host path bind-mounted into the env (always nosuid,nodev).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the env; created if missing. /, /proc, /sys, /dev are refused.
    pub target: PathBuf,
    /// Mount read-only.
    pub readonly: bool,
}

/// The env's root filesystem: an overlay of read-only layers and a per-env upper dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// Read-only layers, top-most first.
    pub lowers: Vec<PathBuf>,
    /// `Some`: the layers are presented through idmapped mounts whose map sends the ids
    /// they are owned by on disk (`container_id..+size`, the range they were checked out
    /// for) to the env's own range (`host_id..`), so an env with a range of its own sees
    /// shared checkouts as its files. `None`: the layers are owned by the env's range.
    pub lower_idmap: Option<IdMap>,
    /// Writable layer (owned by the mapped root, e.g. host uid 100000000).
    pub upper: PathBuf,
    /// Overlay work dir, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// An empty host directory; the overlay is mounted on it only inside the env's
    /// private mount namespace, so the host never sees it mounted.
    pub mountpoint: PathBuf,
}

/// Everything [`spawn`] needs.
#[derive(Debug)]
pub struct ContainerConfig {
    pub rootfs: Rootfs,
    pub volumes: Vec<BindMount>,
    pub hostname: String,
    /// The command; `argv[0]` is looked up in `PATH` from `env` when it has no slash.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory inside the env (absolute).
    pub cwd: PathBuf,
    /// User and group of the command inside the env (0 = the env's root).
    pub uid: u32,
    pub gid: u32,
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    /// Already created, with limits, by the caller; PID 1 is put in it before it runs.
    pub cgroup: Cgroup,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Stay in the host's network namespace instead of a private one with loopback only.
    /// Used ONLY by image builds, for the step that installs packages with apt-get (it must
    /// reach the Debian mirror); environments never get it. The env's root still cannot
    /// reconfigure the host network: the network namespace stays owned by the initial user
    /// namespace, where the env holds no capability.
    pub share_host_network: bool,
    /// Size of the env's `/dev/shm` tmpfs in bytes; `None`: [`DEFAULT_SHM`].
    pub shm_size: Option<u64>,
}

/// Size of an env's `/dev/shm` unless its spec says (`shm`): 64 MiB.
pub const DEFAULT_SHM: u64 = 64 << 20;

/// Everything [`exec`] needs.
#[derive(Debug)]
pub struct ExecConfig {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// User and group inside the env.
    pub uid: u32,
    pub gid: u32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// `stdin` is a pty slave: the command gets it as controlling terminal (setsid +
    /// TIOCSCTTY).
    pub tty: bool,
}
