//! Pause and unpause: freezing an env in place, asked of the env's shim,
//! which does it its backend's way: the cgroup freezer (container and gvisor
//! backends) or QMP `stop`/`cont` (vm backend: the guest's vCPUs stop, its
//! clock with them).

use crate::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle;
use std::sync::Arc;
use verse_api::EnvState;
use verse_runtime::{Refusal, ShimClientError, ShimRequest};

/// The env's cgroup, when it exists on the host.
pub fn cgroup_of(daemon: &Daemon, name: &str) -> Option<verse_sandbox::Cgroup> {
    verse_sandbox::Cgroup::open(&lifecycle::cgroup_path(daemon, name))
        .ok()
        .flatten()
}

/// Whether the env is paused right now (asks its shim).
pub async fn is_paused_now(daemon: &Daemon, name: &str) -> bool {
    matches!(
        lifecycle::shim_client(daemon, name)
            .call(&ShimRequest::Status)
            .await,
        Ok(response) if response.status.as_ref().is_some_and(|s| s.paused)
    )
}

/// Freezes the env in place; returns how long that took, in microseconds.
pub async fn pause(daemon: &Arc<Daemon>, name: &str, cause: &str) -> ApiResult<u64> {
    set_paused(daemon, name, true, cause).await
}

pub async fn unpause(daemon: &Arc<Daemon>, name: &str, cause: &str) -> ApiResult<u64> {
    set_paused(daemon, name, false, cause).await
}

async fn set_paused(daemon: &Arc<Daemon>, name: &str, pause: bool, cause: &str) -> ApiResult<u64> {
    let (request, verb, doing) = if pause {
        (ShimRequest::Pause, "pause", "pausing")
    } else {
        (ShimRequest::Unpause, "unpause", "unpausing")
    };
    let started = std::time::Instant::now();
    let answer = lifecycle::shim_client(daemon, name).call(&request).await;
    let micros = started.elapsed().as_micros() as u64;
    match answer {
        Ok(_) => {}
        Err(
            ShimClientError::Gone(_)
            | ShimClientError::Declined {
                refusal: Refusal::NotRunning,
                ..
            },
        ) => {
            return Err(ApiError::conflict(format!("env `{name}` is not running"))
                .hint(format!("start it with `verse up {name}`")));
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::AlreadyPaused,
            ..
        }) => {
            return Err(
                ApiError::conflict(format!("env `{name}` is already paused"))
                    .hint(format!("`verse unpause {name}` lets it run again")),
            );
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::NotPaused,
            ..
        }) => {
            return Err(ApiError::conflict(format!("env `{name}` is not paused")));
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::Failed,
            message,
        }) => {
            return Err(ApiError::internal(format!("{doing} `{name}`: {message}")));
        }
        Err(ShimClientError::Refused(reason)) => {
            return Err(ApiError::conflict(format!(
                "cannot {verb} `{name}`: {reason}"
            )));
        }
        Err(e) => return Err(ApiError::internal(format!("pausing `{name}`: {e}"))),
    }
    if pause {
        daemon.emit(name, "paused", Some(EnvState::Paused), cause);
    } else {
        daemon.emit(name, "unpaused", Some(EnvState::Running), cause);
    }
    Ok(micros)
}
