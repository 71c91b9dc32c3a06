//! Routes the control filesystem (crates/verse-fs) needed and the API did not
//! have: an env's effective definition, one generation's spec, and live
//! limits (also `verse limit`). Kept apart so the daemon's other modules
//! stay as they were.

use crate::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::guard::Actor;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::sync::Arc;
use verse_api::{EnvInfo, GenerationDetail, LimitsRequest};

type Shared = State<Arc<Daemon>>;

// A statement, not a tail expression: the route-rights test
// (crates/verse-cli/tests/tokens.rs) reads each route's methods up to the `;`.
#[allow(clippy::let_and_return)]
pub fn routes() -> Router<Arc<Daemon>> {
    let routes = Router::new()
        .route("/v1/envs/{name}/spec", get(env_spec))
        .route("/v1/envs/{name}/limits", post(set_limits))
        .route("/v1/generations/{id}", get(generation));
    routes
}

/// The env's effective definition: what the daemon runs it with (its spec
/// entry resolved, or what `verse run` asked for, with live limit changes).
async fn env_spec(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let row = crate::api::find_env(&daemon, &name)?;
    serde_json::to_value(&row.plan)
        .map(Json)
        .map_err(ApiError::internal)
}

async fn generation(
    State(daemon): Shared,
    Path(id): Path<String>,
) -> ApiResult<Json<GenerationDetail>> {
    let all = daemon.db.generations()?;
    let wanted = id.parse::<u64>().ok();
    let Some(info) = all.into_iter().find(|g| Some(g.id) == wanted) else {
        return Err(ApiError::not_found(format!("no generation {id}"))
            .hint("`verse generations` lists the kept generations"));
    };
    let json = daemon
        .db
        .generation_spec(info.id)?
        .ok_or_else(|| ApiError::not_found(format!("no generation {id}")))?;
    let spec = serde_json::from_str(&json)
        .map_err(|e| ApiError::internal(format!("generation {id} is unreadable: {e}")))?;
    Ok(Json(GenerationDetail { info, spec }))
}

fn check_limits(request: &LimitsRequest) -> ApiResult<()> {
    if let Some(cpu) = request.cpu
        && !(cpu.is_finite() && cpu > 0.0 && cpu <= verse_spec::MAX_CPU)
    {
        return Err(ApiError::bad_request(format!(
            "cpu {cpu}: must be more than 0 and at most {} cores (fractions like 0.5 are allowed)",
            verse_spec::MAX_CPU
        )));
    }
    if let Some(memory) = request.memory
        && memory < verse_spec::MIN_MEMORY
    {
        return Err(ApiError::bad_request(format!(
            "memory {memory} bytes: at least {} bytes (4MiB)",
            verse_spec::MIN_MEMORY
        )));
    }
    if let Some(pids) = request.pids
        && !(1..=verse_spec::MAX_PIDS).contains(&pids)
    {
        return Err(ApiError::bad_request(format!(
            "pids {pids}: between 1 and {}",
            verse_spec::MAX_PIDS
        )));
    }
    if request.cpu.is_none() && request.memory.is_none() && request.pids.is_none() {
        return Err(ApiError::bad_request(
            "no limit given: set cpu, memory or pids",
        ));
    }
    Ok(())
}

/// New cgroup limits for an env, live when it runs; audited and evented
/// (`updated`) like the same change made by `verse apply`.
async fn set_limits(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(request): Json<LimitsRequest>,
) -> ApiResult<Json<EnvInfo>> {
    check_limits(&request)?;
    let _changes = daemon.changes.lock().await;
    let mut row = crate::api::find_env(&daemon, &name)?;
    row.plan.cpu = request.cpu.or(row.plan.cpu);
    row.plan.memory = request.memory.or(row.plan.memory);
    row.plan.pids = request.pids.or(row.plan.pids);
    let detail = format!(
        "cpu={:?} memory={:?} pids={:?}",
        row.plan.cpu, row.plan.memory, row.plan.pids
    );
    if crate::lifecycle::is_running(&daemon, &name).await {
        // Only limits differ: the update applies them to the live cgroup.
        crate::supervisor::update(&daemon, &row).await?;
    } else {
        daemon.db.put_env(&row)?;
        daemon.emit(
            &name,
            "updated",
            None,
            format!("verse limit: {detail}, from the next start"),
        );
    }
    daemon.audit(&actor, "limits", Some(&name), &detail);
    let row = crate::api::find_env(&daemon, &name)?;
    Ok(Json(crate::lifecycle::info(&daemon, &row).await))
}
