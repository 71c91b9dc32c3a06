//! `POST /v1/compose`: the same composer as `verse compose`, for API clients and the web UI.
//! The daemon's own VERSE_COMPOSE_ENDPOINT (if any) names the model; the answer is the JSON
//! `verse compose --json` prints.

use axum::Json;
use verse_api::ComposeRequest;
use verse_compose::model::{ModelConfig, compose_with};
use verse_compose::{ComposeError, Options};

use crate::error::{ApiError, ApiResult};

pub async fn compose(Json(request): Json<ComposeRequest>) -> ApiResult<Json<serde_json::Value>> {
    let options = Options { name: request.name };
    let config = ModelConfig::from_env();
    let composition = compose_with(&request.prompt, &options, config.as_ref())
        .await
        .map_err(|e| match e {
            ComposeError::EmptyPrompt | ComposeError::TooLong(_) => ApiError::bad_request(
                e.to_string(),
            )
            .hint("describe the env, e.g. \"a python dev box with 2 cores and no internet\""),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(Json(composition.to_json()))
}
