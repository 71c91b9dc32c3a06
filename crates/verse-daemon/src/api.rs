//! The HTTP API: resources under `/v1`, JSON bodies, upgrades for streams. Each handler
//! reads the request, calls the engine (`verse_engine::actions` and friends) and writes
//! its answer; what a request means lives in the engine.

use crate::Daemon;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use verse_api::frame::{Kind, tokio_io};
use verse_api::{
    ApplyReport, ApplyRequest, DaemonInfo, EnvInfo, ExecRequest, GenerationInfo, ImportRequest,
    RollbackRequest, RunRequest, VerifyReport,
};
use verse_engine::{Actor, actions, lifecycle};

type Shared = State<Arc<Daemon>>;

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/info", get(daemon_info))
        .route("/v1/envs", get(list_envs))
        .route("/v1/envs/{name}", get(show_env).delete(remove_env))
        .route("/v1/envs/{name}/up", post(up))
        .route("/v1/envs/{name}/down", post(down))
        .route("/v1/envs/{name}/exec", post(exec))
        .route("/v1/envs/{name}/logs", get(crate::logs::logs))
        .route("/v1/envs/{name}/net", get(net_show))
        .route("/v1/run", post(run))
        .route("/v1/apply", post(apply))
        .route("/v1/generations", get(generations))
        .route("/v1/generations/gc", post(generations_gc))
        .route("/v1/rollback", post(rollback))
        .route("/v1/images", get(crate::images::list).post(import_image))
        .merge(crate::images::routes())
        .route("/v1/images/{name}/verify", get(verify_image))
        .route("/v1/compose", post(crate::compose::compose))
        .route("/v1/compose/add", post(crate::compose::add))
        .merge(crate::lifecycle_api::routes())
        .merge(crate::guard::routes())
        .merge(crate::quarantine::routes())
        .merge(crate::fs_routes::routes())
        .route("/v1/web", get(web_info))
        .with_state(daemon)
}

async fn daemon_info(State(daemon): Shared) -> Json<DaemonInfo> {
    Json(DaemonInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        root: daemon.paths.root.display().to_string(),
        pid: std::process::id(),
    })
}

async fn web_info(State(daemon): Shared) -> Json<verse_api::WebInfo> {
    Json(daemon.web.get().cloned().unwrap_or_default())
}

async fn list_envs(
    State(daemon): Shared,
    scope: Option<Extension<crate::scope::ReadScope>>,
) -> ApiResult<Json<Vec<EnvInfo>>> {
    let mut out = Vec::new();
    for row in daemon.db.envs()? {
        // A token for some envs sees those only (unix socket: every env).
        if let Some(Extension(scope)) = &scope
            && !scope.may_read(&row.name)
        {
            continue;
        }
        out.push(lifecycle::info(&daemon, &row).await);
    }
    Ok(Json(out))
}

/// Splits an upgrade request into its JSON body and the pending upgrade.
async fn upgrade_parts<T: for<'de> Deserialize<'de>>(
    mut req: Request,
) -> ApiResult<(T, hyper::upgrade::OnUpgrade)> {
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("verse-stream"));
    if !wants_upgrade {
        return Err(ApiError::bad_request(
            "this endpoint streams: send `Connection: upgrade` and `Upgrade: verse-stream`",
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    let body = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
    Ok((body, on_upgrade))
}

fn switching_protocols() -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "verse-stream")
        .body(Body::empty())
        .expect("static response is valid")
}

/// Copies bytes both ways until the shim side ends. Unlike
/// `copy_bidirectional`, a failed write towards the shim (it closed after the
/// process exited, while the client still sent input) does not cut off what
/// the shim still has to say: its output and exit code always reach the client.
async fn relay<C, S>(client: C, shim: S)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (client_read, mut client_write) = tokio::io::split(client);
    let (mut shim_read, shim_write) = tokio::io::split(shim);
    let input = forward_input(client_read, shim_write);
    let _ = tokio::io::copy(&mut shim_read, &mut client_write).await;
    finish_stream(client_write, input).await;
}

/// How long a finished stream waits for its client to close the connection.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Copies the client's input to the shim; what the client sends once the shim
/// stopped taking it (its process exited) is read and dropped, so the client's
/// side is always drained (see [`finish_stream`]).
fn forward_input<R, W>(mut client_read: R, mut shim_write: W) -> tokio::task::JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut shim_write).await;
        let _ = shim_write.shutdown().await;
        let _ = tokio::io::copy(&mut client_read, &mut tokio::io::sink()).await;
    })
}

/// Ends a stream whose last frame went out: shuts down the client's write side,
/// then waits (up to [`LINGER`]) for the client to close its side before the
/// connection is dropped. A TCP connection closed with input still unread is
/// reset, and a reset can discard what the client had not read yet, the end of
/// the output and the exit code: over TLS a client's end-of-stdin frame often
/// arrives after a short command has already finished.
async fn finish_stream<W>(mut client_write: W, input: tokio::task::JoinHandle<()>)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let _ = client_write.shutdown().await;
    let abort = input.abort_handle();
    if tokio::time::timeout(LINGER, input).await.is_err() {
        abort.abort();
    }
}

async fn show_env(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::show_env(&daemon.engine, name).await?))
}

async fn up(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::up(&daemon.engine, &actor, name).await?))
}

async fn down(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvInfo>> {
    Ok(Json(actions::down(&daemon.engine, &actor, name).await?))
}

async fn remove_env(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<verse_api::Removed>> {
    Ok(Json(
        actions::remove_env(&daemon.engine, &actor, name).await?,
    ))
}

async fn apply(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<Json<ApplyReport>> {
    Ok(Json(actions::apply(&daemon.engine, &actor, request).await?))
}

async fn net_show(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<verse_api::NetInfo>> {
    Ok(Json(actions::net_show(&daemon.engine, name).await?))
}

async fn generations_gc(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<verse_api::GenerationsGcRequest>,
) -> ApiResult<Json<verse_api::GenerationsGcReport>> {
    Ok(Json(
        actions::generations_gc(&daemon.engine, &actor, request).await?,
    ))
}

async fn generations(State(daemon): Shared) -> ApiResult<Json<Vec<GenerationInfo>>> {
    Ok(Json(actions::generations(&daemon.engine).await?))
}

async fn rollback(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult<Json<ApplyReport>> {
    Ok(Json(
        actions::rollback(&daemon.engine, &actor, request).await?,
    ))
}

async fn verify_image(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<VerifyReport>> {
    Ok(Json(actions::verify_image(&daemon.engine, name).await?))
}

async fn exec(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (request, on_upgrade): (ExecRequest, _) = upgrade_parts(req).await?;
    let shim = actions::exec(&daemon.engine, &actor, name, request).await?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                relay(TokioIo::new(upgraded), shim).await;
            }
            Err(e) => tracing::warn!("exec upgrade failed: {e}"),
        }
    });
    Ok(switching_protocols())
}

async fn run(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> ApiResult<Response> {
    let (request, on_upgrade): (RunRequest, _) = upgrade_parts(req).await?;
    let session = actions::run(&daemon.engine, &actor, request).await?;
    let engine = Arc::clone(&daemon.engine);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("run upgrade failed: {e}");
                return;
            }
        };
        let actions::RunSession { row, shim } = session;
        let (client_read, mut client_write) = tokio::io::split(TokioIo::new(upgraded));
        let (mut shim_read, shim_write) = tokio::io::split(shim);
        let input = forward_input(client_read, shim_write);
        // Relay frames to the client, but forget a `--rm` env before its
        // exit code goes out, so a client that looks next finds nothing.
        while let Ok(Some(frame)) = tokio_io::read_frame(&mut shim_read).await {
            let last = matches!(frame.kind, Kind::Exit | Kind::Error);
            if last {
                actions::finish_run(&engine, &row);
            }
            if tokio_io::write_frame(&mut client_write, &frame)
                .await
                .is_err()
                || last
            {
                break;
            }
        }
        actions::finish_run(&engine, &row);
        finish_stream(client_write, input).await;
    });
    Ok(switching_protocols())
}

async fn import_image(
    State(daemon): Shared,
    Query(query): Query<verse_api::ProgressQuery>,
    Extension(actor): Extension<Actor>,
    Json(request): Json<ImportRequest>,
) -> ApiResult<Response> {
    if query.progress {
        actions::check_import(&request)?;
        return Ok(crate::progress::stream(daemon, move |engine, emit| {
            let report = actions::import_image_blocking(engine, &actor, &request, emit)?;
            serde_json::to_value(report).map_err(ApiError::internal)
        }));
    }
    Ok(Json(actions::import_image(&daemon.engine, &actor, request).await?).into_response())
}
