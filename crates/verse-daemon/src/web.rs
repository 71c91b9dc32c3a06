//! The web UI's listener: the embedded front end, the same `/v1` API as the
//! unix socket, and WebSockets for an env's terminal and desktop — on
//! 127.0.0.1 only, behind [`verse_web::Guard`] (local Host and Origin, and the
//! per-daemon secret that `verse web` prints).

use crate::error::{ApiError, ApiResult};
use crate::{Daemon, DaemonError, api};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use verse_api::{ExecRequest, WebInfo};
use verse_engine::envs;
use verse_runtime::ShimRequest;
use verse_web::bridge::{self, Options};
use verse_web::rfb::Policy;
use verse_web::{Guard, Verdict};

/// The address the UI listens on unless told otherwise.
pub const DEFAULT_WEB_ADDR: &str = "127.0.0.1:7780";

/// Where (and whether) the daemon serves the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebListen {
    Off,
    /// The default address: if it is taken (another daemon), the daemon runs
    /// without the UI and says so.
    Default,
    /// An address the user asked for: failing to listen there is an error.
    At(SocketAddr),
}

impl WebListen {
    /// Parses `--web`: `off`, or a loopback `IP:PORT` (port 0 picks a free one).
    pub fn parse(text: &str) -> Result<WebListen, String> {
        if text == "off" {
            return Ok(WebListen::Off);
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            format!("--web {text}: expected IP:PORT (e.g. {DEFAULT_WEB_ADDR}) or `off`")
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--web {text}: the UI listens on loopback only (127.0.0.1 or [::1]); reach it from elsewhere through an SSH tunnel (ssh -L 7780:127.0.0.1:7780 HOST)"
            ));
        }
        Ok(WebListen::At(addr))
    }
}

/// Binds the UI's listener and serves it in the background.
pub async fn start(daemon: &Arc<Daemon>, listen: WebListen) -> Result<(), DaemonError> {
    let (addr, explicit) = match listen {
        WebListen::Off => {
            let _ = daemon.web.set(WebInfo {
                url: None,
                error: Some("the daemon was started with --web off".into()),
            });
            return Ok(());
        }
        WebListen::Default => (DEFAULT_WEB_ADDR.parse().expect("valid default"), false),
        WebListen::At(addr) => (addr, true),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(source) if !explicit => {
            let error =
                format!("listening on {addr}: {source}; start the daemon with --web IP:PORT");
            tracing::warn!("web UI not served: {error}");
            let _ = daemon.web.set(WebInfo {
                url: None,
                error: Some(error),
            });
            return Ok(());
        }
        Err(source) => {
            return Err(DaemonError::Listen {
                path: addr.to_string(),
                source,
            });
        }
    };
    let port = listener.local_addr().map_err(DaemonError::Serve)?.port();
    let secret = Guard::random_secret().map_err(DaemonError::Serve)?;
    let guard = Guard::new(secret, port);
    let _ = daemon.web.set(WebInfo {
        url: Some(guard.url()),
        error: None,
    });
    if !verse_web::assets::built() {
        tracing::warn!("{}", verse_web::assets::NOT_BUILT.trim_end());
    }
    tracing::info!(address = %format!("127.0.0.1:{port}"), "web UI serving (`verse web` prints its URL)");
    let app = router(Arc::clone(daemon), guard);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("web UI stopped: {e}");
        }
    });
    Ok(())
}

fn router(daemon: Arc<Daemon>, guard: Guard) -> Router {
    let streams = Router::new()
        .route("/ws/envs/{name}/terminal", get(terminal))
        .route("/ws/envs/{name}/desktop", get(desktop))
        .with_state(Arc::clone(&daemon));
    api::router(daemon)
        .merge(streams)
        .fallback(asset)
        .layer(axum::middleware::from_fn_with_state(guard, check))
}

/// Every request passes the guard first.
async fn check(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard.check(request.headers(), request.uri().query()) {
        Verdict::Allow { set_cookie } => {
            // Acts through the UI are audited as the web UI's (its secret stands
            // for the root user who printed it with `verse web`).
            request
                .extensions_mut()
                .insert(verse_engine::Actor("web:local".into()));
            let mut response = next.run(request).await;
            if let Some(cookie) = set_cookie
                && let Ok(value) = HeaderValue::from_str(&cookie)
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Verdict::Refuse(status, reason) => {
            tracing::warn!(%status, "web request refused: {reason}");
            (status, format!("{reason}\n")).into_response()
        }
    }
}

async fn asset(uri: Uri) -> Response {
    if !verse_web::assets::built() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            verse_web::assets::NOT_BUILT,
        )
            .into_response();
    }
    // Client-side routes (#/env/NAME) all load the index.
    let (bytes, mime) = verse_web::assets::get(uri.path())
        .or_else(|| {
            (!uri.path().contains('.'))
                .then(|| verse_web::assets::get("/"))
                .flatten()
        })
        .unwrap_or((b"not found\n", "text/plain; charset=utf-8"));
    let status = if bytes == b"not found\n" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(bytes))
        .expect("valid response")
}

#[derive(Deserialize)]
struct TerminalQuery {
    #[serde(default)]
    rows: u16,
    #[serde(default)]
    cols: u16,
}

/// A login shell in the env (bash when the image has it), as `exec -t`.
async fn terminal(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(size): Query<TerminalQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    known_env(&daemon, &name)?;
    let request = ExecRequest {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi".into(),
        ],
        env: vec![("TERM".into(), "xterm-256color".into())],
        tty: true,
        cwd: None,
        rows: size.rows.max(1),
        cols: size.cols.max(1),
    };
    Ok(upgrade.on_upgrade(move |socket| async move {
        let what = format!("env `{name}`");
        let shim = envs::shim_client(&daemon, &name)
            .request(&ShimRequest::Exec(request))
            .await;
        match shim {
            Ok((_, shim)) => {
                let end = bridge::terminal(socket, shim, &what, Options::default()).await;
                tracing::debug!(env = %name, ?end, "terminal closed");
            }
            Err(e) => {
                let reason = match e {
                    verse_runtime::ShimClientError::Gone(_) => format!("{what} is not running"),
                    other => format!("{what}: {other}"),
                };
                bridge::refuse(socket, &reason, Options::default()).await;
            }
        }
    }))
}

/// noVNC's connection to the env's display server.
async fn desktop(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let clipboard = daemon
        .db
        .env(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no env named `{name}`")))?
        .plan
        .clipboard;
    let policy = Policy {
        to_env: clipboard.allows_in(),
        to_browser: clipboard.allows_out(),
    };
    let socket = verse_engine::desktop::vnc_socket(&daemon.paths, &name);
    Ok(upgrade
        .protocols(["binary"])
        .on_upgrade(move |ws| async move {
            let what = format!("env `{name}`");
            let end = bridge::vnc(ws, &socket, &what, policy, Options::default()).await;
            if let bridge::End::Protocol(reason) = &end {
                tracing::warn!(env = %name, "desktop connection closed by the clipboard filter: {reason}");
            } else {
                tracing::debug!(env = %name, ?end, "desktop connection closed");
            }
        }))
}

fn known_env(daemon: &Daemon, name: &str) -> ApiResult<()> {
    daemon
        .db
        .env(name)?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("no env named `{name}`")))
}
