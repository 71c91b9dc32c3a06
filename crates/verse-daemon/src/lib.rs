//! The Verse daemon: owns state, brings envs to their declared state, and
//! serves the HTTP API on `$VERSE_ROOT/run/verse/verse.sock`.

#![forbid(unsafe_code)]

//! The Verse daemon: the transport around [`verse_engine::Engine`]. It serves the HTTP API
//! on `$VERSE_ROOT/run/verse/verse.sock` (root only), the token-only API over TLS, and the
//! web UI; each handler is a thin call into the engine, and engine errors become responses
//! in one place (`error.rs`).

mod api;
mod compose;
mod error;
mod events;
mod fs_routes;
pub mod guard;
mod images;
mod lifecycle_api;
mod logs;
mod progress;
mod quarantine;
mod scope;
pub mod tcp;
mod web;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use verse_api::Paths;
use verse_engine::Engine;

pub use error::ApiError;
pub use web::{DEFAULT_WEB_ADDR, WebListen};

/// What the transport serves: the engine, and where the web UI is (set once at start).
pub struct Daemon {
    pub engine: Arc<Engine>,
    pub web: std::sync::OnceLock<verse_api::WebInfo>,
}

/// Handlers read the engine's state (`daemon.db`, `daemon.paths`) through the daemon.
impl std::ops::Deref for Daemon {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Open(#[from] verse_engine::OpenError),
    #[error(transparent)]
    Tcp(#[from] tcp::TcpError),
    #[error("a Verse daemon is already serving {0}")]
    AlreadyRunning(String),
    #[error("listening on {path}: {source}")]
    Listen {
        path: String,
        source: std::io::Error,
    },
    #[error("serving the API: {0}")]
    Serve(std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT. Envs keep running after it stops.
/// `tcp`: also serve the token-only API over TLS there. The web UI is served
/// as `web` says (see [`WebListen`]).
pub async fn serve(
    paths: Paths,
    exe: PathBuf,
    tcp: Option<tcp::TcpConfig>,
    web: WebListen,
) -> Result<(), DaemonError> {
    let daemon = Arc::new(Daemon {
        engine: Arc::new(Engine::open(paths, exe)?),
        web: std::sync::OnceLock::new(),
    });
    let socket = daemon.paths.socket();
    if tokio::net::UnixStream::connect(&socket).await.is_ok() {
        return Err(DaemonError::AlreadyRunning(socket.display().to_string()));
    }
    let _ = std::fs::remove_file(&socket);
    let listener =
        tokio::net::UnixListener::bind(&socket).map_err(|source| DaemonError::Listen {
            path: socket.display().to_string(),
            source,
        })?;
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let _ = std::fs::write(
        daemon.paths.run_dir().join("verse.pid"),
        std::process::id().to_string(),
    );

    let tcp_task = match tcp {
        Some(config) => Some(tcp::spawn(Arc::clone(&daemon), config).await?),
        None => None,
    };
    verse_engine::start(&daemon.engine).await;
    web::start(&daemon, web).await?;
    tracing::info!(socket = %socket.display(), "verse daemon serving");

    let app = api::router(Arc::clone(&daemon));
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down; environments keep running under their shims");
    };
    let app = app.layer(axum::middleware::from_fn(guard::local_root_only));
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<guard::PeerCred>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    if let Some(task) = tcp_task {
        task.abort();
    }
    verse_engine::shutdown(&daemon.engine).await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(daemon.paths.run_dir().join("verse.pid"));
    result.map_err(DaemonError::Serve)
}
