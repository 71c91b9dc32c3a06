//! One seam for every backend: what the engine does differently for container, vm and
//! gvisor envs is asked of an [`EnvBackend`], chosen once from the env's
//! [`verse_spec::Backend`] by [`of`] (as Incus chooses its instance driver in
//! `drivers/load.go`). What a backend takes at all (volumes, desktop, router, snapshots,
//! hibernate...) is one row each of `verse_spec::caps::TABLE`, which the validator reads
//! too; this trait says *how*.
//!
//! A new backend is a type here implementing the trait, a column of the caps table, and a
//! `ShimConfig` launch the runtime knows.

mod container;
mod gvisor;
mod vm;

pub use vm::{DEFAULT_VM_MEMORY, MAX_VM_LAYERS, vm_cache};

use crate::Engine;
use crate::db::EnvRow;
use crate::error::{EngineError, EngineResult};
use std::path::{Path, PathBuf};
use verse_spec::Backend;
use verse_spec::caps::{Feature, Support};

/// How the host reaches an env's files (`verse copy`, quarantine releases, `files/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Through the env's root on the host (its overlay's merged view).
    HostRoot,
    /// Through the guest's agent, over the shim.
    Guest,
    /// Not at all yet.
    Unsupported,
}

/// How an env's processes and memory are saved to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HibernateWith {
    Criu,
    QemuMigration,
    Unsupported,
}

/// What the shim runs the env on, besides what every env has.
pub use verse_runtime::Launch;

/// What a backend may need to prepare its launch.
pub struct LaunchCtx<'a> {
    pub engine: &'a Engine,
    pub row: &'a EnvRow,
    /// The image's layers, top-most first, and their checkouts.
    pub roots: &'a [verse_store::Hash],
    pub lowers: &'a [PathBuf],
    pub env_dir: &'a Path,
    /// The env has a network namespace the shim wires.
    pub networked: bool,
}

/// What differs between backends, asked by the engine's lifecycle, files, quarantine,
/// disk and hibernate code.
pub trait EnvBackend: Sync {
    fn kind(&self) -> Backend;
    /// Whether the env's ids map onto a host range of its own through a user namespace
    /// (container); otherwise its kernel separates it and it sees the image's own ids.
    fn own_id_range(&self) -> bool {
        false
    }
    /// Whether the host mounts directories into the env (volumes, /downloads,
    /// resolv.conf, the desktop socket) and keeps `disk = SIZE` as a host filesystem
    /// image; a vm guest has its own disks and its agent does these inside.
    fn host_mounts(&self) -> bool {
        true
    }
    fn files(&self) -> Files;
    fn hibernate(&self) -> HibernateWith;
    /// The backend's part of the shim's config.
    fn launch(&self, ctx: &LaunchCtx<'_>) -> EngineResult<Launch>;
    /// Whether it takes `feature` (the caps table's cell), as an error naming `what`.
    fn require(&self, feature: Feature, what: &str) -> EngineResult<()> {
        match self.kind().takes(feature) {
            Support::Yes(_) => Ok(()),
            Support::Refused(why) => Err(EngineError::conflict(format!("{what}: {why}"))),
        }
    }
}

/// The backend an env runs on.
pub fn of(kind: Backend) -> &'static dyn EnvBackend {
    match kind {
        Backend::Container => &container::Container,
        Backend::Vm => &vm::Vm,
        Backend::Gvisor => &gvisor::Gvisor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_answers_for_its_own_kind() {
        for kind in Backend::ALL {
            assert_eq!(of(kind).kind(), kind);
        }
    }

    #[test]
    fn what_a_backend_does_agrees_with_the_caps_table() {
        for kind in Backend::ALL {
            let b = of(kind);
            assert_eq!(
                b.hibernate() != HibernateWith::Unsupported,
                kind.takes(Feature::Hibernate).is_yes(),
                "{kind:?} hibernate"
            );
            assert_eq!(
                b.files() != Files::Unsupported,
                kind.takes(Feature::Files).is_yes(),
                "{kind:?} files"
            );
            // The host mounts volumes only where it mounts anything at all.
            assert!(
                b.host_mounts() || !kind.takes(Feature::Volumes).is_yes(),
                "{kind:?}"
            );
        }
    }
}
