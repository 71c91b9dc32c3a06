//! The engine's one error type. It says what kind of failure happened in the domain's own
//! words (not found, conflict, ...) plus the sentence and hint a person reads; it knows
//! nothing of HTTP. The daemon maps [`ErrorKind`] to a status code in one place
//! (`verse_daemon::error`), the way Firecracker's `api_server` maps `VmmActionError`.

use verse_api::{Diagnostic, PathChange};

/// What went wrong, as a client would want to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed or names something impossible.
    Invalid,
    /// The env, image, snapshot, generation... it names does not exist.
    NotFound,
    /// The request is well formed but the current state refuses it (running, locked, full).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// A spec or plan was read and rejected; `diagnostics` say where.
    Rejected,
    /// The engine failed doing something it should have been able to do.
    Internal,
}

/// An error with the hint and structured details a client shows as they are.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    pub changes: Vec<PathChange>,
}

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            kind,
            message: message.into(),
            hint: None,
            diagnostics: Vec::new(),
            changes: Vec::new(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Rejected, message)
    }
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, error.to_string())
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn diagnostics(mut self, diagnostics: Vec<Diagnostic>) -> Self {
        self.diagnostics = diagnostics;
        self
    }
    pub fn changes(mut self, changes: Vec<PathChange>) -> Self {
        self.changes = changes;
        self
    }
}

impl From<crate::db::DbError> for EngineError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Full(m) => EngineError::conflict(m),
            e => EngineError::internal(e),
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// A spec refused at apply time for these positioned problems; nothing was changed.
pub fn rejected(diagnostics: Vec<Diagnostic>) -> EngineError {
    let summary = diagnostics
        .iter()
        .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
        .collect::<Vec<_>>()
        .join("\n");
    EngineError::rejected(summary)
        .hint("nothing was changed")
        .diagnostics(diagnostics)
}
