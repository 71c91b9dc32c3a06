//! The engine: Verse's domain, apart from any transport. It owns the state database, brings
//! envs to their declared state (plan, reconcile, supervise), runs their lifecycle on every
//! backend (start, stop, pause, hibernate, snapshots), and keeps quarantine, network and the
//! audit hook. It returns [`EngineError`]s that say what went wrong in the domain's words;
//! `verse-daemon` serves it over HTTP and maps those errors to responses in one place.

pub mod actions;
pub mod backend;
pub mod compose;
pub mod control;
pub mod db;
mod db_lifecycle;
pub mod desktop;
pub mod diff;
pub mod disk;
pub mod envfs;
pub mod envs;
pub mod error;
pub mod events;
pub mod guard;
mod guestfs;
pub mod hibernate;
pub mod images;
pub mod lifecycle;
pub mod net;
mod net_watch;
pub mod progress;
pub mod quarantine;
pub mod reconcile;
pub mod snapshots;
pub mod supervisor;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use verse_api::Paths;

pub use error::{EngineError, EngineResult, ErrorKind};
pub use guard::Actor;

/// The engine's shared state, one per `VERSE_ROOT`.
pub struct Engine {
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
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
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
    #[error("opening the quarantine: {0}")]
    Quarantine(#[from] verse_guard::quarantine::QuarantineError),
}

impl Engine {
    pub fn open(paths: Paths, exe: PathBuf) -> Result<Engine, OpenError> {
        for dir in [
            paths.etc(),
            paths.state_dir(),
            paths.envs(),
            paths.run_dir(),
            paths.run_dir().join("shims"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| OpenError::Layout {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // State and sockets are root's alone: the local API is root-only.
        for dir in [paths.state_dir(), paths.run_dir()] {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        let db = db::Db::open(&paths.database())?;
        let store = verse_store::Store::open(paths.store()).map_err(|source| OpenError::Store {
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
        Ok(Engine {
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
        })
    }
}

/// Starts the engine's background work: recovery of interrupted snapshots, reattaching to
/// running envs' shims, and the supervisor, quarantine and network watchers.
pub async fn start(engine: &Arc<Engine>) {
    snapshots::recover(engine);
    lifecycle::reattach(engine).await;
    tokio::spawn(supervisor::run(Arc::clone(engine)));
    tokio::spawn(quarantine::run(Arc::clone(engine)));
    tokio::spawn(net_watch::run(Arc::clone(engine)));
}

/// Stops what the engine holds for the host (the DNS forwarder, network state) and signs the
/// audit head; envs keep running under their shims.
pub async fn shutdown(engine: &Engine) {
    // A clean stop signs the head, so the next checkpoint covers every
    // record this daemon wrote.
    if let Err(e) = engine.audit.checkpoint() {
        tracing::error!("signing the audit checkpoint at shutdown: {e}");
    }
    net::shutdown(engine).await;
}
