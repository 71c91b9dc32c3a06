//! `GET /v1/events`: the engine's event log (`verse_engine::events`) as JSON lines, then,
//! with `follow`, new events as they happen.

use crate::Daemon;
use crate::error::ApiResult;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use verse_api::{EventInfo, EventQuery, EventsLagged};
use verse_engine::events::lock;

/// `GET /v1/events`: past events as JSON lines, then (with `follow`) new ones as
/// they happen, over a chunked response.
pub async fn stream(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<EventQuery>,
    scope: Option<axum::Extension<crate::scope::ReadScope>>,
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
                        let note = EventsLagged { lagged: n };
                        let mut text = serde_json::to_vec(&note).expect("a count serialises");
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
