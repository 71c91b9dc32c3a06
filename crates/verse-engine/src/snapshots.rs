//! Snapshots of an env's writable layer: frozen for as long as reading the
//! upper directory into the store takes (unchanged files cost nothing: the
//! store deduplicates them against everything it holds), restored as a
//! private copy owned by the env's id range.
//!
//! Container backend only. Read-write volumes are included when asked
//! (`verse snapshot --volumes`): each host directory is read into the store
//! with its host ids as they are, and a restore swaps it back by renames.

use crate::Engine;
use crate::db::EnvRow;
use crate::error::{EngineError, EngineResult};
use crate::lifecycle;
use std::path::Path;
use std::sync::Arc;
use verse_api::{EnvState, EventKind, SnapshotInfo, VolumeSnapshot};
use verse_spec::caps::{Feature, Support};

fn upper(daemon: &Engine, name: &str) -> std::path::PathBuf {
    verse_disk::layer_dir(&daemon.paths.env_dir(name)).join("upper")
}

/// Takes a snapshot. A running env is frozen while its writable layer is read
/// (so the copy is consistent) and thawed after, unless it was paused already.
pub async fn take(
    daemon: &Arc<Engine>,
    row: &EnvRow,
    label: Option<String>,
    origin: &str,
    with_volumes: bool,
) -> EngineResult<SnapshotInfo> {
    let name = row.name.clone();
    if let Support::Refused(why) = row.plan.backend.takes(Feature::Snapshots) {
        return Err(
            EngineError::conflict(format!("cannot snapshot `{name}`: {why}")).hint(format!(
                "`verse hibernate {name}` saves the whole VM (memory and devices) instead"
            )),
        );
    }
    crate::disk::mount_if_any(daemon, &name, &row.plan)?;
    // The layer's owners are the env's range: shifted back to 0.. in the snapshot.
    let id_base = lifecycle::layer_owner_base(daemon, row)?;
    let upper = upper(daemon, &name);
    if !upper.is_dir() {
        return Err(EngineError::conflict(format!(
            "env `{name}` has no writable layer yet (it never started)"
        ))
        .hint(format!("start it with `verse up {name}` first")));
    }
    // Read-write volumes only: a read-only one is not the env's to change.
    let volumes: Vec<(String, String)> = if with_volumes {
        row.plan
            .volumes
            .iter()
            .filter(|(_, _, readonly)| !readonly)
            .map(|(path, host, _)| (path.clone(), host.clone()))
            .collect()
    } else {
        Vec::new()
    };
    if with_volumes && volumes.is_empty() {
        return Err(EngineError::invalid(format!(
            "env `{name}` has no read-write volumes to snapshot"
        ))
        .hint(format!("leave out --volumes: `verse snapshot {name}`")));
    }
    for (path, host) in &volumes {
        if !Path::new(host).is_dir() {
            return Err(EngineError::conflict(format!(
                "volume {path} of `{name}`: host directory {host} does not exist"
            )));
        }
    }
    let running = crate::envs::is_running(daemon, &name).await;
    let cgroup = if running {
        crate::envs::cgroup_of(daemon, &name)
    } else {
        None
    };
    let worker = Arc::clone(daemon);
    let (layer, volume_layers, frozen_ms) = tokio::task::spawn_blocking(move || {
        let was_frozen = cgroup.as_ref().is_some_and(|c| c.is_frozen());
        let started = std::time::Instant::now();
        if let Some(c) = &cgroup
            && !was_frozen
        {
            c.freeze()
                .map_err(|e| EngineError::internal(format!("freezing `{name}`: {e}")))?;
        }
        let mut progress = verse_store::NoProgress;
        let layer = worker
            .store
            .import_upper(&upper, id_base, &mut progress)
            .map_err(|e| format!("reading the writable layer of `{name}`: {e}"))
            .and_then(|layer| {
                let mut taken = Vec::new();
                for (path, host) in &volumes {
                    // Host ids as they are: the directory is restored on the host. Device
                    // nodes are refused here, as a restore could not write them back.
                    let options = verse_store::ImportOptions {
                        id_base: 0,
                        whiteouts: false,
                        refuse_devices: true,
                        skip_devices: false,
                    };
                    let volume = worker
                        .store
                        .import_dir_with(host, options, &mut progress)
                        .map_err(|e| format!("reading volume {path} ({host}) of `{name}`: {e}"))?;
                    taken.push(VolumeSnapshot {
                        path: path.clone(),
                        host: host.clone(),
                        root: volume.root.to_string(),
                    });
                }
                Ok((layer, taken))
            });
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
        let (layer, taken) = layer.map_err(|e| {
            EngineError::internal(e).hint("the env keeps running; nothing was recorded")
        })?;
        Ok::<_, EngineError>((layer, taken, frozen_ms))
    })
    .await
    .map_err(EngineError::internal)??;
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
        volumes: volume_layers,
    };
    daemon.db.put_snapshot(&info)?;
    daemon.emit(
        &row.name,
        EventKind::Snapshot,
        None,
        format!(
            "{} snapshot {}{} ({} files, {} bytes new, frozen {} ms{})",
            origin,
            info.id,
            info.label
                .as_ref()
                .map_or(String::new(), |l| format!(" \"{l}\"")),
            info.files,
            info.new_bytes,
            info.frozen_ms,
            if info.volumes.is_empty() {
                String::new()
            } else {
                format!(", with {} volume(s)", info.volumes.len())
            }
        ),
    );
    Ok(info)
}

pub fn find(daemon: &Engine, env: &str, id: &str) -> EngineResult<SnapshotInfo> {
    let all = daemon.db.snapshots(Some(env))?;
    all.iter()
        .find(|s| s.id == id || s.label.as_deref() == Some(id))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
            EngineError::not_found(format!(
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
pub async fn restore(daemon: &Arc<Engine>, row: &EnvRow, id: &str) -> EngineResult<()> {
    let snapshot = find(daemon, &row.name, id)?;
    let root: verse_store::Hash = snapshot
        .root
        .parse()
        .map_err(|e| EngineError::internal(format!("snapshot {id} has a bad root: {e}")))?;
    if crate::envs::is_hibernated(daemon, &row.name) {
        return Err(EngineError::conflict(format!(
            "env `{}` is hibernated; restoring a snapshot would throw its saved processes away",
            row.name
        ))
        .hint("resume it first, or discard the hibernation"));
    }
    let was_running = crate::envs::is_running(daemon, &row.name).await;
    crate::disk::mount_if_any(daemon, &row.name, &row.plan)?;
    // The env's disk, if it has one: the new layer is written there, so the swap
    // is renames on one filesystem (and the disk must have room for both a moment).
    let env_dir = verse_disk::layer_dir(&daemon.paths.env_dir(&row.name));
    // Written into the env's own range (snapshots hold ids from 0).
    let id_base = lifecycle::layer_owner_base(daemon, row)?;
    let tmp = env_dir.join("upper.restoring");
    let _ = std::fs::remove_dir_all(&tmp);
    // Materialise before stopping: the env is down only for the swap.
    let worker = Arc::clone(daemon);
    let tmp2 = tmp.clone();
    let volumes = snapshot.volumes.clone();
    let written = tokio::task::spawn_blocking(move || {
        worker
            .store
            .materialize_upper(&root, &tmp2, id_base)
            .map_err(|e| e.to_string())?;
        // Each volume next to its host directory (same filesystem, so the swap is a rename),
        // with host ids as they were.
        let mut written: Vec<std::path::PathBuf> = Vec::new();
        for volume in &volumes {
            let result = volume
                .root
                .parse::<verse_store::Hash>()
                .map_err(|e| format!("volume {}: bad root: {e}", volume.path))
                .and_then(|root| {
                    let fresh = sibling(Path::new(&volume.host), "restoring");
                    let _ = std::fs::remove_dir_all(&fresh);
                    worker
                        .store
                        .materialize_host_dir(&root, &fresh)
                        .map_err(|e| format!("volume {} ({}): {e}", volume.path, volume.host))
                        .map(|()| fresh)
                });
            match result {
                Ok(fresh) => written.push(fresh),
                Err(e) => {
                    for dir in written.iter().chain([&tmp2]) {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    return Err(e);
                }
            }
        }
        Ok(written)
    })
    .await
    .map_err(EngineError::internal)?
    .map_err(|e| {
        EngineError::internal(format!("writing snapshot {id}: {e}")).hint("the env was not changed")
    })?;
    lifecycle::stop_because(
        daemon,
        &row.name,
        row.plan.stop_timeout_ms,
        &format!("verse restore {} {}", row.name, snapshot.id),
    )
    .await?;
    swap_in(&env_dir, &tmp, id_base)
        .map_err(|e| EngineError::internal(format!("replacing the writable layer: {e}")))?;
    for (volume, fresh) in snapshot.volumes.iter().zip(&written) {
        swap_volume(Path::new(&volume.host), fresh).map_err(|e| {
            EngineError::internal(format!(
                "replacing volume {} ({}): {e}",
                volume.path, volume.host
            ))
        })?;
    }
    daemon.emit(
        &row.name,
        EventKind::Restored,
        None,
        if snapshot.volumes.is_empty() {
            format!("writable layer replaced by snapshot {}", snapshot.id)
        } else {
            format!(
                "writable layer and {} volume(s) replaced by snapshot {}",
                snapshot.volumes.len(),
                snapshot.id
            )
        },
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

fn swap_in(env_dir: &Path, fresh: &Path, id_base: u32) -> std::io::Result<()> {
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
    std::os::unix::fs::chown(&work, Some(id_base), Some(id_base))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `HOST.SUFFIX`, next to `HOST`.
fn sibling(host: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = host.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// Puts a restored volume in place: HOST -> HOST.old, HOST.restoring -> HOST, then
/// HOST.old goes. A crash in between leaves HOST.old, which [`recover`] puts back.
fn swap_volume(host: &Path, fresh: &Path) -> std::io::Result<()> {
    let old = sibling(host, "old");
    let _ = std::fs::remove_dir_all(&old);
    if host.exists() {
        std::fs::rename(host, &old)?;
    }
    std::fs::rename(fresh, host)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// At daemon start: finish or undo a restore a crash interrupted.
pub fn recover(daemon: &Engine) {
    let Ok(rows) = daemon.db.envs() else {
        return;
    };
    for row in rows {
        let env_dir = verse_disk::layer_dir(&daemon.paths.env_dir(&row.name));
        let upper = env_dir.join("upper");
        let old = env_dir.join("upper.old");
        if !upper.exists() && old.exists() {
            tracing::warn!(env = %row.name, "a restore was interrupted; keeping the old writable layer");
            let _ = std::fs::rename(&old, &upper);
        }
        let _ = std::fs::remove_dir_all(&old);
        let _ = std::fs::remove_dir_all(env_dir.join("upper.restoring"));
        for (_, host, _) in &row.plan.volumes {
            let host = Path::new(host);
            let old = sibling(host, "old");
            if !host.exists() && old.is_dir() {
                tracing::warn!(env = %row.name, host = %host.display(), "a volume restore was interrupted; keeping the old directory");
                let _ = std::fs::rename(&old, host);
            }
            if old.is_dir() {
                let _ = std::fs::remove_dir_all(&old);
            }
            let fresh = sibling(host, "restoring");
            if fresh.is_dir() {
                let _ = std::fs::remove_dir_all(&fresh);
            }
        }
    }
}

/// Takes a scheduled snapshot when one is due and prunes the oldest scheduled ones.
pub async fn scheduled_if_due(daemon: &Arc<Engine>, row: &EnvRow, started_at: Option<i64>) {
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
    match take(daemon, row, None, "schedule", false).await {
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
                    EventKind::SnapshotRemoved,
                    None,
                    format!("schedule keeps {}: removed {}", schedule.keep, old.id),
                );
            }
        }
        Err(e) => daemon.emit(
            &row.name,
            EventKind::SnapshotFailed,
            None,
            format!("scheduled snapshot: {}", e.message),
        ),
    }
}

/// Whether an env is in a state where a scheduled snapshot makes sense.
pub fn schedulable(state: EnvState) -> bool {
    state == EnvState::Running
}

/// `YYYY-MM-DD HH:MM:SS UTC` for unix seconds.
pub fn clock(unix: i64) -> String {
    format!("{} UTC", verse_api::time::Utc::from_unix(unix).date_time())
}
