//! HTTP routes of the lifecycle features: pause, snapshots, restore, hibernate,
//! events and diff.

use crate::Daemon;
use crate::db::EnvRow;
use crate::error::{ApiError, ApiResult};
use crate::{control, diff, lifecycle, reconcile, snapshots};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::sync::Arc;
use verse_api::{ApplyRequest, DiffReport, EnvInfo, RestoreRequest, SnapshotInfo, SnapshotRequest};

type Shared = State<Arc<Daemon>>;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/envs/{name}/pause", post(pause))
        .route("/v1/envs/{name}/unpause", post(unpause))
        .route(
            "/v1/envs/{name}/snapshots",
            get(list_snapshots).post(take_snapshot),
        )
        .route("/v1/envs/{name}/snapshots/{id}", delete(remove_snapshot))
        .route("/v1/envs/{name}/restore", post(restore))
        .route("/v1/envs/{name}/hibernate", post(hibernate))
        .route("/v1/envs/{name}/resume", post(resume))
        .route("/v1/events", get(crate::events::stream))
        .route("/v1/diff", post(diff_spec))
}

fn find_env(daemon: &Daemon, name: &str) -> ApiResult<EnvRow> {
    daemon.db.env(name)?.ok_or_else(|| {
        ApiError::not_found(format!("no env named `{name}`"))
            .hint("`verse ls` lists the envs this daemon knows")
    })
}

async fn pause(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    control::pause(&daemon, &name, "verse pause").await?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn unpause(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    control::unpause(&daemon, &name, "verse unpause").await?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn list_snapshots(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    find_env(&daemon, &name)?;
    Ok(Json(daemon.db.snapshots(Some(&name))?))
}

async fn take_snapshot(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<SnapshotRequest>,
) -> ApiResult<Json<SnapshotInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    if let Some(label) = &request.label {
        let taken = daemon.db.snapshots(Some(&name))?;
        if label.is_empty() || label.len() > 128 || label.contains(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "snapshot label {label:?} must be 1-128 printable characters"
            )));
        }
        if taken
            .iter()
            .any(|s| s.label.as_deref() == Some(label.as_str()))
        {
            return Err(ApiError::conflict(format!(
                "env `{name}` already has a snapshot labelled `{label}`"
            )));
        }
    }
    Ok(Json(
        snapshots::take(&daemon, &row, request.label, "user", request.volumes).await?,
    ))
}

async fn remove_snapshot(
    State(daemon): Shared,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let _changes = daemon.changes.lock().await;
    find_env(&daemon, &name)?;
    let snapshot = snapshots::find(&daemon, &name, &id)?;
    daemon.db.remove_snapshot(&name, &snapshot.id)?;
    daemon.emit(
        &name,
        "snapshot-removed",
        None,
        format!("verse snapshot rm {name} {}", snapshot.id),
    );
    Ok(Json(serde_json::json!({ "removed": snapshot.id })))
}

async fn restore(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<RestoreRequest>,
) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    snapshots::restore(&daemon, &row, &request.snapshot).await?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

#[derive(serde::Deserialize)]
struct HibernateQuery {
    /// Drop the saved processes of a hibernated env instead.
    #[serde(default)]
    discard: bool,
    /// How long CRIU may take to stop the env's processes (its `--timeout`).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

async fn hibernate(
    State(daemon): Shared,
    Path(name): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HibernateQuery>,
) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    if query.discard {
        crate::hibernate::discard(&daemon, &row)?;
    } else {
        crate::hibernate::hibernate(&daemon, &row, query.timeout_ms).await?;
    }
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn resume(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    crate::hibernate::resume(&daemon, &row).await?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn diff_spec(
    State(daemon): Shared,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<Json<DiffReport>> {
    let spec = verse_spec::parse_str(&request.source, &request.file_name)
        .map_err(crate::api::spec_errors)?;
    reconcile::check_images(&daemon, &spec, &request.file_name, &request.source)?;
    let actions = reconcile::plan(&daemon, &spec).await?;
    let mut envs = Vec::new();
    for (action, row) in &actions {
        let old = daemon.db.env(&action.env)?;
        envs.push(diff::env_diff(
            action,
            old.as_ref().map(|r| &r.plan),
            row.as_ref().map(|r| &r.plan),
        ));
    }
    Ok(Json(DiffReport { envs }))
}
