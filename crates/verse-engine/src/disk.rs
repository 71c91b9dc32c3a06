//! `disk = "SIZE"`: an env's writable layer on a filesystem of its own (see
//! `verse-disk`), for container and gvisor envs. A vm env's data disk is sized
//! in `backends.rs`.
//!
//! Adding a disk to an env that already wrote to the host's filesystem, or
//! removing one, is refused (its files would have to move); an env whose
//! writable layer on the host is still empty (never started, or ephemeral)
//! can gain one. Growing works; shrinking works while what is in use fits.

use crate::Engine;
use crate::db::EnvPlan;
use crate::error::{EngineError, EngineResult};
use std::path::Path;

/// Whether `plan` puts the writable layer on a disk of its own.
fn uses_layer_disk(plan: &EnvPlan) -> bool {
    plan.disk.is_some() && crate::backend::of(plan.backend).host_mounts()
}

/// Whether the env's directory holds a writable layer with files in it on the
/// host's filesystem (outside any disk).
fn host_layer_in_use(env_dir: &Path) -> bool {
    std::fs::read_dir(env_dir.join("upper")).is_ok_and(|mut entries| entries.next().is_some())
}

/// Before an env is stopped for a new definition: refuses a disk change that
/// cannot be made, so a refusal changes nothing.
pub fn check_change(daemon: &Engine, name: &str, old: &EnvPlan, new: &EnvPlan) -> EngineResult<()> {
    if old.disk == new.disk || !crate::backend::of(new.backend).host_mounts() {
        return Ok(());
    }
    let env_dir = daemon.paths.env_dir(name);
    check_layout(name, &env_dir, new)?;
    if let Some(size) = new.disk {
        verse_disk::check_resize(&env_dir, size).map_err(|e| disk_error(name, e))?;
    }
    Ok(())
}

/// The env's writable layer agrees with `plan` (disk or none), or can be made to.
fn check_layout(name: &str, env_dir: &Path, plan: &EnvPlan) -> EngineResult<()> {
    let has_disk = verse_disk::has_disk(env_dir);
    if uses_layer_disk(plan) && !has_disk && host_layer_in_use(env_dir) {
        return Err(EngineError::conflict(format!(
            "env `{name}` already keeps its writes on the host's filesystem; adding `disk` to it is not supported (its files would have to move)"
        ))
        .hint(format!(
            "keep the env without `disk`, or `verse rm {name}` (its writes are lost) and apply again"
        )));
    }
    if !uses_layer_disk(plan) && has_disk {
        return Err(EngineError::conflict(format!(
            "env `{name}` keeps its writes on a disk of its own; removing `disk` from it is not supported (its files would have to move)"
        ))
        .hint(format!(
            "keep `disk` (a larger size is fine), or `verse rm {name}` (its writes are lost) and apply again"
        )));
    }
    Ok(())
}

/// At start, with the env stopped: mounts the env's disk (made the first time,
/// resized when the size changed). Envs without `disk` do nothing here.
pub fn prepare(name: &str, env_dir: &Path, plan: &EnvPlan) -> EngineResult<()> {
    if !uses_layer_disk(plan) {
        if crate::backend::of(plan.backend).host_mounts() && verse_disk::has_disk(env_dir) {
            return check_layout(name, env_dir, plan);
        }
        return Ok(());
    }
    let size = plan.disk.unwrap_or_default();
    check_layout(name, env_dir, plan)?;
    if !verse_disk::has_disk(env_dir) {
        // An empty writable layer on the host (never written, or ephemeral) gives
        // way to the disk's.
        for sub in ["upper", "work"] {
            let _ = std::fs::remove_dir_all(env_dir.join(sub));
        }
    }
    verse_disk::ensure(env_dir, size).map_err(|e| disk_error(name, e))
}

/// Mounts the disk of an env that has one, e.g. to snapshot or restore it
/// while stopped after a reboot.
pub fn mount_if_any(daemon: &Engine, name: &str, plan: &EnvPlan) -> EngineResult<()> {
    let env_dir = daemon.paths.env_dir(name);
    if uses_layer_disk(plan) && verse_disk::has_disk(&env_dir) {
        return prepare(name, &env_dir, plan);
    }
    Ok(())
}

pub fn disk_error(name: &str, e: verse_disk::DiskError) -> EngineError {
    match e {
        verse_disk::DiskError::NoLoop(_) => EngineError::conflict(format!("env `{name}`: {e}"))
            .hint("`disk` needs loop devices (`verse doctor` checks them); remove `disk` from the spec to run without a limit"),
        verse_disk::DiskError::Shrink { .. } => EngineError::conflict(format!("env `{name}`: {e}"))
            .hint("nothing was changed; delete files in the env first, or keep the size"),
        e => EngineError::internal(format!("env `{name}`: its disk: {e}"))
            .hint("nothing of a new disk is left behind; `verse doctor` checks loop devices and e2fsprogs"),
    }
}
