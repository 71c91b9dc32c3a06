//! Watching the network policy while envs run: drops of `allow` envs go to the event stream
//! (`verse events`, kind `net-drop`), rate-limited per env; and the names in allow-lists and
//! proxies are resolved again on a timer, the rules swapped live when an address changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verse_spec::Network;

use crate::Engine;

/// How often the drop counters are read (`VERSE_NET_WATCH_MS` overrides).
const WATCH_EVERY: Duration = Duration::from_secs(5);
/// At most one `net-drop` event per env in this window; later drops are summed into the next.
const DROP_EVENT_EVERY: Duration = Duration::from_secs(30);
/// How often names are resolved again (`VERSE_NET_REFRESH_SECS` overrides).
const REFRESH_EVERY: Duration = Duration::from_secs(300);

fn from_env(var: &str, unit: fn(u64) -> Duration, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, unit)
}

/// What was last reported for one env.
struct Reported {
    /// The drop counter at the last event (or when first seen).
    dropped: u64,
    at: Option<Instant>,
}

pub async fn run(daemon: Arc<Engine>) {
    let watch = from_env("VERSE_NET_WATCH_MS", Duration::from_millis, WATCH_EVERY);
    let refresh = from_env("VERSE_NET_REFRESH_SECS", Duration::from_secs, REFRESH_EVERY);
    let rate = watch.max(DROP_EVENT_EVERY.min(watch * 6));
    let mut reported: HashMap<String, Reported> = HashMap::new();
    let mut refreshed = Instant::now();
    loop {
        tokio::time::sleep(watch).await;
        let rows = daemon.db.envs().unwrap_or_default();
        let named = rows.iter().any(|r| has_names(&r.plan.network));
        if named && refreshed.elapsed() >= refresh {
            refreshed = Instant::now();
            // Rebuilds the table from the plans, resolving every name again; the swap is
            // atomic and counters keep their values.
            let d = Arc::clone(&daemon);
            match tokio::task::spawn_blocking(move || crate::net::sync_blocking(&d)).await {
                Ok(Ok(())) => tracing::debug!("allow-list names resolved again"),
                Ok(Err(e)) => tracing::warn!("re-resolving allow-list names: {}", e.message),
                Err(e) => tracing::warn!("re-resolving allow-list names: {e}"),
            }
        }
        let allow: Vec<(String, u16)> = rows
            .iter()
            .filter(|r| matches!(r.plan.network, Network::Allow(_)))
            .filter_map(|r| {
                daemon
                    .net
                    .existing(&r.name)
                    .map(|(i, _, _)| (r.name.clone(), i))
            })
            .collect();
        reported.retain(|name, _| allow.iter().any(|(n, _)| n == name));
        if allow.is_empty() {
            continue;
        }
        let d = Arc::clone(&daemon);
        let Ok(counts) = tokio::task::spawn_blocking(move || {
            allow
                .into_iter()
                .map(|(name, index)| (name, d.net.counters(index).dropped))
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        for (name, dropped) in counts {
            let seen = reported
                .entry(name.clone())
                .or_insert(Reported { dropped, at: None });
            if dropped < seen.dropped {
                // The table was rebuilt from nothing (e.g. after the last env left).
                seen.dropped = dropped;
                continue;
            }
            let new = dropped - seen.dropped;
            if new == 0 || seen.at.is_some_and(|t| t.elapsed() < rate) {
                continue;
            }
            daemon.emit(
                &name,
                verse_api::EventKind::NetDrop,
                None,
                format!(
                    "allow-list dropped {new} packet(s) to destinations it does not name ({dropped} since the rules were made)"
                ),
            );
            seen.dropped = dropped;
            seen.at = Some(Instant::now());
        }
    }
}

/// The env's policy names hosts that must be resolved.
fn has_names(network: &Network) -> bool {
    match network {
        Network::Allow(entries) => entries.iter().any(|e| {
            verse_spec::parse_destination(e)
                .is_ok_and(|d| matches!(d.host, verse_spec::DestHost::Name(_)))
        }),
        Network::Proxy(url) => verse_spec::parse_proxy(url)
            .is_ok_and(|p| matches!(p.host, verse_spec::DestHost::Name(_))),
        _ => false,
    }
}
