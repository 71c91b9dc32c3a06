//! The daemon's watch over envs, twice a second: it records transitions it did
//! not cause (an env's main process ended), restarts envs by their policy with
//! backoff, runs health checks, falls back to the previous definition when an
//! applied change fails its health check within its grace period, and takes
//! scheduled snapshots.

use crate::Engine;
use crate::db::{Desired, EnvRow};
use crate::db_lifecycle::PendingFallback;
use crate::error::{EngineError, EngineResult};
use crate::events::{lock, now_ms};
use crate::{diff, lifecycle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use verse_api::frame::{Frame, Kind, tokio_io};
use verse_api::{EnvState, EventKind, ExecRequest};
use verse_runtime::ShimRequest;
use verse_spec::Restart;

const TICK: Duration = Duration::from_millis(500);
/// First restart delay; doubles per consecutive restart up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// An env that ran this long since its last restart starts over at `FIRST_BACKOFF`.
const STABLE_AFTER: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Backoff {
    attempts: u32,
    next_at: Option<Instant>,
    last_restart: Option<Instant>,
}

#[derive(Default)]
struct HealthTrack {
    next_at: Option<Instant>,
    failures: u32,
    in_flight: bool,
    /// The check and the env start this track belongs to.
    key: String,
}

#[derive(Default)]
pub struct Supervisor {
    backoff: Mutex<HashMap<String, Backoff>>,
    health: Mutex<HashMap<String, HealthTrack>>,
}

/// Runs forever in the daemon.
pub async fn run(daemon: Arc<Engine>) {
    loop {
        tokio::time::sleep(TICK).await;
        if let Err(e) = tick(&daemon).await {
            tracing::warn!("supervisor: {}", e.message);
        }
    }
}

async fn tick(daemon: &Arc<Engine>) -> EngineResult<()> {
    for name in daemon.db.envs()?.into_iter().map(|r| r.name) {
        let _changes = daemon.changes.lock().await;
        // Re-read under the lock: the env may have changed or gone meanwhile.
        let Some(row) = daemon.db.env(&name)? else {
            continue;
        };
        let info = lifecycle::info(daemon, &row).await;
        observe(daemon, &row, &info);
        if fallback_due(daemon, &row, &info).await? {
            continue;
        }
        restart_if_due(daemon, &row, &info).await;
        health_if_due(daemon, &row, &info);
        if crate::snapshots::schedulable(info.state) {
            crate::snapshots::scheduled_if_due(daemon, &row, info.started_at).await;
        }
    }
    Ok(())
}

/// Records a transition the daemon did not make itself.
fn observe(daemon: &Engine, row: &EnvRow, info: &verse_api::EnvInfo) {
    let previous = lock(&daemon.watch.observed).get(&row.name).copied();
    if previous == Some(info.state) {
        return;
    }
    let (kind, cause) = match info.state {
        EnvState::Stopped if previous == Some(EnvState::Running) => (
            EventKind::Exited,
            format!(
                "main process exited with code {}",
                info.exit_code.map_or("?".into(), |c| c.to_string())
            ),
        ),
        EnvState::Failed => (
            EventKind::Failed,
            match (&info.error, info.exit_code) {
                (Some(e), _) => e.clone(),
                (None, Some(c)) => format!("main process exited with code {c}"),
                (None, None) => "failed".into(),
            },
        ),
        // First sight of an env (daemon start) or a state it reached
        // through the daemon's own operations: remember without an event.
        _ => {
            lock(&daemon.watch.observed).insert(row.name.clone(), info.state);
            return;
        }
    };
    daemon.emit(&row.name, kind, Some(info.state), cause);
}

fn policy_applies(policy: Restart, info: &verse_api::EnvInfo) -> bool {
    matches!(
        (policy, info.state),
        (Restart::Always, EnvState::Stopped | EnvState::Failed)
            | (Restart::OnFailure, EnvState::Failed)
    )
}

async fn restart_if_due(daemon: &Arc<Engine>, row: &EnvRow, info: &verse_api::EnvInfo) {
    let now = Instant::now();
    {
        let mut backoff = lock(&daemon.supervisor.backoff);
        let entry = backoff.entry(row.name.clone()).or_default();
        if info.state == EnvState::Running
            && entry
                .last_restart
                .is_some_and(|t| now.duration_since(t) > STABLE_AFTER)
        {
            *entry = Backoff::default();
        }
    }
    if row.desired != Desired::Running || !policy_applies(row.plan.restart, info) {
        return;
    }
    let attempt = {
        let mut backoff = lock(&daemon.supervisor.backoff);
        let entry = backoff.entry(row.name.clone()).or_default();
        match entry.next_at {
            None => {
                let delay = FIRST_BACKOFF
                    .saturating_mul(1 << entry.attempts.min(6))
                    .min(MAX_BACKOFF);
                entry.next_at = Some(now + delay);
                daemon.emit(
                    &row.name,
                    EventKind::Restarting,
                    None,
                    format!(
                        "restart = \"{}\": restarting in {} ms (attempt {})",
                        policy_word(row.plan.restart),
                        delay.as_millis(),
                        entry.attempts + 1
                    ),
                );
                return;
            }
            Some(t) if t > now => return,
            Some(_) => {
                entry.next_at = None;
                entry.attempts += 1;
                entry.last_restart = Some(now);
                entry.attempts
            }
        }
    };
    let cause = format!(
        "restart = \"{}\" (attempt {attempt})",
        policy_word(row.plan.restart)
    );
    let _ = lifecycle::start_because(daemon, row, false, &cause).await;
}

fn policy_word(policy: Restart) -> &'static str {
    match policy {
        Restart::No => "no",
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
    }
}

fn health_if_due(daemon: &Arc<Engine>, row: &EnvRow, info: &verse_api::EnvInfo) {
    let Some(health) = row.plan.health.clone() else {
        return;
    };
    let key = format!("{:?}/{:?}", health, info.started_at);
    let now = Instant::now();
    {
        let mut tracks = lock(&daemon.supervisor.health);
        let track = tracks.entry(row.name.clone()).or_default();
        if track.key != key {
            // A new start or a new check: begin again, first check one interval in.
            *track = HealthTrack {
                key,
                next_at: Some(now + Duration::from_millis(health.interval_ms.min(1_000))),
                ..HealthTrack::default()
            };
            lock(&daemon.watch.health).insert(row.name.clone(), "starting".into());
        }
        if info.state != EnvState::Running
            || track.in_flight
            || track.next_at.is_some_and(|t| t > now)
        {
            return;
        }
        track.in_flight = true;
        track.next_at = Some(now + Duration::from_millis(health.interval_ms));
    }
    let daemon = Arc::clone(daemon);
    let name = row.name.clone();
    tokio::spawn(async move {
        let result = check(&daemon, &name, &health.command, health.timeout_ms).await;
        let (word, changed, failures) = {
            let mut tracks = lock(&daemon.supervisor.health);
            let Some(track) = tracks.get_mut(&name) else {
                return;
            };
            track.in_flight = false;
            match &result {
                Ok(()) => track.failures = 0,
                Err(_) => track.failures += 1,
            }
            let word = if track.failures == 0 {
                "healthy"
            } else if track.failures >= health.retries {
                "unhealthy"
            } else {
                return;
            };
            let mut words = lock(&daemon.watch.health);
            let changed = words.get(&name).map(String::as_str) != Some(word);
            words.insert(name.clone(), word.into());
            (word, changed, track.failures)
        };
        if changed {
            let cause = match &result {
                Ok(()) => format!("health check `{}` passed", health.command.join(" ")),
                Err(why) => format!(
                    "health check `{}` failed {failures} time(s) in a row: {why}",
                    health.command.join(" ")
                ),
            };
            daemon.emit(&name, EventKind::Health, None, format!("{word}: {cause}"));
        }
    });
}

/// Runs the health command in the env; Ok when it exits 0 within the timeout.
async fn check(
    daemon: &Engine,
    name: &str,
    argv: &[String],
    timeout_ms: u64,
) -> Result<(), String> {
    let request = ShimRequest::Exec(ExecRequest {
        argv: argv.to_vec(),
        ..ExecRequest::default()
    });
    let run = async {
        let (_, mut stream) = crate::envs::shim_client(daemon, name)
            .request(&request)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream
            .get_mut()
            .write_all(&Frame::new(Kind::StdinEof, Vec::new()).encode())
            .await;
        loop {
            match tokio_io::read_frame(&mut stream).await {
                Ok(Some(frame)) if frame.kind == Kind::Exit => {
                    return match frame.as_i32() {
                        Some(0) => Ok(()),
                        code => Err(format!("exit code {}", code.unwrap_or(-1))),
                    };
                }
                Ok(Some(frame)) if frame.kind == Kind::Error => {
                    return Err(String::from_utf8_lossy(&frame.payload).into_owned());
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Err("the env stopped during the check".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), run).await {
        Ok(result) => result,
        // Dropping the connection makes the shim kill the check.
        Err(_) => Err(format!("timed out after {timeout_ms} ms")),
    }
}

/// Applies an updated definition: in place when every change is live,
/// otherwise by a restart under a pending fallback (when it declares health).
pub async fn update(daemon: &Arc<Engine>, row: &EnvRow) -> EngineResult<()> {
    let Some(old) = daemon.db.env(&row.name)? else {
        daemon.db.put_env(row)?;
        return lifecycle::start_because(daemon, row, false, "verse apply")
            .await
            .map(drop);
    };
    crate::disk::check_change(daemon, &row.name, &old.plan, &row.plan)?;
    let changes = diff::changes(&old.plan, &row.plan);
    let summary = changes
        .iter()
        .map(|c| c.field.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if crate::envs::is_running(daemon, &row.name).await && diff::all_live(&changes) {
        if let Some(cgroup) = crate::envs::cgroup_of(daemon, &row.name) {
            let limits = verse_sandbox::Limits {
                cpu: row.plan.cpu,
                memory: row.plan.memory,
                pids: row.plan.pids,
            };
            cgroup.set_limits(&limits).map_err(|e| {
                EngineError::invalid(format!(
                    "env `{}`: applying the new limits live: {e}",
                    row.name
                ))
                .hint("nothing was changed; the env keeps its old limits")
            })?;
        }
        daemon.db.put_env(row)?;
        daemon.emit(
            &row.name,
            EventKind::Updated,
            None,
            format!("verse apply: {summary} changed live, no restart"),
        );
        return Ok(());
    }
    lifecycle::stop_because(
        daemon,
        &row.name,
        old.plan.stop_timeout_ms,
        &format!("verse apply: {summary} changed (needs a restart)"),
    )
    .await?;
    daemon.db.put_env(row)?;
    daemon.db.set_note(&row.name, None)?;
    if let Some(health) = &row.plan.health {
        daemon.db.put_fallback(&PendingFallback {
            name: row.name.clone(),
            previous_plan: old.plan.clone(),
            generation: previous_generation(daemon),
            deadline_ms: now_ms() + health.grace_ms as i64,
        })?;
    }
    match lifecycle::start_because(daemon, row, false, "verse apply: new definition").await {
        Ok(_) => Ok(()),
        Err(e) if row.plan.health.is_some() => {
            fall_back(
                daemon,
                &row.name,
                &format!("the new definition did not start: {}", e.message),
            )
            .await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The generation active before the newest one, whose definitions a fallback returns to.
fn previous_generation(daemon: &Engine) -> Option<u64> {
    let all = daemon.db.generations().ok()?;
    let active = all.iter().find(|g| g.active)?.id;
    all.iter().rev().map(|g| g.id).find(|id| *id < active)
}

/// Falls back when an applied change failed within its grace period; clears
/// the pending fallback once the grace period passed. True when it fell back.
async fn fallback_due(
    daemon: &Arc<Engine>,
    row: &EnvRow,
    info: &verse_api::EnvInfo,
) -> EngineResult<bool> {
    let Some(pending) = daemon
        .db
        .fallbacks()?
        .into_iter()
        .find(|f| f.name == row.name)
    else {
        return Ok(false);
    };
    let unhealthy = lock(&daemon.watch.health)
        .get(&row.name)
        .is_some_and(|h| h == "unhealthy");
    let reason = if unhealthy {
        Some("the new definition failed its health check".to_string())
    } else if info.state == EnvState::Failed && row.desired == Desired::Running {
        Some(format!(
            "the new definition failed: {}",
            info.error
                .clone()
                .or(info.exit_code.map(|c| format!("exit code {c}")))
                .unwrap_or_default()
        ))
    } else {
        None
    };
    match reason {
        Some(reason) if now_ms() <= pending.deadline_ms => {
            fall_back(daemon, &row.name, &reason).await?;
            Ok(true)
        }
        _ if now_ms() > pending.deadline_ms => {
            daemon.db.clear_fallback(&row.name)?;
            daemon.emit(
                &row.name,
                EventKind::Updated,
                None,
                "the new definition passed its grace period",
            );
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// Returns the env to the definition it had before the failed change.
pub async fn fall_back(daemon: &Arc<Engine>, name: &str, reason: &str) -> EngineResult<()> {
    let Some(pending) = daemon.db.fallbacks()?.into_iter().find(|f| f.name == name) else {
        return Ok(());
    };
    daemon.db.clear_fallback(name)?;
    let Some(mut row) = daemon.db.env(name)? else {
        return Ok(());
    };
    let which = pending
        .generation
        .map_or("the previous".to_string(), |g| format!("generation {g}'s"));
    let note = format!(
        "fell back to {which} definition at {}: {reason}; the failed attempt's output is in `verse logs {name}`",
        crate::snapshots::clock(now_ms() / 1000)
    );
    lifecycle::stop_because(daemon, name, row.plan.stop_timeout_ms, &note).await?;
    row.plan = pending.previous_plan;
    daemon.db.put_env(&row)?;
    daemon.db.set_note(name, Some(&note))?;
    lock(&daemon.watch.health).remove(name);
    daemon.emit(name, EventKind::Fallback, None, &note);
    lifecycle::start_because(daemon, &row, false, "fallback to the previous definition")
        .await
        .map(drop)
}
