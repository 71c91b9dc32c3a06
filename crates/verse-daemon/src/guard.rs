//! The daemon's side of the guard: who is calling (peer credentials on the unix socket,
//! checked to be root) and the `/v1/audit` and `/v1/tokens` routes
//! (`verse_engine::guard`).

use crate::Daemon;
use crate::error::ApiError;
use crate::error::ApiResult;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::sync::Arc;
use verse_api::guard::{
    AuditLogQuery, Checkpoint, MintRequest, Minted, Record, RevokeRequest, Revoked, VerifyReport,
    VerifyRequest,
};
use verse_engine::Actor;
use verse_engine::guard;

type Shared = State<Arc<Daemon>>;

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

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/audit/log", get(audit_log))
        .route("/v1/audit/verify", post(audit_verify))
        .route("/v1/audit/checkpoint", post(audit_checkpoint))
        .route("/v1/tokens", post(mint_token))
        .route("/v1/tokens/revoke", post(revoke_token))
}

async fn mint_token(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<MintRequest>,
) -> ApiResult<Json<Minted>> {
    Ok(Json(
        guard::mint_token(&daemon.engine, &actor, request).await?,
    ))
}

async fn revoke_token(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<RevokeRequest>,
) -> ApiResult<Json<Revoked>> {
    Ok(Json(
        guard::revoke_token(&daemon.engine, &actor, request).await?,
    ))
}

async fn audit_log(
    State(daemon): Shared,
    Query(query): Query<AuditLogQuery>,
) -> ApiResult<Json<Vec<Record>>> {
    Ok(Json(guard::audit_log(&daemon.engine, query).await?))
}

async fn audit_verify(
    State(daemon): Shared,
    Json(request): Json<VerifyRequest>,
) -> ApiResult<Json<VerifyReport>> {
    Ok(Json(guard::audit_verify(&daemon.engine, request).await?))
}

async fn audit_checkpoint(State(daemon): Shared) -> ApiResult<Json<Checkpoint>> {
    Ok(Json(guard::audit_checkpoint(&daemon.engine).await?))
}
