//! The event log: every lifecycle transition, with its time and cause, kept in
//! SQLite and broadcast to `verse events -f` followers as it happens.

use crate::Daemon;
use crate::error::ApiResult;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use verse_api::{EnvState, EventInfo};

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

impl Daemon {
    /// Records and broadcasts one event. A failure to record is logged, never
    /// fatal: the operation it describes has already happened.
    pub fn emit(&self, env: &str, kind: &str, state: Option<EnvState>, cause: impl AsRef<str>) {
        let cause = cause.as_ref();
        if let Some(state) = state {
            lock(&self.watch.observed).insert(env.to_string(), state);
        }
        match self.db.add_event(now_ms(), env, kind, state, cause) {
            Ok(event) => {
                tracing::info!(env, kind, cause, "event");
                let _ = self.watch.tx.send(event);
            }
            Err(e) => tracing::error!(env, kind, "recording an event: {e}"),
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

#[derive(Deserialize)]
pub struct EventQuery {
    #[serde(default)]
    follow: bool,
    /// Only events with a larger id.
    #[serde(default)]
    after: u64,
    env: Option<String>,
    /// At most this many past events (the newest); default 1000.
    limit: Option<u64>,
}

/// `GET /v1/events`: past events as JSON lines, then (with `follow`) new ones as
/// they happen, over a chunked response.
pub async fn stream(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<EventQuery>,
    scope: Option<axum::Extension<crate::tcp::ReadScope>>,
) -> ApiResult<Response> {
    // A token for some envs sees their events only; each env's answer is kept.
    let readable = {
        let scope = scope.map(|axum::Extension(s)| s);
        let mut known: std::collections::HashMap<String, bool> = Default::default();
        move |env: &str| match &scope {
            None => true,
            Some(scope) => *known
                .entry(env.to_string())
                .or_insert_with(|| scope.may_read(env)),
        }
    };
    let readable = Arc::new(Mutex::new(readable));
    // Subscribe before reading the past, so nothing falls between the two;
    // events seen in both are skipped by id.
    let rx = query.follow.then(|| daemon.watch.tx.subscribe());
    let past = daemon.db.events(
        query.after,
        query.env.as_deref(),
        query.limit.unwrap_or(1000),
    )?;
    let last = past.last().map_or(query.after, |e| e.id);
    let mut body = Vec::new();
    for event in &past {
        if (*lock(&readable))(&event.env) {
            body.extend_from_slice(&line(event));
        }
    }
    let first =
        futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from(body)) },
        );
    let env = query.env.clone();
    let live = futures_util::stream::unfold((rx, last), move |(rx, last)| {
        let env = env.clone();
        let readable = Arc::clone(&readable);
        async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) if event.id <= last => continue,
                    Ok(event) if env.as_ref().is_some_and(|e| *e != event.env) => continue,
                    Ok(event) if !(*lock(&readable))(&event.env) => continue,
                    Ok(event) => {
                        let id = event.id;
                        return Some((Ok(bytes::Bytes::from(line(&event))), (Some(rx), id)));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let note = serde_json::json!({ "lagged": n });
                        let mut text = note.to_string().into_bytes();
                        text.push(b'\n');
                        return Some((Ok(bytes::Bytes::from(text)), (Some(rx), last)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    use futures_util::StreamExt;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(first.chain(live)))
        .expect("valid response"))
}

fn line(event: &EventInfo) -> Vec<u8> {
    let mut text = serde_json::to_vec(event).expect("event serialises");
    text.push(b'\n');
    text
}
