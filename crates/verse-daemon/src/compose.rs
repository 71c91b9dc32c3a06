//! `POST /v1/compose` and `/v1/compose/add` (`verse_engine::compose`).

use axum::extract::State;
use axum::{Extension, Json};
use std::sync::Arc;
use verse_api::{ComposeAddReport, ComposeAddRequest, ComposeRequest};
use verse_engine::{Actor, compose};

use crate::Daemon;
use crate::error::ApiResult;

pub async fn compose(Json(request): Json<ComposeRequest>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(compose::compose(request).await?))
}

pub async fn add(
    State(daemon): State<Arc<Daemon>>,
    Extension(actor): Extension<Actor>,
    Json(request): Json<ComposeAddRequest>,
) -> ApiResult<Json<ComposeAddReport>> {
    Ok(Json(compose::add(&daemon.engine, &actor, request).await?))
}
