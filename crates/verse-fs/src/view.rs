//! One identity's view of the daemon: an API client acting with that
//! identity's rights, and what it last learned (envs and their states,
//! recent events), kept current by following `GET /v1/events`. Reads of
//! state, listings and events are answered from here, so they cost the
//! daemon nothing and go on working (with the last known values, said so in
//! `.status`) while the daemon restarts; the follower reconnects by itself.

use crate::FsError;
use fuser::PollNotifier;
use http_body_util::BodyExt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use verse_api::{Client, ClientError, EnvInfo, EnvState, EventInfo};

/// Events kept for `events` readers who open late.
const KEPT_EVENTS: usize = 10_000;
/// How long a fetched console log is served before it is fetched again
/// (`tail -f` asks several times per second).
const CONSOLE_FRESH: Duration = Duration::from_millis(200);
const RETRY: Duration = Duration::from_millis(300);

/// Told an env's name when its state changed.
pub type OnChange = Box<dyn Fn(&str) + Send + Sync>;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
struct Link {
    connected: bool,
    since: SystemTime,
    error: Option<String>,
    reconnects: u64,
}

#[derive(Default)]
struct Cache {
    /// Set once the first listing arrived.
    loaded: bool,
    envs: BTreeMap<String, EnvInfo>,
    /// Bumped whenever an env's state changes (what poll() waits for).
    changes: HashMap<String, u64>,
    /// Bumped on every event of an env: a refresh started before a later
    /// event must not overwrite what that event said.
    seen: HashMap<String, u64>,
    events: VecDeque<EventInfo>,
    /// The reason of the last refused write, per env (or quarantine item).
    errors: HashMap<String, String>,
    consoles: HashMap<String, (Instant, Arc<Vec<u8>>)>,
}

pub struct View {
    pub client: Client,
    /// Who this view acts as, for `.status`.
    pub identity: String,
    rt: tokio::runtime::Handle,
    cache: Mutex<Cache>,
    link: Mutex<Link>,
    /// The id of the newest event seen: readers blocked on `events` wait on it.
    newest: tokio::sync::watch::Sender<u64>,
    /// Pollers of `state` files (by env) and of `events` files (key "").
    pollers: Mutex<HashMap<String, Vec<PollNotifier>>>,
    started: std::sync::Once,
    /// Called with an env's name when its state changed (the mount touches
    /// its `state` file so inotify watchers hear of it).
    on_change: Mutex<Option<OnChange>>,
}

/// The errno a refused or failed API call gives the caller.
pub fn errno_of(e: &ClientError) -> fuser::Errno {
    match e {
        ClientError::Api { status, .. } => match status.as_u16() {
            401 | 403 => fuser::Errno::EACCES,
            404 => fuser::Errno::ENOENT,
            409 => fuser::Errno::EBUSY,
            400 | 422 => fuser::Errno::EINVAL,
            _ => fuser::Errno::EIO,
        },
        ClientError::NotRunning { .. } | ClientError::Transport { .. } => {
            fuser::Errno::from_i32(libc::ENOTCONN)
        }
        ClientError::PermissionDenied { .. } => fuser::Errno::EACCES,
        ClientError::Protocol(_) => fuser::Errno::EIO,
    }
}

/// A refusal in the daemon's words, with its hint.
pub fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Api { body, .. } => match &body.hint {
            Some(hint) => format!("{}\nhint: {hint}", body.error),
            None => body.error.clone(),
        },
        other => other.to_string(),
    }
}

impl View {
    pub fn new(client: Client, identity: String, rt: tokio::runtime::Handle) -> Arc<View> {
        Arc::new(View {
            client,
            identity,
            rt,
            cache: Mutex::new(Cache::default()),
            link: Mutex::new(Link {
                connected: false,
                since: SystemTime::now(),
                error: None,
                reconnects: 0,
            }),
            newest: tokio::sync::watch::channel(0).0,
            pollers: Mutex::new(HashMap::new()),
            started: std::sync::Once::new(),
            on_change: Mutex::new(None),
        })
    }

    pub fn set_on_change(&self, f: OnChange) {
        *lock(&self.on_change) = Some(f);
    }

    /// Checks the identity works (the daemon answers and accepts it), then
    /// starts following events.
    pub fn connect(self: &Arc<Self>) -> Result<(), FsError> {
        let envs: Vec<EnvInfo> = self
            .rt
            .block_on(self.client.get("/v1/envs"))
            .map_err(FsError::Api)?;
        self.replace_envs(envs);
        self.start();
        Ok(())
    }

    /// Starts the follower (once).
    pub fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            let view = Arc::clone(self);
            self.rt.spawn(async move { view.follow().await });
        });
    }

    async fn follow(self: Arc<Self>) {
        let mut after: Option<u64> = None;
        loop {
            let error = match self.follow_once(&mut after).await {
                Ok(()) => "the daemon ended the event stream".to_string(),
                Err(e) => e.to_string(),
            };
            {
                let mut link = lock(&self.link);
                if link.connected {
                    tracing::warn!("lost the daemon: {error}; reconnecting");
                    link.connected = false;
                    link.since = SystemTime::now();
                }
                link.error = Some(error);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One connection: past events (the first time), then every env, then
    /// new events as they come, until the stream ends.
    async fn follow_once(self: &Arc<Self>, after: &mut Option<u64>) -> Result<(), ClientError> {
        if after.is_none() {
            let past = self.client.stream("/v1/events?limit=1000").await?;
            let bytes = past
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            let mut last = 0;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(event) = serde_json::from_slice::<EventInfo>(line) {
                    last = event.id;
                    self.record(event);
                }
            }
            *after = Some(last);
        }
        let mut body = self
            .client
            .stream(&format!(
                "/v1/events?follow=true&after={}",
                after.unwrap_or(0)
            ))
            .await?;
        let envs: Vec<EnvInfo> = self.client.get("/v1/envs").await?;
        self.replace_envs(envs);
        {
            let mut link = lock(&self.link);
            if !link.connected {
                if link.error.is_some() {
                    link.reconnects += 1;
                    tracing::info!("reconnected to the daemon");
                }
                link.connected = true;
                link.since = SystemTime::now();
                link.error = None;
            }
        }
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<EventInfo>(&line) else {
                    continue;
                };
                *after = Some(event.id);
                self.apply(&event);
                self.record(event);
            }
        }
        Ok(())
    }

    /// Keeps an event for `events` readers and wakes them.
    fn record(&self, event: EventInfo) {
        let id = event.id;
        {
            let mut cache = lock(&self.cache);
            if cache.events.len() == KEPT_EVENTS {
                cache.events.pop_front();
            }
            cache.events.push_back(event);
        }
        self.newest.send_replace(id);
        self.wake("");
    }

    /// What a live event says about its env: the new state at once, the
    /// rest of the env's info from a refresh.
    fn apply(self: &Arc<Self>, event: &EventInfo) {
        let env = event.env.clone();
        let seen = {
            let mut cache = lock(&self.cache);
            let seen = cache.seen.entry(env.clone()).or_default();
            *seen += 1;
            let seen = *seen;
            if event.kind == verse_api::EventKind::Removed {
                cache.envs.remove(&env);
            } else if let (Some(state), Some(info)) = (event.state, cache.envs.get_mut(&env))
                && info.state != state
            {
                info.state = state;
                *cache.changes.entry(env.clone()).or_default() += 1;
            }
            seen
        };
        self.state_changed(&env);
        let view = Arc::clone(self);
        self.rt.spawn(async move {
            let fresh = view.client.get::<EnvInfo>(&format!("/v1/envs/{env}")).await;
            let mut cache = lock(&view.cache);
            if cache.seen.get(&env) != Some(&seen) {
                return; // a later event's refresh will tell
            }
            match fresh {
                Ok(info) => {
                    drop(cache);
                    view.put_env(info);
                }
                Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => {
                    cache.envs.remove(&env);
                }
                Err(_) => {}
            }
        });
    }

    fn state_changed(&self, env: &str) {
        self.wake(env);
        if let Some(f) = lock(&self.on_change).as_ref() {
            f(env);
        }
    }

    fn wake(&self, key: &str) {
        let waiting = lock(&self.pollers).remove(key).unwrap_or_default();
        for poller in waiting {
            let _ = poller.notify();
        }
    }

    pub fn add_poller(&self, key: &str, poller: PollNotifier) {
        lock(&self.pollers)
            .entry(key.to_string())
            .or_default()
            .push(poller);
    }

    fn replace_envs(&self, envs: Vec<EnvInfo>) {
        let mut changed = Vec::new();
        {
            let mut cache = lock(&self.cache);
            let fresh: BTreeMap<String, EnvInfo> =
                envs.into_iter().map(|e| (e.name.clone(), e)).collect();
            for (name, old) in &cache.envs {
                if fresh.get(name).map(|e| e.state) != Some(old.state) {
                    changed.push(name.clone());
                }
            }
            for name in fresh.keys() {
                if !cache.envs.contains_key(name) {
                    changed.push(name.clone());
                }
            }
            for name in &changed {
                *cache.changes.entry(name.clone()).or_default() += 1;
            }
            cache.envs = fresh;
            cache.loaded = true;
        }
        for name in changed {
            self.state_changed(&name);
        }
    }

    /// Takes what the daemon answered about an env (after a write, or a refresh).
    pub fn put_env(&self, info: EnvInfo) {
        let name = info.name.clone();
        let changed = {
            let mut cache = lock(&self.cache);
            let changed = cache.envs.get(&name).map(|e| e.state) != Some(info.state);
            if changed {
                *cache.changes.entry(name.clone()).or_default() += 1;
            }
            cache.envs.insert(name.clone(), info);
            changed
        };
        if changed {
            self.state_changed(&name);
        }
    }

    pub fn env(&self, name: &str) -> Option<EnvInfo> {
        lock(&self.cache).envs.get(name).cloned()
    }

    pub fn env_names(&self) -> Vec<String> {
        lock(&self.cache).envs.keys().cloned().collect()
    }

    pub fn state_of(&self, name: &str) -> Option<(EnvState, u64)> {
        let cache = lock(&self.cache);
        let info = cache.envs.get(name)?;
        Some((info.state, cache.changes.get(name).copied().unwrap_or(0)))
    }

    pub fn set_error(&self, key: &str, text: Option<String>) {
        let mut cache = lock(&self.cache);
        match text {
            Some(text) => cache.errors.insert(key.to_string(), text),
            None => cache.errors.remove(key),
        };
    }

    pub fn error(&self, key: &str) -> Option<String> {
        lock(&self.cache).errors.get(key).cloned()
    }

    /// Events after `after` (of `env` only, when given), as JSON lines, and
    /// the id of the last one.
    pub fn events_after(&self, after: u64, env: Option<&str>) -> (Vec<u8>, u64) {
        let cache = lock(&self.cache);
        let mut out = Vec::new();
        let mut last = after;
        for event in cache.events.iter().filter(|e| e.id > after) {
            last = event.id;
            if env.is_some_and(|env| env != event.env) {
                continue;
            }
            out.extend(serde_json::to_vec(event).expect("events serialise"));
            out.push(b'\n');
        }
        (out, last)
    }

    /// The id of the newest event seen, and a receiver that wakes when it grows.
    pub fn newest(&self) -> tokio::sync::watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// An env's console log, fetched again when older than [`CONSOLE_FRESH`].
    pub async fn console(&self, env: &str) -> Result<Arc<Vec<u8>>, ClientError> {
        if let Some((at, bytes)) = lock(&self.cache).consoles.get(env)
            && at.elapsed() < CONSOLE_FRESH
        {
            return Ok(Arc::clone(bytes));
        }
        let body = self.client.stream(&format!("/v1/envs/{env}/logs")).await?;
        let bytes = body
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        let bytes = Arc::new(bytes.to_vec());
        lock(&self.cache)
            .consoles
            .insert(env.to_string(), (Instant::now(), Arc::clone(&bytes)));
        Ok(bytes)
    }

    /// The text of `.status`.
    pub fn status(&self) -> String {
        let link = lock(&self.link).clone();
        let (envs, loaded) = {
            let cache = lock(&self.cache);
            (cache.envs.len(), cache.loaded)
        };
        let since = verse_api::time::Utc::from_unix(
            link.since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        )
        .date_time()
            + " UTC";
        let mut out = String::new();
        if link.connected {
            out.push_str(&format!("connected since {since}\n"));
        } else {
            out.push_str(&format!(
                "disconnected since {since}; reconnecting (reads show what was last known)\n"
            ));
        }
        out.push_str(&format!("daemon: {}\n", self.client.socket().display()));
        out.push_str(&format!("identity: {}\n", self.identity));
        out.push_str(&format!("reconnects: {}\n", link.reconnects));
        if let Some(error) = link.error {
            out.push_str(&format!("last error: {error}\n"));
        }
        out.push_str(&format!(
            "envs known: {}\n",
            if loaded {
                envs.to_string()
            } else {
                "none yet".into()
            }
        ));
        out
    }
}
