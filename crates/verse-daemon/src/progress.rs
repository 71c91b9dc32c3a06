//! Streamed progress: a long build or import answers `?progress=true` with a chunked
//! `application/x-ndjson` body of [`ProgressEvent`]s, ending with `done` (the result the
//! plain call returns) or `error`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use verse_api::ProgressEvent;

use crate::Daemon;
use crate::error::{ApiError, ApiResult};

fn line(event: &ProgressEvent) -> Bytes {
    let mut bytes = serde_json::to_vec(event).expect("events always serialise");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Runs `work` on a blocking thread while holding the daemon's change lock, streaming what
/// it emits; the last event carries its result or error.
pub fn stream<F>(daemon: Arc<Daemon>, work: F) -> Response
where
    F: FnOnce(&verse_engine::Engine, &mut dyn FnMut(ProgressEvent)) -> ApiResult<serde_json::Value>
        + Send
        + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let _changes = daemon.changes.lock().await;
        let worker = Arc::clone(&daemon);
        let events = tx.clone();
        let result = tokio::task::spawn_blocking(move || {
            work(&worker, &mut |event| {
                // A client that went away stops receiving; the work still completes.
                let _ = events.send(line(&event));
            })
        })
        .await
        .map_err(ApiError::internal)
        .and_then(|r| r);
        let last = match result {
            Ok(result) => ProgressEvent::Done { result },
            Err(e) => ProgressEvent::Error { error: e.body },
        };
        let _ = tx.send(line(&last));
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .expect("static response parts are valid")
}
