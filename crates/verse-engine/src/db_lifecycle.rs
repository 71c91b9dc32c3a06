//! State of the lifecycle features in SQLite: events, snapshots, notes and
//! pending fallbacks.

use crate::db::{Db, DbError, EnvPlan};
use rusqlite::{OptionalExtension, params};
use verse_api::{EnvState, EventInfo, EventKind, SnapshotInfo};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    env TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    cause TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    env TEXT NOT NULL,
    id TEXT NOT NULL,
    label TEXT,
    root TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    new_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    origin TEXT NOT NULL,
    frozen_ms INTEGER NOT NULL,
    volumes TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (env, id)
);
CREATE TABLE IF NOT EXISTS env_notes (
    name TEXT PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_fallbacks (
    name TEXT PRIMARY KEY,
    previous_plan TEXT NOT NULL,
    generation INTEGER,
    deadline_ms INTEGER NOT NULL
);
";

/// A change `verse apply` made that is undone if the env does not prove healthy in time.
#[derive(Debug, Clone)]
pub struct PendingFallback {
    pub name: String,
    pub previous_plan: EnvPlan,
    /// The generation whose definition the previous plan came from.
    pub generation: Option<u64>,
    pub deadline_ms: i64,
}

fn state_word(state: Option<EnvState>) -> Option<String> {
    state.map(|s| s.to_string())
}

fn parse_state(word: Option<String>) -> Option<EnvState> {
    serde_json::from_value(serde_json::Value::String(word?)).ok()
}

impl Db {
    pub fn add_event(
        &self,
        time_ms: i64,
        env: &str,
        kind: EventKind,
        state: Option<EnvState>,
        cause: &str,
    ) -> Result<EventInfo, DbError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO events (time_ms, env, kind, state, cause) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![time_ms, env, kind.as_str(), state_word(state), cause],
        )?;
        Ok(EventInfo {
            id: conn.last_insert_rowid() as u64,
            time_ms,
            env: env.to_string(),
            kind,
            state,
            cause: cause.to_string(),
        })
    }

    /// Events after `after` (an event id), oldest first, at most `limit` of the newest.
    pub fn events(
        &self,
        after: u64,
        env: Option<&str>,
        limit: u64,
    ) -> Result<Vec<EventInfo>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, time_ms, env, kind, state, cause FROM events
             WHERE id > ?1 AND (?2 IS NULL OR env = ?2) ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after as i64, env, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                row.get(1)?,
                row.get(2)?,
                row.get::<_, String>(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time_ms, env, kind, state, cause) = row?;
            let kind = kind
                .parse()
                .map_err(|e| DbError::Corrupt(format!("event {id}: {e}")))?;
            out.push(EventInfo {
                id,
                time_ms,
                env,
                kind,
                state: parse_state(state),
                cause,
            });
        }
        out.reverse();
        Ok(out)
    }

    pub fn put_snapshot(&self, s: &SnapshotInfo) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT INTO snapshots (env, id, label, root, size, files, new_bytes, created_at, origin, frozen_ms, volumes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                s.env,
                s.id,
                s.label,
                s.root,
                s.size as i64,
                s.files as i64,
                s.new_bytes as i64,
                s.created_at,
                s.origin,
                s.frozen_ms as i64,
                serde_json::to_string(&s.volumes).map_err(|e| DbError::Corrupt(e.to_string()))?
            ],
        )?;
        Ok(())
    }

    /// Snapshots of `env` (all envs when `None`), oldest first.
    pub fn snapshots(&self, env: Option<&str>) -> Result<Vec<SnapshotInfo>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT env, id, label, root, size, files, new_bytes, created_at, origin, frozen_ms, volumes
             FROM snapshots WHERE (?1 IS NULL OR env = ?1)
             ORDER BY env, created_at, CAST(substr(id, 2) AS INTEGER)",
        )?;
        let rows = stmt.query_map(params![env], |row| {
            Ok(SnapshotInfo {
                env: row.get(0)?,
                id: row.get(1)?,
                label: row.get(2)?,
                root: row.get(3)?,
                size: row.get::<_, i64>(4)? as u64,
                files: row.get::<_, i64>(5)? as u64,
                new_bytes: row.get::<_, i64>(6)? as u64,
                created_at: row.get(7)?,
                origin: row.get(8)?,
                frozen_ms: row.get::<_, i64>(9)? as u64,
                volumes: serde_json::from_str(&row.get::<_, String>(10)?).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        10,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The next free snapshot id of an env (`s1`, `s2`, ...; never reused while the env exists).
    pub fn next_snapshot_id(&self, env: &str) -> Result<String, DbError> {
        let n: Option<i64> = self.lock().query_row(
            "SELECT MAX(CAST(substr(id, 2) AS INTEGER)) FROM snapshots WHERE env = ?1",
            [env],
            |row| row.get(0),
        )?;
        Ok(format!("s{}", n.unwrap_or(0) + 1))
    }

    pub fn remove_snapshot(&self, env: &str, id: &str) -> Result<bool, DbError> {
        Ok(self.lock().execute(
            "DELETE FROM snapshots WHERE env = ?1 AND id = ?2",
            params![env, id],
        )? > 0)
    }

    pub fn remove_snapshots_of(&self, env: &str) -> Result<(), DbError> {
        self.lock()
            .execute("DELETE FROM snapshots WHERE env = ?1", [env])?;
        Ok(())
    }

    pub fn set_note(&self, env: &str, note: Option<&str>) -> Result<(), DbError> {
        let conn = self.lock();
        match note {
            Some(note) => conn.execute(
                "INSERT INTO env_notes (name, note) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET note = ?2",
                params![env, note],
            )?,
            None => conn.execute("DELETE FROM env_notes WHERE name = ?1", [env])?,
        };
        Ok(())
    }

    pub fn note(&self, env: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .lock()
            .query_row("SELECT note FROM env_notes WHERE name = ?1", [env], |row| {
                row.get(0)
            })
            .optional()?)
    }

    pub fn put_fallback(&self, f: &PendingFallback) -> Result<(), DbError> {
        let plan = serde_json::to_string(&f.previous_plan).expect("plan serialises");
        self.lock().execute(
            "INSERT INTO pending_fallbacks (name, previous_plan, generation, deadline_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET previous_plan = ?2, generation = ?3, deadline_ms = ?4",
            params![f.name, plan, f.generation.map(|g| g as i64), f.deadline_ms],
        )?;
        Ok(())
    }

    pub fn clear_fallback(&self, env: &str) -> Result<(), DbError> {
        self.lock()
            .execute("DELETE FROM pending_fallbacks WHERE name = ?1", [env])?;
        Ok(())
    }

    pub fn fallbacks(&self) -> Result<Vec<PendingFallback>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT name, previous_plan, generation, deadline_ms FROM pending_fallbacks",
        )?;
        let raws = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter()
            .map(|(name, plan, generation, deadline_ms)| {
                Ok(PendingFallback {
                    previous_plan: serde_json::from_str(&plan)
                        .map_err(|e| DbError::Corrupt(format!("fallback of {name}: {e}")))?,
                    name,
                    generation: generation.map(|g| g as u64),
                    deadline_ms,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before volume snapshots gains the column and keeps its rows.
    #[test]
    fn snapshots_of_an_older_database_read_with_no_volumes_and_new_ones_keep_theirs() {
        let dir = std::env::temp_dir().join(format!(
            "verse-db-volumes-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE snapshots (env TEXT NOT NULL, id TEXT NOT NULL, label TEXT,
                 root TEXT NOT NULL, size INTEGER NOT NULL, files INTEGER NOT NULL,
                 new_bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, origin TEXT NOT NULL,
                 frozen_ms INTEGER NOT NULL, PRIMARY KEY (env, id));
                 INSERT INTO snapshots VALUES ('box', 's1', NULL, 'r', 1, 1, 0, 5, 'user', 0);",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let mut all = db.snapshots(Some("box")).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].volumes.is_empty());
        let mut with = all.remove(0);
        with.id = "s2".into();
        with.created_at = 6;
        with.volumes = vec![verse_api::VolumeSnapshot {
            path: "/data".into(),
            host: "/srv/data".into(),
            root: "abc".into(),
        }];
        db.put_snapshot(&with).unwrap();
        let all = db.snapshots(Some("box")).unwrap();
        assert_eq!(all[1].volumes, with.volumes);
        drop(db);
        // Opening again does not try to add the column twice.
        Db::open(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
