//! HTTP routes of images: build, inspect, remove, sign, gc, export (`verse_engine::images`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use verse_api::{
    BuildRequest, ExportReport, ExportRequest, ImageDetail, ImageGcReport, ImageInfo,
    SignatureDetail, SignatureRequest,
};
use verse_engine::images;

use crate::Daemon;
use crate::error::{ApiError, ApiResult};

type Shared = State<Arc<Daemon>>;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/images/build", post(build))
        .route("/v1/images/gc", post(gc))
        .route("/v1/images/{name}", get(inspect).delete(remove))
        .route("/v1/images/{name}/signatures", post(add_signature))
        .route("/v1/images/{name}/export", post(export))
}

async fn build(
    State(daemon): Shared,
    Query(query): Query<verse_api::ProgressQuery>,
    Json(request): Json<BuildRequest>,
) -> ApiResult<Response> {
    let job = images::build_job(request)?;
    if query.progress {
        return Ok(crate::progress::stream(daemon, move |engine, emit| {
            let report = job.run(engine, emit)?;
            serde_json::to_value(report).map_err(ApiError::internal)
        }));
    }
    Ok(Json(images::build(&daemon.engine, job).await?).into_response())
}

pub async fn list(State(daemon): Shared) -> ApiResult<Json<Vec<ImageInfo>>> {
    Ok(Json(images::list(&daemon.engine).await?))
}

async fn inspect(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<ImageDetail>> {
    Ok(Json(images::inspect(&daemon.engine, name).await?))
}

async fn remove(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<ImageInfo>> {
    Ok(Json(images::remove(&daemon.engine, name).await?))
}

async fn add_signature(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<SignatureRequest>,
) -> ApiResult<Json<SignatureDetail>> {
    Ok(Json(
        images::add_signature(&daemon.engine, name, request).await?,
    ))
}

async fn gc(State(daemon): Shared) -> ApiResult<Json<ImageGcReport>> {
    Ok(Json(images::gc(&daemon.engine).await?))
}

async fn export(
    State(daemon): Shared,
    Path(name): Path<String>,
    Json(request): Json<ExportRequest>,
) -> ApiResult<Json<ExportReport>> {
    Ok(Json(images::export(&daemon.engine, name, request).await?))
}
