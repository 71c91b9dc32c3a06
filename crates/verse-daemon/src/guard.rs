//! The daemon's side of the guard: who is calling (peer credentials on the
//! unix socket), the audit hook every state-changing handler calls, and the
//! `/v1/audit` routes.

use crate::Daemon;
use crate::error::{ApiError, ApiResult};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use verse_guard::audit::{self, Checkpoint, Record, VerifyReport};

/// Who made a request, as the audit log names them: `local:uid=0` on the
/// unix socket, `token:ID` over TCP, `daemon` for the daemon's own acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn daemon() -> Actor {
        Actor("daemon".into())
    }
}

/// The peer credentials of a unix-socket connection (`SO_PEERCRED`), taken
/// by the kernel when the client connected: they cannot be forged by the client.
#[derive(Debug, Clone, Copy)]
pub struct PeerCred {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
}

impl Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>> for PeerCred {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => PeerCred {
                uid: Some(cred.uid()),
                pid: cred.pid(),
            },
            Err(_) => PeerCred {
                uid: None,
                pid: None,
            },
        }
    }
}

/// Middleware on the unix socket: only root may use it. The socket is
/// already 0600 in a 0700 directory; this holds even if someone loosens
/// those modes, or passes a connected socket to another user.
pub async fn local_root_only(
    ConnectInfo(peer): ConnectInfo<PeerCred>,
    mut request: Request,
    next: Next,
) -> Response {
    if peer.uid != Some(0) {
        let who = peer
            .uid
            .map_or("an unknown uid".to_string(), |u| format!("uid {u}"));
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the local API socket is root-only; this client runs as {who}"),
        )
        .hint("run the command as root, or use a token over the TCP API")
        .into_response();
    }
    request.extensions_mut().insert(Actor("local:uid=0".into()));
    next.run(request).await
}

impl Daemon {
    /// Appends one record to the audit log. A record that cannot be written
    /// is a loud error in the daemon's log; the act has already happened.
    pub fn audit(&self, actor: &Actor, action: &str, env: Option<&str>, detail: impl AsRef<str>) {
        if let Err(e) = self.audit.append(&actor.0, action, env, detail.as_ref()) {
            tracing::error!(action, ?env, "AUDIT RECORD LOST: {e}");
        }
    }
}

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/audit/log", get(audit_log))
        .route("/v1/audit/verify", post(audit_verify))
        .route("/v1/audit/checkpoint", post(audit_checkpoint))
        .route("/v1/tokens", post(mint_token))
        .route("/v1/tokens/revoke", post(revoke_token))
}

/// `POST /v1/tokens`: mint a token.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct MintRequest {
    /// Rights, `KIND:NAME:OPS` separated by `;` or spaces.
    pub allow: String,
    /// How long it is valid, e.g. `1h` (default: until revoked).
    pub ttl: Option<String>,
}

/// `POST /v1/tokens/revoke`.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct RevokeRequest {
    pub id: String,
}

fn token_error(e: verse_guard::token::TokenError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

async fn mint_token(
    State(daemon): State<Arc<Daemon>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Json(request): Json<MintRequest>,
) -> ApiResult<Json<verse_guard::token::Minted>> {
    use verse_guard::token;
    let rights = token::parse_rights(&request.allow).map_err(token_error)?;
    let ttl = request
        .ttl
        .as_deref()
        .map(token::parse_ttl)
        .transpose()
        .map_err(token_error)?;
    let minted = token::mint(&daemon.token_root, &rights, ttl).map_err(token_error)?;
    let detail = format!(
        "id={} rights={} expires={}",
        minted.id,
        minted.rights.join(";"),
        minted.expires.as_deref().unwrap_or("never")
    );
    daemon.audit(&actor, "token-mint", None, detail);
    Ok(Json(minted))
}

async fn revoke_token(
    State(daemon): State<Arc<Daemon>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Json(request): Json<RevokeRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = request.id.trim().to_ascii_lowercase();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            ApiError::bad_request(format!("`{}` is not a token id (hex)", request.id))
                .hint("`verse token mint` prints the id of each token it makes"),
        );
    }
    daemon.db.revoke_token(&id)?;
    daemon.audit(&actor, "token-revoke", None, format!("id={id}"));
    Ok(Json(serde_json::json!({ "revoked": id })))
}

#[derive(Deserialize)]
struct LogQuery {
    env: Option<String>,
}

async fn audit_log(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Vec<Record>>> {
    let dir = daemon.audit.dir().to_path_buf();
    let records =
        tokio::task::spawn_blocking(move || audit::read_records(&dir, query.env.as_deref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    Ok(Json(records))
}

/// The body of `POST /v1/audit/verify`: an exported checkpoint to check
/// the log against, besides the ones the daemon keeps.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct VerifyRequest {
    pub checkpoint: Option<Checkpoint>,
}

async fn audit_verify(
    State(daemon): State<Arc<Daemon>>,
    Json(request): Json<VerifyRequest>,
) -> ApiResult<Json<VerifyReport>> {
    let dir = daemon.audit.dir().to_path_buf();
    let key = daemon.audit.verifying_key();
    let report = tokio::task::spawn_blocking(move || {
        audit::verify(&dir, Some(&key), request.checkpoint.as_ref())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(report))
}

async fn audit_checkpoint(State(daemon): State<Arc<Daemon>>) -> ApiResult<Json<Checkpoint>> {
    match daemon.audit.checkpoint().map_err(ApiError::internal)? {
        Some(checkpoint) => Ok(Json(checkpoint)),
        None => Err(ApiError::conflict(
            "the audit log is empty: there is nothing to sign yet",
        )),
    }
}
