//! The daemon's state in SQLite: images, envs and generations.
//!
//! Whether an env runs is never stored here: the shims are the truth about
//! running processes. This holds what was declared and created.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use verse_api::{GenerationInfo, ImageInfo, Origin};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database holds a record it cannot read: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Full(String),
}

/// Everything the daemon needs to run one env, resolved from a spec entry or
/// a `verse run` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvPlan {
    pub image: String,
    pub backend: verse_spec::Backend,
    /// vm envs: "auto", "kvm" or "tcg"; empty for other backends.
    #[serde(default)]
    pub accel: String,
    pub cpu: Option<f64>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// `disk = "SIZE"`: the env's writes live on a filesystem of this many bytes
    /// (see `verse-disk`); `None`: on the host's, unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    pub ephemeral: bool,
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub hostname: String,
    pub volumes: Vec<(String, String, bool)>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub stop_timeout_ms: u64,
    /// Keys one of which must have signed the image (`[trust] require_signed`); `None`:
    /// unsigned images may run.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// Network policy; absent in rows written before networking existed.
    #[serde(default)]
    pub network: verse_spec::Network,
    /// `reach`: (env, port) pairs.
    #[serde(default)]
    pub reach: Vec<(String, u16)>,
    #[serde(default)]
    pub router: bool,
    #[serde(default)]
    pub restart: verse_spec::Restart,
    #[serde(default)]
    pub health: Option<verse_spec::Health>,
    #[serde(default)]
    pub snapshots: Option<verse_spec::SnapshotSchedule>,
    /// A virtual display in the env (see `desktop.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<verse_spec::desktop::DesktopSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub autostart: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<verse_spec::desktop::Label>,
    /// Which way cut text may cross the desktop's WebSocket (see `web.rs`).
    #[serde(
        default,
        skip_serializing_if = "verse_spec::desktop::Clipboard::is_none"
    )]
    pub clipboard: verse_spec::desktop::Clipboard,
    /// `downloads = "quarantine"`: a watched `/downloads` (see `quarantine.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<verse_spec::Downloads>,
    /// `user = "root"` (or 0) was written in the spec: the image's user does not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root_user_given: bool,
    /// `workdir = "/"` was written in the spec: the image's workdir does not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root_workdir_given: bool,
    /// `shm`: the size of /dev/shm; `None` is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm: Option<u64>,
    /// `log_max`: the console log's cap; `None` is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max: Option<u64>,
}

impl EnvPlan {
    /// The same plan without its network policy: two plans that differ only there can be
    /// brought together live, without restarting the env.
    pub fn without_policy(&self) -> EnvPlan {
        EnvPlan {
            network: verse_spec::Network::None,
            reach: Vec::new(),
            ..self.clone()
        }
    }
}

verse_api::words! {
    /// What the user last asked of an env; `envs.desired` holds its word.
    pub enum Desired("desired state") {
        Running = "running",
        Stopped = "stopped",
    }
}

#[derive(Debug, Clone)]
pub struct EnvRow {
    pub name: String,
    pub origin: Origin,
    pub plan: EnvPlan,
    /// What the user last asked for.
    pub desired: Desired,
    /// `verse run --rm`: forget the env when its command ends.
    pub remove_on_exit: bool,
    pub created_at: i64,
}

pub struct Db {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS envs (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    plan TEXT NOT NULL,
    desired TEXT NOT NULL,
    remove_on_exit INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    digest TEXT NOT NULL,
    source_file TEXT NOT NULL,
    spec TEXT NOT NULL,
    envs TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    id TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
";

impl Db {
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // WAL + NORMAL: durable across crashes of the daemon (not of the host's
        // power), and no fsync on the hot path of `verse run`.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Added with image manifests; older databases get the column here.
        let has_manifest: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('images') WHERE name = 'manifest'")?
            .exists([])?;
        if !has_manifest {
            conn.execute_batch(
                "ALTER TABLE images ADD COLUMN manifest TEXT NOT NULL DEFAULT '';
                 ALTER TABLE images ADD COLUMN layers INTEGER NOT NULL DEFAULT 1;",
            )?;
        }
        conn.execute_batch(crate::db_lifecycle::SCHEMA)?;
        // Added with per-env id ranges; rows made before keep NULL (slot 0, ID_BASE).
        let has_slot: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('envs') WHERE name = 'id_slot'")?
            .exists([])?;
        if !has_slot {
            conn.execute_batch("ALTER TABLE envs ADD COLUMN id_slot INTEGER;")?;
        }
        conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS envs_id_slot ON envs (id_slot);")?;
        // Added with volume snapshots; older databases get the column here.
        let has_volumes: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('snapshots') WHERE name = 'volumes'")?
            .exists([])?;
        if !has_volumes {
            conn.execute_batch(
                "ALTER TABLE snapshots ADD COLUMN volumes TEXT NOT NULL DEFAULT '[]';",
            )?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    /// Puts a token revocation id on the revocation list (idempotent).
    pub fn revoke_token(&self, id: &str) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT OR IGNORE INTO revoked_tokens (id, revoked_at) VALUES (?1, ?2)",
            params![id, now()],
        )?;
        Ok(())
    }

    pub fn is_revoked(&self, id: &str) -> Result<bool, DbError> {
        Ok(self
            .lock()
            .query_row("SELECT 1 FROM revoked_tokens WHERE id = ?1", [id], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn put_image(&self, image: &ImageInfo) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT INTO images (name, root, size, files, created_at, manifest, layers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET root = ?2, size = ?3, files = ?4, created_at = ?5,
               manifest = ?6, layers = ?7",
            params![
                image.name,
                image.root,
                image.size as i64,
                image.files as i64,
                image.created_at,
                image.manifest,
                image.layers as i64
            ],
        )?;
        Ok(())
    }

    pub fn images(&self) -> Result<Vec<ImageInfo>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT name, root, size, files, created_at, manifest, layers FROM images ORDER BY name")?;
        let rows = stmt.query_map([], image_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn image(&self, name: &str) -> Result<Option<ImageInfo>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT name, root, size, files, created_at, manifest, layers FROM images WHERE name = ?1",
                [name],
                image_from_row,
            )
            .optional()?)
    }

    pub fn remove_image(&self, name: &str) -> Result<bool, DbError> {
        Ok(self
            .lock()
            .execute("DELETE FROM images WHERE name = ?1", [name])?
            > 0)
    }

    /// Stores `row`. A new env gets the lowest free id slot (its host id range, see
    /// [`Db::id_slot`]); an existing one keeps the slot it has.
    pub fn put_env(&self, row: &EnvRow) -> Result<(), DbError> {
        let plan = serde_json::to_string(&row.plan).expect("plan serialises");
        let conn = self.lock();
        let exists = conn
            .prepare("SELECT 1 FROM envs WHERE name = ?1")?
            .exists([&row.name])?;
        let slot = if exists {
            None
        } else {
            Some(free_slot(&conn)?)
        };
        conn.execute(
            "INSERT INTO envs (name, origin, plan, desired, remove_on_exit, created_at, id_slot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET origin = ?2, plan = ?3, desired = ?4, remove_on_exit = ?5",
            params![row.name, origin_word(row.origin), plan, row.desired.as_str(), row.remove_on_exit, row.created_at, slot],
        )?;
        Ok(())
    }

    /// The id slot of env `name`: its container ids 0..65536 are host ids
    /// `verse_runtime::id_base_of_slot(slot)..+65536`. 0 for envs made before slots
    /// existed (they keep ID_BASE); `None` when there is no such env.
    pub fn id_slot(&self, name: &str) -> Result<Option<u32>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT COALESCE(id_slot, 0) FROM envs WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_desired(&self, name: &str, desired: Desired) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE envs SET desired = ?2 WHERE name = ?1",
            params![name, desired.as_str()],
        )?;
        Ok(())
    }

    pub fn remove_env(&self, name: &str) -> Result<(), DbError> {
        self.lock()
            .execute("DELETE FROM envs WHERE name = ?1", [name])?;
        Ok(())
    }

    pub fn env(&self, name: &str) -> Result<Option<EnvRow>, DbError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT name, origin, plan, desired, remove_on_exit, created_at FROM envs WHERE name = ?1",
                [name],
                raw_env,
            )
            .optional()?;
        row.map(env_from_raw).transpose()
    }

    pub fn envs(&self) -> Result<Vec<EnvRow>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT name, origin, plan, desired, remove_on_exit, created_at FROM envs ORDER BY name")?;
        let raws = stmt
            .query_map([], raw_env)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(env_from_raw).collect()
    }

    /// Records a new generation and makes it the active one.
    pub fn add_generation(
        &self,
        digest: &str,
        source_file: &str,
        spec_json: &str,
        envs: &[String],
    ) -> Result<u64, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute("UPDATE generations SET active = 0", [])?;
        tx.execute(
            "INSERT INTO generations (created_at, digest, source_file, spec, envs, active) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![now(), digest, source_file, spec_json, serde_json::to_string(envs).expect("serialises")],
        )?;
        let id = tx.last_insert_rowid() as u64;
        tx.commit()?;
        Ok(id)
    }

    pub fn activate_generation(&self, id: u64) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute("UPDATE generations SET active = 0", [])?;
        tx.execute(
            "UPDATE generations SET active = 1 WHERE id = ?1",
            [id as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn generations(&self) -> Result<Vec<GenerationInfo>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, created_at, digest, source_file, envs, active FROM generations ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
            let envs: String = row.get(4)?;
            Ok(GenerationInfo {
                id: row.get::<_, i64>(0)? as u64,
                created_at: row.get(1)?,
                digest: row.get(2)?,
                source_file: row.get(3)?,
                envs: serde_json::from_str(&envs).unwrap_or_default(),
                active: row.get::<_, i64>(5)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn remove_generations(&self, ids: &[u64]) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute(
                "DELETE FROM generations WHERE id = ?1 AND active = 0",
                [*id as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The spec JSON a generation recorded.
    pub fn generation_spec(&self, id: u64) -> Result<Option<String>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT spec FROM generations WHERE id = ?1",
                [id as i64],
                |row| row.get(0),
            )
            .optional()?)
    }
}

/// The lowest slot from 1 up that no env holds (slot 0, ID_BASE, belongs to image
/// builds and to envs made before slots existed). A removed env's slot is free again.
fn free_slot(conn: &Connection) -> Result<u32, DbError> {
    let slot: i64 = conn.query_row(
        "SELECT MIN(c) FROM (SELECT 1 AS c UNION ALL SELECT id_slot + 1 FROM envs WHERE id_slot IS NOT NULL)
         WHERE c NOT IN (SELECT id_slot FROM envs WHERE id_slot IS NOT NULL)",
        [],
        |r| r.get(0),
    )?;
    u32::try_from(slot)
        .ok()
        .filter(|s| *s <= verse_runtime::MAX_ID_SLOT)
        .ok_or_else(|| {
            DbError::Full(format!(
                "every host id range is taken ({} envs); remove an env first",
                verse_runtime::MAX_ID_SLOT
            ))
        })
}

type RawEnv = (String, String, String, String, bool, i64);

fn raw_env(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEnv> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn env_from_raw(
    (name, origin, plan, desired, remove_on_exit, created_at): RawEnv,
) -> Result<EnvRow, DbError> {
    let plan =
        serde_json::from_str(&plan).map_err(|e| DbError::Corrupt(format!("env {name}: {e}")))?;
    let desired = desired
        .parse()
        .map_err(|e| DbError::Corrupt(format!("env {name}: {e}")))?;
    let origin = if origin == "run" {
        Origin::Run
    } else {
        Origin::Spec
    };
    Ok(EnvRow {
        name,
        origin,
        plan,
        desired,
        remove_on_exit,
        created_at,
    })
}

fn image_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ImageInfo> {
    Ok(ImageInfo {
        name: row.get(0)?,
        root: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        files: row.get::<_, i64>(3)? as u64,
        created_at: row.get(4)?,
        manifest: row.get(5)?,
        layers: row.get::<_, i64>(6)? as usize,
        unique_bytes: 0,
        shared_bytes: 0,
    })
}

fn origin_word(origin: Origin) -> &'static str {
    match origin {
        Origin::Spec => "spec",
        Origin::Run => "run",
    }
}

pub fn now() -> i64 {
    verse_runtime::record::now_unix()
}
