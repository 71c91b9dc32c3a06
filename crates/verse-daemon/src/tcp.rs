//! The API over TCP with TLS (off unless `verse daemon --listen` is given).
//! It accepts only biscuit tokens (`Authorization: Bearer TOKEN`) whose
//! rights cover the route: [`ROUTE_RIGHTS`] names the right of every route,
//! and a route missing from it is refused to every token (fail closed).

use crate::Daemon;
use crate::error::ApiError;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls;
use verse_engine::Actor;
use verse_guard::token::{self, Request as TokenRequest, TokenError};

/// The right each route needs: (method, route, kind, name, operation). A
/// name `{name}` is taken from the request's path.
pub const ROUTE_RIGHTS: &[(&str, &str, &str, &str, &str)] = &[
    ("GET", "/v1/info", "daemon", "*", "read"),
    ("GET", "/v1/envs", "env", "*", "read"),
    ("GET", "/v1/envs/{name}", "env", "{name}", "read"),
    ("DELETE", "/v1/envs/{name}", "env", "{name}", "write"),
    ("POST", "/v1/envs/{name}/up", "env", "{name}", "write"),
    ("POST", "/v1/envs/{name}/down", "env", "{name}", "write"),
    ("POST", "/v1/envs/{name}/exec", "env", "{name}", "exec"),
    ("GET", "/v1/envs/{name}/logs", "env", "{name}", "read"),
    ("POST", "/v1/run", "env", "*", "write"),
    ("POST", "/v1/apply", "spec", "*", "write"),
    ("GET", "/v1/generations", "spec", "*", "read"),
    ("POST", "/v1/rollback", "spec", "*", "write"),
    ("POST", "/v1/generations/gc", "spec", "*", "write"),
    ("GET", "/v1/images", "image", "*", "read"),
    // Import reads, and export writes, any path on the daemon's host as root:
    // only a token that may do anything to the daemon may ask for that.
    ("POST", "/v1/images", "daemon", "*", "write"),
    ("GET", "/v1/images/{name}/verify", "image", "{name}", "read"),
    ("GET", "/v1/images/{name}", "image", "{name}", "read"),
    ("DELETE", "/v1/images/{name}", "image", "{name}", "write"),
    ("POST", "/v1/images/build", "image", "*", "write"),
    ("POST", "/v1/images/gc", "image", "*", "write"),
    ("POST", "/v1/images/{name}/export", "daemon", "*", "write"),
    (
        "POST",
        "/v1/images/{name}/signatures",
        "image",
        "{name}",
        "write",
    ),
    ("GET", "/v1/envs/{name}/net", "env", "{name}", "read"),
    ("GET", "/v1/events", "env", "*", "read"),
    ("POST", "/v1/diff", "spec", "*", "read"),
    ("POST", "/v1/compose", "spec", "*", "read"),
    ("POST", "/v1/compose/add", "spec", "*", "write"),
    ("POST", "/v1/envs/{name}/pause", "env", "{name}", "write"),
    ("POST", "/v1/envs/{name}/unpause", "env", "{name}", "write"),
    (
        "POST",
        "/v1/envs/{name}/hibernate",
        "env",
        "{name}",
        "write",
    ),
    ("POST", "/v1/envs/{name}/resume", "env", "{name}", "write"),
    ("GET", "/v1/envs/{name}/snapshots", "env", "{name}", "read"),
    (
        "POST",
        "/v1/envs/{name}/snapshots",
        "env",
        "{name}",
        "write",
    ),
    (
        "DELETE",
        "/v1/envs/{name}/snapshots/{id}",
        "env",
        "{name}",
        "write",
    ),
    ("POST", "/v1/envs/{name}/restore", "env", "{name}", "write"),
    // The web UI's URL carries its secret: as strong as writing to the daemon.
    ("GET", "/v1/web", "daemon", "*", "write"),
    ("GET", "/v1/audit/log", "audit", "*", "read"),
    ("POST", "/v1/audit/verify", "audit", "*", "read"),
    ("POST", "/v1/audit/checkpoint", "audit", "*", "write"),
    ("POST", "/v1/tokens", "token", "*", "write"),
    ("POST", "/v1/tokens/revoke", "token", "*", "write"),
    ("GET", "/v1/quarantine", "quarantine", "*", "read"),
    ("GET", "/v1/quarantine/{id}", "quarantine", "*", "read"),
    (
        "POST",
        "/v1/quarantine/{id}/release",
        "quarantine",
        "*",
        "write",
    ),
    (
        "POST",
        "/v1/quarantine/{id}/reject",
        "quarantine",
        "*",
        "write",
    ),
    // A copy reads one env and writes another: it needs write on every env.
    ("POST", "/v1/copy", "env", "*", "write"),
    ("GET", "/v1/envs/{name}/spec", "env", "{name}", "read"),
    ("POST", "/v1/envs/{name}/limits", "env", "{name}", "write"),
    ("GET", "/v1/envs/{name}/files", "env", "{name}", "read"),
    ("GET", "/v1/generations/{id}", "spec", "*", "read"),
];

/// Where and how to listen on TCP.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("reading the TLS {what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("the TLS certificate and key do not go together: {0}")]
    Config(rustls::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn tls_config(config: &TcpConfig) -> Result<rustls::ServerConfig, TcpError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |what, path: &PathBuf, reason: String| TcpError::Pem {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| pem("certificate", &config.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem("certificate", &config.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(
            "certificate",
            &config.cert,
            "no certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| pem("key", &config.key, e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TcpError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TcpError::Config)
}

/// Binds the TCP listener (so errors show at start) and returns the task serving it.
pub async fn spawn(
    daemon: Arc<Daemon>,
    config: TcpConfig,
) -> Result<tokio::task::JoinHandle<()>, TcpError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&config)?));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| TcpError::Listen {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(config.addr);
    tracing::info!(%addr, "serving the token-only API over TLS");
    let app = crate::api::router(Arc::clone(&daemon)).layer(axum::middleware::from_fn_with_state(
        Arc::clone(&daemon),
        token_only,
    ));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(stream).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                };
                let service = TowerToHyperService::new(app);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
    }))
}

/// The right a request needs, from its matched route and path parameters.
pub fn right_for(method: &str, route: &str, params: &[(&str, &str)]) -> Option<TokenRequest> {
    let (_, _, kind, name, op) = ROUTE_RIGHTS
        .iter()
        .find(|(m, r, ..)| *m == method && *r == route)?;
    let name = match name.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
        Some(param) => params.iter().find(|(k, _)| *k == param)?.1,
        None => name,
    };
    Some(TokenRequest {
        kind: kind.to_string(),
        name: name.to_string(),
        op: op.to_string(),
    })
}

/// The listings that a token for some envs only may call: it gets back the
/// envs, or the events of the envs, its token may read (see [`ReadScope`]).
const SCOPED_LISTS: &[(&str, &str)] = &[("GET", "/v1/envs"), ("GET", "/v1/events")];

async fn token_only(State(daemon): State<Arc<Daemon>>, request: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    let matched = MatchedPath::from_request_parts(&mut parts, &()).await.ok();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let mut request = Request::from_parts(parts, body);
    let refuse = |status: StatusCode, error: String| {
        ApiError::new(status, error)
            .hint("mint a token with `verse token mint --allow KIND:NAME:OPS` on the host")
            .into_response()
    };
    let Some(bearer) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the TCP API needs a token: send `Authorization: Bearer TOKEN`".into(),
        );
    };
    let method = request.method().as_str().to_string();
    let route = matched.as_ref().map_or("", |m| m.as_str()).to_string();
    let params: Vec<(&str, &str)> = params
        .as_ref()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let Some(wanted) = right_for(&method, &route, &params) else {
        // A route nobody gave a right to is refused to every token.
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{method} {} needs a right no token can hold",
                request.uri().path()
            ),
        );
    };
    let root = daemon.token_root.public();
    let checked = token::authorize(&bearer, root, &wanted, |id| {
        daemon.db.is_revoked(id).unwrap_or(true)
    });
    match checked {
        Ok(ok) => {
            let actor = Actor(format!("token:{}", ok.ids[0]));
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        // A valid token that may not read every env lists the ones it may.
        Err(TokenError::Denied(_)) if SCOPED_LISTS.contains(&(method.as_str(), route.as_str())) => {
            request
                .extensions_mut()
                .insert(Actor("token:scoped".into()));
            request.extensions_mut().insert(crate::scope::ReadScope {
                bearer,
                daemon: Arc::clone(&daemon),
            });
            next.run(request).await
        }
        Err(e) => {
            let (status, actor) = match &e {
                TokenError::Invalid(_) => (StatusCode::UNAUTHORIZED, "token:invalid".to_string()),
                _ => (StatusCode::FORBIDDEN, "token:refused".to_string()),
            };
            let detail = format!("{method} {}: {e}", request.uri().path());
            daemon.audit(&Actor(actor), "denied", None, detail);
            refuse(status, e.to_string())
        }
    }
}
