//! `GET /v1/envs/NAME/logs[?follow=true]`: an env's console log.
//!
//! The shim keeps the log under the env's `log_max` by rotating
//! `console.log` to `console.log.1`; a reader gets the rotated file first,
//! then the current one, and when following it notices a rotation by the
//! path naming a new inode: it finishes the file it holds (the bytes written
//! there before the rotation) and goes on with the new one from its start.

use crate::Daemon;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use verse_engine::envs;

/// How often a follower looks for more.
const FOLLOW_TICK: Duration = Duration::from_millis(100);

struct Tail {
    /// Files still to read whole before the current one (the rotated-out file).
    before: Vec<tokio::fs::File>,
    current: Option<tokio::fs::File>,
    path: PathBuf,
    follow: bool,
    daemon: Arc<Daemon>,
    name: String,
}

async fn open(path: &std::path::Path) -> ApiResult<Option<tokio::fs::File>> {
    match tokio::fs::File::open(path).await {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// Whether `path` now names another file than `file` (the log was rotated).
async fn rotated(path: &std::path::Path, file: &tokio::fs::File) -> bool {
    match (tokio::fs::metadata(path).await, file.metadata().await) {
        (Ok(now), Ok(held)) => now.ino() != held.ino() || now.dev() != held.dev(),
        // The path is gone for a moment between the rename and the new file.
        _ => false,
    }
}

impl Tail {
    /// The next chunk of the log, or `None` when there is no more (and, when
    /// following, the env has stopped).
    async fn next(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(file) = self.before.first_mut() {
            match file.read(&mut buf).await {
                Ok(n) if n > 0 => {
                    buf.truncate(n);
                    return Some(Ok(buf.into()));
                }
                Ok(_) => {
                    self.before.remove(0);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        loop {
            if self.current.is_none() {
                self.current = tokio::fs::File::open(&self.path).await.ok();
            }
            if let Some(file) = self.current.as_mut() {
                match file.read(&mut buf).await {
                    Ok(n) if n > 0 => {
                        buf.truncate(n);
                        return Some(Ok(buf.into()));
                    }
                    Ok(_) => {}
                    Err(e) => return Some(Err(e)),
                }
                // At the end of the file held: if the shim has moved on to a
                // new file, everything of this one has been read.
                if rotated(&self.path, file).await {
                    self.current = None;
                    continue;
                }
                // Emptied in place (a gvisor env's log, capped by its shim):
                // go on from its new start.
                if let (Ok(meta), Ok(at)) = (file.metadata().await, file.stream_position().await)
                    && meta.len() < at
                {
                    let _ = file.seek(std::io::SeekFrom::Start(0)).await;
                    continue;
                }
            }
            if !self.follow {
                return None;
            }
            if !envs::is_running(&self.daemon, &self.name).await {
                // One last pass catches what the env wrote as it stopped.
                self.follow = false;
                continue;
            }
            tokio::time::sleep(FOLLOW_TICK).await;
        }
    }
}

pub async fn logs(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<verse_api::LogsQuery>,
) -> ApiResult<Response> {
    envs::find_env(&daemon, &name)?;
    let path = daemon.paths.env_dir(&name).join("console.log");
    let rotated_out = verse_runtime::console_log::rotated_path(&path);
    // The rotated-out file first: opened before the current one, so a
    // rotation in between cannot skip a file.
    let before: Vec<_> = open(&rotated_out).await?.into_iter().collect();
    let current = open(&path).await?;
    let tail = Tail {
        before,
        current,
        path,
        follow: query.follow,
        daemon,
        name,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        tail.next().await.map(|chunk| (chunk, tail))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}
