//! HTTP routes of quarantine and `verse copy` (`verse_engine::quarantine`).

use crate::Daemon;
use crate::error::ApiResult;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::sync::Arc;
use verse_api::quarantine::{CopyReport, CopyRequest, Item, ReleaseRequest};
use verse_engine::Actor;
use verse_engine::quarantine;

type Shared = State<Arc<Daemon>>;

// A statement, not a tail expression: the route-rights test
// (crates/verse-cli/tests/tokens.rs) reads each route's methods up to the `;`.
#[allow(clippy::let_and_return)]
pub fn routes() -> Router<Arc<Daemon>> {
    let routes = Router::new()
        .route("/v1/quarantine", get(list))
        .route("/v1/quarantine/{id}", get(show))
        .route("/v1/quarantine/{id}/release", post(release))
        .route("/v1/quarantine/{id}/reject", post(reject))
        .route("/v1/copy", post(copy));
    routes
}

async fn list(State(daemon): Shared) -> ApiResult<Json<Vec<Item>>> {
    Ok(Json(quarantine::list(&daemon.engine).await?))
}

async fn show(State(daemon): Shared, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Item>> {
    Ok(Json(quarantine::show(&daemon.engine, id).await?))
}

async fn release(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    UrlPath(id): UrlPath<String>,
    Json(request): Json<ReleaseRequest>,
) -> ApiResult<Json<Item>> {
    Ok(Json(
        quarantine::release(&daemon.engine, &actor, id, request).await?,
    ))
}

async fn reject(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Item>> {
    Ok(Json(quarantine::reject(&daemon.engine, &actor, id).await?))
}

async fn copy(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<CopyRequest>,
) -> ApiResult<Json<CopyReport>> {
    Ok(Json(
        quarantine::copy(&daemon.engine, &actor, request).await?,
    ))
}
