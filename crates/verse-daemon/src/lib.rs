//! The Verse daemon: owns state, brings envs to their declared state, and
//! serves the HTTP API on `$VERSE_ROOT/run/verse/verse.sock`.

mod api;
pub mod db;
mod error;
mod images;
mod lifecycle;
mod progress;
mod reconcile;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use verse_api::Paths;

pub use error::ApiError;

/// The daemon's shared state, one per `VERSE_ROOT`.
pub struct Daemon {
    pub paths: Paths,
    /// The `verse` binary, started as `verse __shim` for each env.
    pub exe: PathBuf,
    pub db: db::Db,
    pub store: verse_store::Store,
    /// Serialises changes to envs (apply, up, down, rm, run's creation), so
    /// two clients never start or remove the same env at once.
    pub changes: tokio::sync::Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("creating {path}: {source}")]
    Layout {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("opening the store at {path}: {source}")]
    Store {
        path: String,
        source: verse_store::StoreError,
    },
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

impl Daemon {
    pub fn open(paths: Paths, exe: PathBuf) -> Result<Daemon, DaemonError> {
        for dir in [
            paths.etc(),
            paths.state_dir(),
            paths.envs(),
            paths.run_dir(),
            paths.run_dir().join("shims"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| DaemonError::Layout {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // State and sockets are root's alone: the local API is root-only.
        for dir in [paths.state_dir(), paths.run_dir()] {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        let db = db::Db::open(&paths.database())?;
        let store =
            verse_store::Store::open(paths.store()).map_err(|source| DaemonError::Store {
                path: paths.store().display().to_string(),
                source,
            })?;
        Ok(Daemon {
            paths,
            exe,
            db,
            store,
            changes: tokio::sync::Mutex::new(()),
        })
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Envs keep running after it stops.
pub async fn serve(paths: Paths, exe: PathBuf) -> Result<(), DaemonError> {
    let daemon = Arc::new(Daemon::open(paths, exe)?);
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

    lifecycle::reattach(&daemon).await;
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
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(daemon.paths.run_dir().join("verse.pid"));
    result.map_err(DaemonError::Serve)
}
