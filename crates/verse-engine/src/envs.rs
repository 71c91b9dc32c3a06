//! Leaf queries about one env, asked by most of the engine: its row, its shim, whether it
//! runs, is paused or hibernated, its cgroup and its id range. They act on nothing and import
//! nothing from the modules that act on envs (lifecycle, control, hibernate, net, quarantine,
//! snapshots, supervisor...), so every one of those can ask them without an import cycle.

use crate::Engine;
use crate::db::EnvRow;
use crate::error::{EngineError, EngineResult};
use verse_runtime::{ShimClient, ShimRequest};

/// A client of env `name`'s shim socket (connects on each call).
pub fn shim_client(daemon: &Engine, name: &str) -> ShimClient {
    ShimClient::new(&daemon.paths.shim_socket(name))
}

/// Whether the env's main process runs, as its shim says (no shim: not running).
pub async fn is_running(daemon: &Engine, name: &str) -> bool {
    match shim_client(daemon, name).call(&ShimRequest::Status).await {
        Ok(response) => response.status.is_some_and(|s| s.init_pid.is_some()),
        Err(_) => false,
    }
}

/// The env's cgroup, relative to each hierarchy root: `<instance tag>/<name>`.
pub fn cgroup_path(daemon: &Engine, name: &str) -> String {
    format!("{}/{}", daemon.paths.instance_tag(), name)
}

/// The env's cgroup, when it exists on the host.
pub fn cgroup_of(daemon: &Engine, name: &str) -> Option<verse_sandbox::Cgroup> {
    verse_sandbox::Cgroup::open(&cgroup_path(daemon, name))
        .ok()
        .flatten()
}

/// Where a hibernated env's checkpoint lives.
pub fn images_dir(daemon: &Engine, name: &str) -> std::path::PathBuf {
    daemon.paths.env_dir(name).join("checkpoint")
}

/// A complete checkpoint exists (the marker is written last).
pub fn is_hibernated(daemon: &Engine, name: &str) -> bool {
    images_dir(daemon, name).join("complete").exists()
}

/// Host uid (and gid) of the root of container env `name`: the start of its own
/// id range, from the slot the database gave it (ID_BASE for envs made before
/// ranges were per env). The image checkouts stay owned by ID_BASE's range and
/// are idmapped into this one (see docs/security.md).
pub fn env_id_base(daemon: &Engine, name: &str) -> EngineResult<u32> {
    let slot = daemon
        .db
        .id_slot(name)?
        .ok_or_else(|| EngineError::not_found(format!("no env named `{name}`")))?;
    Ok(verse_runtime::id_base_of_slot(slot))
}

/// The env's row, or a not-found error that says how to list the envs.
pub fn find_env(daemon: &Engine, name: &str) -> EngineResult<EnvRow> {
    daemon.db.env(name)?.ok_or_else(|| {
        EngineError::not_found(format!("no env named `{name}`"))
            .hint("`verse ls` lists the envs this daemon knows")
    })
}
