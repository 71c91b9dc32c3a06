//! What a token may read of a list (`GET /v1/envs`, `GET /v1/events`): set by the TCP
//! API's token check, read by the list handlers. Its own module, so the handlers and the
//! TCP layer do not import each other.

use crate::Daemon;
use std::sync::Arc;
use verse_guard::token::{self, Request as TokenRequest};

/// Set on a request to one of the TCP API's scoped lists (`tcp::SCOPED_LISTS`) whose
/// token may not read every env: the handler keeps only what [`ReadScope::may_read`] allows.
#[derive(Clone)]
pub struct ReadScope {
    pub(crate) bearer: String,
    pub(crate) daemon: Arc<Daemon>,
}

impl ReadScope {
    /// Whether the token may read env `name` (`env:NAME:read`), checked like
    /// any route's right.
    pub fn may_read(&self, name: &str) -> bool {
        let wanted = TokenRequest {
            kind: "env".into(),
            name: name.into(),
            op: "read".into(),
        };
        token::authorize(
            &self.bearer,
            self.daemon.token_root.public(),
            &wanted,
            |id| self.daemon.db.is_revoked(id).unwrap_or(true),
        )
        .is_ok()
    }
}
