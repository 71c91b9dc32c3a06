//! Routes the control filesystem (crates/verse-fs) asked for first: an env's effective
//! definition, one generation's spec, live limits (also `verse limit`), and an env's
//! own files, read-only.

use crate::Daemon;
use crate::error::ApiResult;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::sync::Arc;
use verse_api::{EnvFilesQuery, EnvInfo, GenerationDetail, LimitsRequest};
use verse_engine::actions::EnvFilesAnswer;
use verse_engine::{Actor, actions};

type Shared = State<Arc<Daemon>>;

// A statement, not a tail expression: the route-rights test
// (crates/verse-cli/tests/tokens.rs) reads each route's methods up to the `;`.
#[allow(clippy::let_and_return)]
pub fn routes() -> Router<Arc<Daemon>> {
    let routes = Router::new()
        .route("/v1/envs/{name}/spec", get(env_spec))
        .route("/v1/envs/{name}/limits", post(set_limits))
        .route("/v1/envs/{name}/files", get(env_files))
        .route("/v1/generations/{id}", get(generation));
    routes
}

async fn env_spec(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(actions::env_spec(&daemon.engine, name).await?))
}

async fn env_files(
    State(daemon): Shared,
    Path(name): Path<String>,
    Query(query): Query<EnvFilesQuery>,
) -> ApiResult<Response> {
    Ok(
        match actions::env_files(&daemon.engine, name, query).await? {
            EnvFilesAnswer::Path(path) => Json(path).into_response(),
            EnvFilesAnswer::Bytes(bytes) => {
                ([("content-type", "application/octet-stream")], bytes).into_response()
            }
        },
    )
}

async fn generation(
    State(daemon): Shared,
    Path(id): Path<String>,
) -> ApiResult<Json<GenerationDetail>> {
    Ok(Json(actions::generation(&daemon.engine, id).await?))
}

async fn set_limits(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(request): Json<LimitsRequest>,
) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(
        actions::set_limits(&daemon.engine, &actor, name, request).await?,
    ))
}
