//! Pause and unpause: freezing an env in place, asked of the env's shim,
//! which does it its backend's way: the cgroup freezer (container and gvisor
//! backends) or QMP `stop`/`cont` (vm backend: the guest's vCPUs stop, its
//! clock with them).

use crate::Engine;
use crate::envs::shim_client;
use crate::error::{EngineError, EngineResult};
use std::sync::Arc;
use verse_api::{EnvState, EventKind};
use verse_runtime::{Refusal, ShimClientError, ShimRequest};

/// Whether the env is paused right now (asks its shim).
pub async fn is_paused_now(daemon: &Engine, name: &str) -> bool {
    matches!(
        shim_client(daemon, name)
            .call(&ShimRequest::Status)
            .await,
        Ok(response) if response.status.as_ref().is_some_and(|s| s.paused)
    )
}

/// Freezes the env in place; returns how long that took, in microseconds.
pub async fn pause(daemon: &Arc<Engine>, name: &str, cause: &str) -> EngineResult<u64> {
    set_paused(daemon, name, true, cause).await
}

pub async fn unpause(daemon: &Arc<Engine>, name: &str, cause: &str) -> EngineResult<u64> {
    set_paused(daemon, name, false, cause).await
}

async fn set_paused(
    daemon: &Arc<Engine>,
    name: &str,
    pause: bool,
    cause: &str,
) -> EngineResult<u64> {
    let (request, verb, doing) = if pause {
        (ShimRequest::Pause, "pause", "pausing")
    } else {
        (ShimRequest::Unpause, "unpause", "unpausing")
    };
    let started = std::time::Instant::now();
    let answer = shim_client(daemon, name).call(&request).await;
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
            return Err(
                EngineError::conflict(format!("env `{name}` is not running"))
                    .hint(format!("start it with `verse up {name}`")),
            );
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::AlreadyPaused,
            ..
        }) => {
            return Err(
                EngineError::conflict(format!("env `{name}` is already paused"))
                    .hint(format!("`verse unpause {name}` lets it run again")),
            );
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::NotPaused,
            ..
        }) => {
            return Err(EngineError::conflict(format!("env `{name}` is not paused")));
        }
        Err(ShimClientError::Declined {
            refusal: Refusal::Failed,
            message,
        }) => {
            return Err(EngineError::internal(format!(
                "{doing} `{name}`: {message}"
            )));
        }
        Err(ShimClientError::Refused(reason)) => {
            return Err(EngineError::conflict(format!(
                "cannot {verb} `{name}`: {reason}"
            )));
        }
        Err(e) => return Err(EngineError::internal(format!("pausing `{name}`: {e}"))),
    }
    if pause {
        daemon.emit(name, EventKind::Paused, Some(EnvState::Paused), cause);
    } else {
        daemon.emit(name, EventKind::Unpaused, Some(EnvState::Running), cause);
    }
    Ok(micros)
}
