//! The Verse daemon: owns state, brings envs to their declared state, and
//! serves the HTTP API on `$VERSE_ROOT/run/verse/verse.sock`.

mod api;
mod backends;
mod compose;
mod control;
pub mod db;
mod db_lifecycle;
pub mod desktop;
mod diff;
mod disk;
mod envfs;
mod error;
mod events;
mod fs_routes;
pub mod guard;
mod guestfs;
mod hibernate;
mod images;
mod lifecycle;
mod lifecycle_api;
mod logs;
mod net;
mod net_watch;
mod progress;
pub mod quarantine;
mod reconcile;
mod snapshots;
mod supervisor;
pub mod tcp;
mod web;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use verse_api::Paths;

pub use error::ApiError;
pub use web::{DEFAULT_WEB_ADDR, WebListen};

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
    /// Host networking of this root: addresses, nftables table, routes.
    pub net: verse_net::Host,
    /// The DNS forwarder on the gateway address, while envs have a network.
    pub dns: std::sync::Mutex<Option<verse_net::DnsForwarder>>,
    /// Event broadcast and what the daemon last saw of each env.
    pub watch: events::Watch,
    /// Restart backoff and health-check bookkeeping.
    pub supervisor: supervisor::Supervisor,
    /// The tamper-evident audit log (`var/lib/verse/audit/`), signed with
    /// the host key (`etc/verse/host.key`).
    pub audit: verse_guard::AuditLog,
    /// Signs capability tokens (`etc/verse/token.key`).
    pub token_root: biscuit_auth::KeyPair,
    /// Quarantined downloads and copies (`var/lib/verse/quarantine/`).
    pub quarantine: quarantine::QuarantineState,
    /// Where the web UI is served (set once at start).
    pub web: std::sync::OnceLock<verse_api::WebInfo>,
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
    #[error(transparent)]
    Audit(#[from] verse_guard::AuditError),
    #[error(transparent)]
    Token(#[from] verse_guard::token::TokenError),
    #[error(transparent)]
    Tcp(#[from] tcp::TcpError),
    #[error("opening the quarantine: {0}")]
    Quarantine(#[from] verse_guard::quarantine::QuarantineError),
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
        let host_key = verse_guard::audit::load_or_create_host_key(&paths.etc().join("host.key"))?;
        // Every record is fdatasync'ed before the request that made it
        // returns: see the durability note in verse_guard::audit.
        let audit = verse_guard::AuditLog::open(
            &paths.state_dir().join("audit"),
            host_key,
            verse_guard::Durability::EveryRecord,
        )?;
        let token_root =
            verse_guard::token::load_or_create_root_key(&paths.etc().join("token.key"))?;
        let net = verse_net::Host::open(&paths.state_dir(), &paths.instance_tag());
        let quarantine = quarantine::QuarantineState::open(&paths, &exe)?;
        Ok(Daemon {
            quarantine,
            token_root,
            net,
            dns: std::sync::Mutex::new(None),
            paths,
            exe,
            db,
            store,
            changes: tokio::sync::Mutex::new(()),
            watch: events::Watch::default(),
            supervisor: supervisor::Supervisor::default(),
            audit,
            web: std::sync::OnceLock::new(),
        })
    }
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

    snapshots::recover(&daemon);
    let tcp_task = match tcp {
        Some(config) => Some(tcp::spawn(Arc::clone(&daemon), config).await?),
        None => None,
    };
    lifecycle::reattach(&daemon).await;
    tokio::spawn(supervisor::run(Arc::clone(&daemon)));
    tokio::spawn(quarantine::run(Arc::clone(&daemon)));
    tokio::spawn(net_watch::run(Arc::clone(&daemon)));
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
    // A clean stop signs the head, so the next checkpoint covers every
    // record this daemon wrote.
    if let Err(e) = daemon.audit.checkpoint() {
        tracing::error!("signing the audit checkpoint at shutdown: {e}");
    }
    net::shutdown(&daemon).await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(daemon.paths.run_dir().join("verse.pid"));
    result.map_err(DaemonError::Serve)
}
