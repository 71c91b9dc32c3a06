//! Hibernate and resume: CRIU for container envs, QMP migration to a file
//! for vm envs.
//!
//! Hibernate asks the env's shim to checkpoint the env's process tree with
//! `criu dump` into `checkpoint/` of the env dir (see
//! `verse_runtime::criu`); CRIU ends the processes only once the checkpoint is
//! complete, and the shim exits after them: the env's memory is free and
//! `verse ls` shows `hibernated`. When CRIU cannot (or the env has something a
//! restore could not reconnect: exec sessions, an attached client, a veth),
//! the request is refused with the reason and the env keeps running.
//!
//! Resume launches a new shim on the env's saved shim config with `restore`
//! set: it restores the tree as its own child (criu `--restore-sibling`) and
//! supervises it like one it started.
//!
//! vm envs: the shim stops the guest and saves it with QMP `migrate` to
//! `exec:cat > checkpoint/vm.state`, then ends QEMU. Resume starts QEMU with
//! the same command line plus `-incoming "exec:cat checkpoint/vm.state"` and
//! `cont`s it once loaded.

use crate::Engine;
use crate::backend::HibernateWith;
use crate::db::EnvRow;
use crate::envs::{images_dir, is_hibernated};
use crate::error::{EngineError, EngineResult};
use std::sync::Arc;
use verse_runtime::{ShimClientError, ShimConfig, ShimRequest};

pub async fn hibernate(
    daemon: &Arc<Engine>,
    row: &EnvRow,
    timeout_ms: Option<u64>,
) -> EngineResult<()> {
    let name = &row.name;
    let info = crate::lifecycle::info(daemon, row).await;
    if info.state == verse_api::EnvState::Paused {
        return Err(EngineError::conflict(format!("env `{name}` is paused"))
            .hint(format!("`verse unpause {name}` first")));
    }
    if info.pid.is_none() {
        return Err(EngineError::conflict(format!(
            "env `{name}` is not running"
        )));
    }
    match crate::backend::of(row.plan.backend).hibernate() {
        HibernateWith::QemuMigration => return hibernate_vm(daemon, name).await,
        HibernateWith::Criu => {}
        HibernateWith::Unsupported => {
            return Err(EngineError::conflict(format!(
                "cannot hibernate `{name}`: the {} backend has no hibernate yet; the env keeps running",
                row.plan.backend.as_str()
            ))
            .hint("`verse pause` freezes it in place instead (memory stays allocated)"));
        }
    }
    let (criu, version) = verse_doctor::criu::locate().ok_or_else(|| {
        EngineError::conflict(format!(
            "cannot hibernate `{name}`: no CRIU found; the env keeps running"
        ))
        .hint("install one with scripts/install-criu.sh; `verse doctor` reports it")
    })?;
    let started = std::time::Instant::now();
    let answer = crate::envs::shim_client(daemon, name)
        .call(&ShimRequest::Hibernate {
            criu: Some(criu),
            timeout_ms,
        })
        .await;
    match answer {
        Ok(_) => {
            daemon.emit(
                name,
                verse_api::EventKind::Hibernated,
                Some(verse_api::EnvState::Hibernated),
                format!(
                    "criu {version}: checkpointed in {} ms, memory freed",
                    started.elapsed().as_millis()
                ),
            );
            Ok(())
        }
        Err(e) => Err(refused(daemon, name, Some(&format!("criu {version}")), e)),
    }
}

async fn hibernate_vm(daemon: &Arc<Engine>, name: &str) -> EngineResult<()> {
    let started = std::time::Instant::now();
    let answer = crate::envs::shim_client(daemon, name)
        .call(&ShimRequest::Hibernate {
            criu: None,
            timeout_ms: None,
        })
        .await;
    match answer {
        Ok(_) => {
            let size = std::fs::metadata(images_dir(daemon, name).join(verse_runtime::VM_STATE))
                .map(|m| m.len())
                .unwrap_or(0);
            daemon.emit(
                name,
                verse_api::EventKind::Hibernated,
                Some(verse_api::EnvState::Hibernated),
                format!(
                    "QMP migration: saved the VM ({} MiB) in {} ms, QEMU ended",
                    size >> 20,
                    started.elapsed().as_millis()
                ),
            );
            Ok(())
        }
        Err(e) => Err(refused(daemon, name, None, e)),
    }
}

/// A hibernate the env's shim refused (the env runs on): the event, and the
/// error for the caller; `with` names the tool, e.g. "criu 4.1.1".
fn refused(daemon: &Engine, name: &str, with: Option<&str>, e: ShimClientError) -> EngineError {
    let reason = match e {
        ShimClientError::Refused(reason) => reason,
        other => other.to_string(),
    };
    let by = with.map(|w| format!("{w}: ")).unwrap_or_default();
    daemon.emit(
        name,
        verse_api::EventKind::HibernateRefused,
        None,
        format!("{by}{reason}; the env keeps running"),
    );
    let with = with.map(|w| format!(" with {w}")).unwrap_or_default();
    EngineError::conflict(format!(
        "cannot hibernate `{name}`{with}: {reason}; the env keeps running"
    ))
    .hint("`verse pause` freezes it in place instead (memory stays allocated)")
}

/// Drops a hibernated env's saved processes: it becomes a stopped env.
pub fn discard(daemon: &Arc<Engine>, row: &EnvRow) -> EngineResult<()> {
    if !is_hibernated(daemon, &row.name) {
        return Err(EngineError::conflict(format!(
            "env `{}` is not hibernated",
            row.name
        )));
    }
    // The marker goes first: a crash halfway leaves an incomplete checkpoint,
    // which nothing treats as one.
    let dir = images_dir(daemon, &row.name);
    let env_dir = daemon.paths.env_dir(&row.name);
    verse_runtime::record::store(
        &verse_runtime::ExitRecord::path(&env_dir),
        &verse_runtime::ExitRecord {
            exit_code: None,
            finished_at: verse_runtime::record::now_unix(),
            error: None,
        },
    )
    .map_err(EngineError::internal)?;
    std::fs::remove_file(dir.join("complete")).map_err(EngineError::internal)?;
    let _ = std::fs::remove_dir_all(&dir);
    daemon.emit(
        &row.name,
        verse_api::EventKind::Stopped,
        Some(verse_api::EnvState::Stopped),
        "hibernation discarded",
    );
    Ok(())
}

pub async fn resume(daemon: &Arc<Engine>, row: &EnvRow) -> EngineResult<()> {
    let name = row.name.clone();
    if !is_hibernated(daemon, &name) {
        return Err(
            EngineError::conflict(format!("env `{name}` is not hibernated"))
                .hint(format!("`verse up {name}` starts a stopped env")),
        );
    }
    let vm = crate::backend::of(row.plan.backend).hibernate() == HibernateWith::QemuMigration;
    let (criu, version) = if vm {
        (None, "QMP migration".to_string())
    } else {
        let (criu, version) = verse_doctor::criu::locate().ok_or_else(|| {
            EngineError::conflict(format!("cannot resume `{name}`: no CRIU found"))
                .hint("install one with scripts/install-criu.sh; `verse doctor` reports it")
        })?;
        (Some(criu), format!("criu {version}"))
    };
    // After a reboot the env's disk (if it has one) is mounted again first.
    crate::disk::mount_if_any(daemon, &name, &row.plan)?;
    let env_dir = daemon.paths.env_dir(&name);
    let mut config = ShimConfig::load(&env_dir).map_err(|e| {
        EngineError::internal(format!(
            "env `{name}`: its saved shim config is missing or unreadable: {e}"
        ))
    })?;
    if vm {
        config.incoming = Some(images_dir(daemon, &name).join(verse_runtime::VM_STATE));
    } else {
        config.restore = criu;
    }
    config.attach = false;
    let started = std::time::Instant::now();
    let exe = daemon.exe.clone();
    let launched = tokio::task::spawn_blocking(move || verse_runtime::launch(&exe, &config))
        .await
        .map_err(EngineError::internal)?;
    match launched {
        Ok(_) => {
            daemon.emit(
                &name,
                verse_api::EventKind::Resumed,
                Some(verse_api::EnvState::Running),
                format!(
                    "{version}: restored in {} ms",
                    started.elapsed().as_millis()
                ),
            );
            Ok(())
        }
        Err(e) => Err(EngineError::conflict(format!(
            "cannot resume `{name}` ({version}): {e}; it stays hibernated"
        ))
        .hint(format!(
            "the checkpoint is kept; `verse hibernate --discard {name}` drops it so `verse up` starts afresh"
        ))),
    }
}
