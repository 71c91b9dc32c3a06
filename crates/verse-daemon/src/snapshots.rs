//! Snapshots of an env's writable layer: frozen for as long as reading the
//! upper directory into the store takes (unchanged files cost nothing: the
//! store deduplicates them against everything it holds), restored as a
//! private copy owned by the env's id range.
//!
//! Container backend only. Volumes are not included.

use crate::Daemon;
use crate::db::EnvRow;
use crate::error::{ApiError, ApiResult};
use crate::{control, lifecycle};
use std::path::Path;
use std::sync::Arc;
use verse_api::{EnvState, SnapshotInfo};
use verse_runtime::ID_BASE;

fn upper(daemon: &Daemon, name: &str) -> std::path::PathBuf {
    daemon.paths.env_dir(name).join("upper")
}

/// Takes a snapshot. A running env is frozen while its writable layer is read
/// (so the copy is consistent) and thawed after, unless it was paused already.
pub async fn take(
    daemon: &Arc<Daemon>,
    row: &EnvRow,
    label: Option<String>,
    origin: &str,
) -> ApiResult<SnapshotInfo> {
    let name = row.name.clone();
    if row.plan.backend == "vm" {
        return Err(ApiError::conflict(format!(
            "cannot snapshot `{name}`: a vm env keeps its writes in a disk image its guest has mounted, not in an overlay layer; snapshots of vm envs are not built"
        ))
        .hint(format!(
            "`verse hibernate {name}` saves the whole VM (memory and devices) instead"
        )));
    }
    let upper = upper(daemon, &name);
    if !upper.is_dir() {
        return Err(ApiError::conflict(format!(
            "env `{name}` has no writable layer yet (it never started)"
        ))
        .hint(format!("start it with `verse up {name}` first")));
    }
    let running = lifecycle::is_running(daemon, &name).await;
    let cgroup = if running {
        control::cgroup_of(daemon, &name)
    } else {
        None
    };
    let worker = Arc::clone(daemon);
    let (layer, frozen_ms) = tokio::task::spawn_blocking(move || {
        let was_frozen = cgroup.as_ref().is_some_and(|c| c.is_frozen());
        let started = std::time::Instant::now();
        if let Some(c) = &cgroup
            && !was_frozen
        {
            c.freeze()
                .map_err(|e| ApiError::internal(format!("freezing `{name}`: {e}")))?;
        }
        let mut progress = verse_store::NoProgress;
        let layer = worker.store.import_upper(&upper, ID_BASE, &mut progress);
        if let Some(c) = &cgroup
            && !was_frozen
        {
            // Thaw even when the import failed: a snapshot never leaves an env frozen.
            let _ = c.thaw();
        }
        let frozen_ms = if cgroup.is_some() && !was_frozen {
            started.elapsed().as_millis() as u64
        } else {
            0
        };
        let layer = layer.map_err(|e| {
            ApiError::internal(format!("reading the writable layer of `{name}`: {e}"))
                .hint("the env keeps running; nothing was recorded")
        })?;
        Ok::<_, ApiError>((layer, frozen_ms))
    })
    .await
    .map_err(ApiError::internal)??;
    let info = SnapshotInfo {
        id: daemon.db.next_snapshot_id(&row.name)?,
        env: row.name.clone(),
        label,
        root: layer.root.to_string(),
        size: layer.size,
        files: layer.files,
        new_bytes: layer.new_bytes,
        created_at: crate::db::now(),
        origin: origin.into(),
        frozen_ms,
    };
    daemon.db.put_snapshot(&info)?;
    daemon.emit(
        &row.name,
        "snapshot",
        None,
        format!(
            "{} snapshot {}{} ({} files, {} bytes new, frozen {} ms)",
            origin,
            info.id,
            info.label
                .as_ref()
                .map_or(String::new(), |l| format!(" \"{l}\"")),
            info.files,
            info.new_bytes,
            info.frozen_ms
        ),
    );
    Ok(info)
}

pub fn find(daemon: &Daemon, env: &str, id: &str) -> ApiResult<SnapshotInfo> {
    let all = daemon.db.snapshots(Some(env))?;
    all.iter()
        .find(|s| s.id == id || s.label.as_deref() == Some(id))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
            ApiError::not_found(format!(
                "env `{env}` has no snapshot `{id}` (it has: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
            .hint(format!("`verse snapshots {env}` lists them"))
        })
}

/// Stops the env, replaces its writable layer with the snapshot's, and starts it
/// again if it was running. The old layer is swapped out by renames, so a crash
/// at any point leaves either the old or the new layer in place (see [`recover`]).
pub async fn restore(daemon: &Arc<Daemon>, row: &EnvRow, id: &str) -> ApiResult<()> {
    let snapshot = find(daemon, &row.name, id)?;
    let root: verse_store::Hash = snapshot
        .root
        .parse()
        .map_err(|e| ApiError::internal(format!("snapshot {id} has a bad root: {e}")))?;
    if crate::hibernate::is_hibernated(daemon, &row.name) {
        return Err(ApiError::conflict(format!(
            "env `{}` is hibernated; restoring a snapshot would throw its saved processes away",
            row.name
        ))
        .hint("resume it first, or discard the hibernation"));
    }
    let was_running = lifecycle::is_running(daemon, &row.name).await;
    let env_dir = daemon.paths.env_dir(&row.name);
    let tmp = env_dir.join("upper.restoring");
    let _ = std::fs::remove_dir_all(&tmp);
    // Materialise before stopping: the env is down only for the swap.
    let worker = Arc::clone(daemon);
    let tmp2 = tmp.clone();
    tokio::task::spawn_blocking(move || worker.store.materialize_upper(&root, &tmp2, ID_BASE))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::internal(format!("writing snapshot {id}: {e}"))
                .hint("the env was not changed")
        })?;
    lifecycle::stop_because(
        daemon,
        &row.name,
        row.plan.stop_timeout_ms,
        &format!("verse restore {} {}", row.name, snapshot.id),
    )
    .await?;
    swap_in(&env_dir, &tmp)
        .map_err(|e| ApiError::internal(format!("replacing the writable layer: {e}")))?;
    daemon.emit(
        &row.name,
        "restored",
        None,
        format!("writable layer replaced by snapshot {}", snapshot.id),
    );
    if was_running {
        lifecycle::start_because(
            daemon,
            row,
            false,
            &format!("verse restore {}", snapshot.id),
        )
        .await?;
    }
    Ok(())
}

fn swap_in(env_dir: &Path, fresh: &Path) -> std::io::Result<()> {
    let upper = env_dir.join("upper");
    let old = env_dir.join("upper.old");
    let _ = std::fs::remove_dir_all(&old);
    if upper.exists() {
        std::fs::rename(&upper, &old)?;
    }
    std::fs::rename(fresh, &upper)?;
    // The overlay work dir belongs to the old upper: start it afresh.
    let work = env_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir(&work)?;
    std::os::unix::fs::chown(&work, Some(ID_BASE), Some(ID_BASE))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// At daemon start: finish or undo a restore a crash interrupted.
pub fn recover(daemon: &Daemon) {
    let Ok(rows) = daemon.db.envs() else {
        return;
    };
    for row in rows {
        let env_dir = daemon.paths.env_dir(&row.name);
        let upper = env_dir.join("upper");
        let old = env_dir.join("upper.old");
        if !upper.exists() && old.exists() {
            tracing::warn!(env = %row.name, "a restore was interrupted; keeping the old writable layer");
            let _ = std::fs::rename(&old, &upper);
        }
        let _ = std::fs::remove_dir_all(&old);
        let _ = std::fs::remove_dir_all(env_dir.join("upper.restoring"));
    }
}

/// Takes a scheduled snapshot when one is due and prunes the oldest scheduled ones.
pub async fn scheduled_if_due(daemon: &Arc<Daemon>, row: &EnvRow, started_at: Option<i64>) {
    let Some(schedule) = row.plan.snapshots else {
        return;
    };
    let Ok(all) = daemon.db.snapshots(Some(&row.name)) else {
        return;
    };
    let scheduled: Vec<&SnapshotInfo> = all.iter().filter(|s| s.origin == "schedule").collect();
    let since = scheduled
        .last()
        .map(|s| s.created_at)
        .or(started_at)
        .unwrap_or(row.created_at);
    if (crate::db::now() - since) * 1000 < schedule.every_ms as i64 {
        return;
    }
    match take(daemon, row, None, "schedule").await {
        Ok(_) => {
            let Ok(all) = daemon.db.snapshots(Some(&row.name)) else {
                return;
            };
            let scheduled: Vec<&SnapshotInfo> =
                all.iter().filter(|s| s.origin == "schedule").collect();
            let excess = scheduled.len().saturating_sub(schedule.keep as usize);
            for old in &scheduled[..excess] {
                let _ = daemon.db.remove_snapshot(&row.name, &old.id);
                daemon.emit(
                    &row.name,
                    "snapshot-removed",
                    None,
                    format!("schedule keeps {}: removed {}", schedule.keep, old.id),
                );
            }
        }
        Err(e) => daemon.emit(
            &row.name,
            "snapshot-failed",
            None,
            format!("scheduled snapshot: {}", e.body.error),
        ),
    }
}

/// Whether an env is in a state where a scheduled snapshot makes sense.
pub fn schedulable(state: EnvState) -> bool {
    state == EnvState::Running
}

/// `YYYY-MM-DD HH:MM:SS UTC` for unix seconds.
pub fn clock(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
