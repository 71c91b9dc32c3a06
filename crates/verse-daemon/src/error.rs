//! API errors: a status and a body the CLI can show as it is. The engine's errors become
//! responses here and nowhere else ([`From<EngineError>`]), as Firecracker's `api_server`
//! turns `VmmActionError`s into responses in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use verse_api::{Diagnostic, ErrorBody, PathChange};
use verse_engine::{EngineError, ErrorKind};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                hint: None,
                diagnostics: Vec::new(),
                changes: Vec::new(),
            },
        }
    }
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }
    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.body.hint = Some(hint.into());
        self
    }
    pub fn diagnostics(mut self, diagnostics: Vec<Diagnostic>) -> Self {
        self.body.diagnostics = diagnostics;
        self
    }
    pub fn changes(mut self, changes: Vec<PathChange>) -> Self {
        self.body.changes = changes;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            body: ErrorBody {
                error: e.message,
                hint: e.hint,
                diagnostics: e.diagnostics,
                changes: e.changes,
            },
        }
    }
}

impl From<verse_engine::db::DbError> for ApiError {
    fn from(e: verse_engine::db::DbError) -> Self {
        EngineError::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
