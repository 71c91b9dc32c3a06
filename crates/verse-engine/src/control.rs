//! Pause and unpause: freezing an env in place, with the cgroup freezer
//! (container and gvisor backends) or QMP `stop`/`cont`, asked of the env's
//! shim (vm backend: the guest's vCPUs stop, its clock with them).

use crate::Engine;
use crate::envs::{cgroup_of, is_paused};
use crate::error::{EngineError, EngineResult};
use std::sync::Arc;
use verse_api::EnvState;

async fn running_cgroup(daemon: &Engine, name: &str) -> EngineResult<verse_sandbox::Cgroup> {
    if !crate::envs::is_running(daemon, name).await {
        return Err(
            EngineError::conflict(format!("env `{name}` is not running"))
                .hint(format!("start it with `verse up {name}`")),
        );
    }
    cgroup_of(daemon, name).ok_or_else(|| {
        EngineError::internal(format!(
            "env `{name}` runs but its cgroup {} is missing",
            crate::envs::cgroup_path(daemon, name)
        ))
    })
}

fn is_vm(daemon: &Engine, name: &str) -> bool {
    daemon
        .db
        .env(name)
        .ok()
        .flatten()
        .is_some_and(|row| row.plan.backend == verse_spec::Backend::Vm)
}

/// Whether the env is paused right now, by either mechanism (asks a vm env's shim).
pub async fn is_paused_now(daemon: &Engine, name: &str) -> bool {
    if is_vm(daemon, name) {
        return matches!(
            crate::envs::shim_client(daemon, name)
                .call(&verse_runtime::ShimRequest::Status)
                .await,
            Ok(response) if response.status.as_ref().is_some_and(|s| s.paused)
        );
    }
    is_paused(daemon, name)
}

/// QMP `stop` (pause) or `cont` through a vm env's shim; returns the microseconds it took.
async fn vm_pause(daemon: &Arc<Engine>, name: &str, pause: bool, cause: &str) -> EngineResult<u64> {
    let request = if pause {
        verse_runtime::ShimRequest::Pause
    } else {
        verse_runtime::ShimRequest::Unpause
    };
    let started = std::time::Instant::now();
    match crate::envs::shim_client(daemon, name).call(&request).await {
        Ok(_) => {}
        Err(verse_runtime::ShimClientError::Gone(_)) => {
            return Err(
                EngineError::conflict(format!("env `{name}` is not running"))
                    .hint(format!("start it with `verse up {name}`")),
            );
        }
        Err(verse_runtime::ShimClientError::Refused(reason)) => {
            return Err(EngineError::conflict(format!(
                "cannot {} `{name}`: {reason}",
                if pause { "pause" } else { "unpause" }
            )));
        }
        Err(e) => return Err(EngineError::internal(format!("pausing `{name}`: {e}"))),
    }
    let micros = started.elapsed().as_micros() as u64;
    if pause {
        daemon.emit(
            name,
            verse_api::EventKind::Paused,
            Some(EnvState::Paused),
            cause,
        );
    } else {
        daemon.emit(
            name,
            verse_api::EventKind::Unpaused,
            Some(EnvState::Running),
            cause,
        );
    }
    Ok(micros)
}

/// Freezes every process of the env; returns how long the freeze took.
pub async fn pause(daemon: &Arc<Engine>, name: &str, cause: &str) -> EngineResult<u64> {
    if is_vm(daemon, name) {
        return vm_pause(daemon, name, true, cause).await;
    }
    let cgroup = running_cgroup(daemon, name).await?;
    if cgroup.is_frozen() {
        return Err(
            EngineError::conflict(format!("env `{name}` is already paused"))
                .hint(format!("`verse unpause {name}` lets it run again")),
        );
    }
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || cgroup.freeze())
        .await
        .map_err(EngineError::internal)?
        .map_err(|e| EngineError::internal(format!("pausing `{name}`: {e}")))?;
    let micros = started.elapsed().as_micros() as u64;
    daemon.emit(
        name,
        verse_api::EventKind::Paused,
        Some(EnvState::Paused),
        cause,
    );
    Ok(micros)
}

pub async fn unpause(daemon: &Arc<Engine>, name: &str, cause: &str) -> EngineResult<u64> {
    if is_vm(daemon, name) {
        return vm_pause(daemon, name, false, cause).await;
    }
    let cgroup = running_cgroup(daemon, name).await?;
    if !cgroup.is_frozen() {
        return Err(EngineError::conflict(format!("env `{name}` is not paused")));
    }
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || cgroup.thaw())
        .await
        .map_err(EngineError::internal)?
        .map_err(|e| EngineError::internal(format!("unpausing `{name}`: {e}")))?;
    let micros = started.elapsed().as_micros() as u64;
    daemon.emit(
        name,
        verse_api::EventKind::Unpaused,
        Some(EnvState::Running),
        cause,
    );
    Ok(micros)
}

/// Thaws a paused env so it can receive its stop signal (a frozen process
/// cannot act on SIGTERM). Returns whether it was paused. (A paused vm
/// env's shim lets the guest run again itself when asked to stop.)
pub fn thaw_for_stop(daemon: &Engine, name: &str) -> bool {
    match cgroup_of(daemon, name) {
        Some(c) if c.is_frozen() => c.thaw().is_ok(),
        _ => false,
    }
}
