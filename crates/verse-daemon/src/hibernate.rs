//! Hibernate and resume with CRIU (container backend).
//!
//! Status: hibernate checkpoints the env's process tree with a real
//! `criu dump --leave-running` first, and refuses with CRIU's reason when that
//! fails, leaving the env running. On this runtime it always fails today: the
//! sandbox creates the env's mount, pid, net, uts and ipc namespaces before it
//! unshares the user namespace (so those namespaces belong to the host's user
//! namespace), and CRIU can only checkpoint a tree whose namespaces belong to
//! the tree's own user namespace ("One or more namespaces doesn't belong to the
//! target user namespace"). Resume is therefore not built: no env is ever
//! stopped on the promise of a restore that could not happen.

use crate::Daemon;
use crate::db::EnvRow;
use crate::error::{ApiError, ApiResult};
use std::sync::Arc;

/// Where a hibernated env's checkpoint lives.
pub fn images_dir(daemon: &Daemon, name: &str) -> std::path::PathBuf {
    daemon.paths.env_dir(name).join("checkpoint")
}

/// A complete checkpoint exists (the marker is written last).
pub fn is_hibernated(daemon: &Daemon, name: &str) -> bool {
    images_dir(daemon, name).join("complete").exists()
}

pub async fn hibernate(daemon: &Arc<Daemon>, row: &EnvRow) -> ApiResult<()> {
    let name = &row.name;
    let info = crate::lifecycle::info(daemon, row).await;
    let Some(pid) = info.pid else {
        return Err(ApiError::conflict(format!("env `{name}` is not running")));
    };
    let (criu, version) = verse_doctor::criu::locate().ok_or_else(|| {
        ApiError::conflict(format!(
            "cannot hibernate `{name}`: no CRIU found; the env keeps running"
        ))
        .hint("install one with scripts/install-criu.sh; `verse doctor` reports it")
    })?;
    let dir = daemon.paths.env_dir(name).join("checkpoint.try");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    // --leave-running: the tree is checkpointed and then left as it was, so a
    // failure anywhere keeps the env running untouched.
    let output = tokio::process::Command::new(&criu)
        .args([
            "dump",
            "--leave-running",
            "--tree",
            &pid.to_string(),
            "--images-dir",
        ])
        .arg(&dir)
        .args([
            "--ext-mount-map",
            "auto",
            "--enable-external-sharing",
            "--enable-external-masters",
            "--manage-cgroups=ignore",
            "--network-lock",
            "skip",
            "--log-file",
            "dump.log",
            "-v2",
        ])
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running {}: {e}", criu.display())))?;
    let log = std::fs::read_to_string(dir.join("dump.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let reason = if output.status.success() {
        "CRIU checkpointed the env, but resuming a tree under the env's shim is not built yet"
            .to_string()
    } else {
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("Error") && !l.contains("Dumping FAILED"))
            .collect();
        let mut reason = errors.join("; ");
        if log.contains("doesn't belong to the target user namespace") {
            reason.push_str(
                " (the container backend creates the env's other namespaces before its user namespace; CRIU needs them owned by it)",
            );
        }
        reason
    };
    daemon.emit(
        name,
        "hibernate-refused",
        None,
        format!("criu {version}: {reason}; the env keeps running"),
    );
    Err(ApiError::conflict(format!(
        "cannot hibernate `{name}` with criu {version}: {reason}; the env keeps running"
    ))
    .hint("`verse pause` freezes it in place instead (memory stays allocated)"))
}

pub async fn resume(daemon: &Arc<Daemon>, row: &EnvRow) -> ApiResult<()> {
    if !is_hibernated(daemon, &row.name) {
        return Err(
            ApiError::conflict(format!("env `{}` is not hibernated", row.name))
                .hint(format!("`verse up {}` starts a stopped env", row.name)),
        );
    }
    Err(ApiError::internal("resume is not built yet"))
}
