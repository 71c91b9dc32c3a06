//! HTTP routes of the lifecycle features: pause, snapshots, restore, hibernate,
//! events and diff.

use crate::Daemon;
use crate::error::ApiResult;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::sync::Arc;
use verse_api::{
    ApplyRequest, DiffReport, EnvInfo, HibernateQuery, Removed, RestoreRequest, SnapshotInfo,
    SnapshotRequest,
};
use verse_engine::actions;

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

async fn pause(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::pause(&daemon.engine, name).await?))
}

async fn unpause(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::unpause(&daemon.engine, name).await?))
}

async fn list_snapshots(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    Ok(Json(actions::list_snapshots(&daemon.engine, name).await?))
}

async fn take_snapshot(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<SnapshotRequest>,
) -> ApiResult<Json<SnapshotInfo>> {
    Ok(Json(
        actions::take_snapshot(&daemon.engine, name, request).await?,
    ))
}

async fn remove_snapshot(
    State(daemon): Shared,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Removed>> {
    Ok(Json(
        actions::remove_snapshot(&daemon.engine, (name, id)).await?,
    ))
}

async fn restore(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<RestoreRequest>,
) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::restore(&daemon.engine, name, request).await?))
}

async fn resume(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::resume(&daemon.engine, name).await?))
}

async fn diff_spec(
    State(daemon): Shared,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<Json<DiffReport>> {
    Ok(Json(actions::diff_spec(&daemon.engine, request).await?))
}

async fn hibernate(
    State(daemon): Shared,
    Path(name): Path<String>,
    Query(query): Query<HibernateQuery>,
) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::hibernate(&daemon.engine, name, query).await?))
}
