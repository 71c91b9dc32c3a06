//! The event log: every lifecycle transition, with its time and cause, kept in
//! SQLite and broadcast to `verse events -f` followers as it happens.

use crate::Engine;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;
use verse_api::{EnvState, EventInfo, EventKind};

/// Live state the daemon keeps about envs between requests: what it last saw
/// (to tell its own transitions from those it observes) and health results.
pub struct Watch {
    pub tx: broadcast::Sender<EventInfo>,
    /// The state each env was last reported in.
    pub observed: Mutex<HashMap<String, EnvState>>,
    /// Latest health word per env ("starting", "healthy", "unhealthy").
    pub health: Mutex<HashMap<String, String>>,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            tx: broadcast::channel(1024).0,
            observed: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Records and broadcasts one event. A failure to record is logged, never
    /// fatal: the operation it describes has already happened.
    pub fn emit(
        &self,
        env: &str,
        kind: EventKind,
        state: Option<EnvState>,
        cause: impl AsRef<str>,
    ) {
        let cause = cause.as_ref();
        if let Some(state) = state {
            lock(&self.watch.observed).insert(env.to_string(), state);
        }
        match self.db.add_event(now_ms(), env, kind, state, cause) {
            Ok(event) => {
                tracing::info!(env, kind = kind.as_str(), cause, "event");
                let _ = self.watch.tx.send(event);
            }
            Err(e) => tracing::error!(env, kind = kind.as_str(), "recording an event: {e}"),
        }
    }

    /// Forgets what was observed of an env (it was removed).
    pub fn forget(&self, env: &str) {
        lock(&self.watch.observed).remove(env);
        lock(&self.watch.health).remove(env);
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
