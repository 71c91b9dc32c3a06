//! The HTTP API: resources under `/v1`, JSON bodies, upgrades for streams.

use crate::Daemon;
use crate::db::{EnvPlan, EnvRow, now};
use crate::error::{ApiError, ApiResult};
use crate::guard::Actor;
use crate::{lifecycle, reconcile};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use verse_api::frame::{Kind, tokio_io};
use verse_api::{
    ApplyReport, ApplyRequest, DaemonInfo, Diagnostic, EnvInfo, ExecRequest, GenerationInfo,
    ImportReport, ImportRequest, Origin, RollbackRequest, RunRequest, VerifyReport,
};
use verse_runtime::ShimRequest;

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

pub(crate) fn find_env(daemon: &Daemon, name: &str) -> ApiResult<EnvRow> {
    daemon.db.env(name)?.ok_or_else(|| {
        ApiError::not_found(format!("no env named `{name}`"))
            .hint("`verse ls` lists the envs this daemon knows")
    })
}

async fn list_envs(
    State(daemon): Shared,
    scope: Option<Extension<crate::tcp::ReadScope>>,
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

async fn show_env(State(daemon): Shared, Path(name): Path<String>) -> ApiResult<Json<EnvInfo>> {
    let row = find_env(&daemon, &name)?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn up(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    daemon.db.set_desired(&name, "running")?;
    if !lifecycle::is_running(&daemon, &name).await {
        lifecycle::start_because(&daemon, &row, false, "verse up").await?;
        daemon.audit(&actor, "start", Some(&name), "up");
    }
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn down(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvInfo>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    daemon.db.set_desired(&name, "stopped")?;
    lifecycle::stop_because(&daemon, &name, row.plan.stop_timeout_ms, "verse down").await?;
    daemon.audit(&actor, "stop", Some(&name), "down");
    let row = find_env(&daemon, &name)?;
    Ok(Json(lifecycle::info(&daemon, &row).await))
}

async fn remove_env(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(&daemon, &name)?;
    lifecycle::remove(&daemon, &row).await?;
    daemon.audit(&actor, "rm", Some(&name), "");
    Ok(Json(serde_json::json!({ "removed": name })))
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

async fn exec(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (request, on_upgrade): (ExecRequest, _) = upgrade_parts(req).await?;
    find_env(&daemon, &name)?;
    if request.argv.is_empty() {
        return Err(
            ApiError::bad_request("no command given").hint("verse exec NAME -- COMMAND [ARGS...]")
        );
    }
    if crate::control::is_paused_now(&daemon, &name).await {
        return Err(ApiError::conflict(format!("env `{name}` is paused"))
            .hint(format!("`verse unpause {name}` lets it run again")));
    }
    let detail = argv_detail(&request.argv);
    let (_, shim) = lifecycle::shim_client(&daemon, &name)
        .request(&ShimRequest::Exec(request))
        .await
        .map_err(|e| match e {
            verse_runtime::ShimClientError::Gone(_) => {
                ApiError::conflict(format!("env `{name}` is not running"))
                    .hint(format!("start it with `verse up {name}`"))
            }
            other => ApiError::bad_request(format!("exec in `{name}`: {other}")),
        })?;
    daemon.audit(&actor, "exec", Some(&name), detail);
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

/// Copies bytes both ways until the shim side ends. Unlike
/// `copy_bidirectional`, a failed write towards the shim (it closed after the
/// process exited, while the client still sent input) does not cut off what
/// the shim still has to say: its output and exit code always reach the client.
async fn relay<C, S>(client: C, shim: S)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut shim_read, mut shim_write) = tokio::io::split(shim);
    let to_shim = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut shim_write).await;
        let _ = shim_write.shutdown().await;
    });
    let _ = tokio::io::copy(&mut shim_read, &mut client_write).await;
    let _ = client_write.shutdown().await;
    to_shim.abort();
}

fn argv_detail(argv: &[String]) -> String {
    format!(
        "argv={}",
        serde_json::to_string(argv).expect("strings serialise")
    )
}

fn valid_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

async fn run(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> ApiResult<Response> {
    let (request, on_upgrade): (RunRequest, _) = upgrade_parts(req).await?;
    if request.argv.is_empty() {
        return Err(
            ApiError::bad_request("no command given").hint("verse run IMAGE -- COMMAND [ARGS...]")
        );
    }
    if request.disk.is_some_and(|d| d < verse_spec::MIN_DISK) {
        return Err(ApiError::bad_request(format!(
            "disk: at least {} bytes (16MiB) is needed",
            verse_spec::MIN_DISK
        )));
    }
    let name = match request.name.clone() {
        Some(name) if !valid_env_name(&name) => {
            return Err(ApiError::bad_request(format!(
                "`{name}` is not a valid env name: use lowercase letters, digits and '-', starting with a letter or digit, at most 63"
            )));
        }
        Some(name) => name,
        None => format!("run-{:08x}", rand_u32()),
    };
    let row = EnvRow {
        name: name.clone(),
        origin: Origin::Run,
        plan: EnvPlan {
            image: request.image.clone(),
            backend: "container".into(),
            accel: String::new(),
            cpu: None,
            memory: None,
            pids: None,
            disk: request.disk,
            ephemeral: request.rm,
            command: Some(request.argv.clone()),
            env: request.env.clone(),
            hostname: name.clone(),
            volumes: Vec::new(),
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            stop_timeout_ms: 10_000,
            trusted_keys: None,
            network: verse_spec::Network::None,
            reach: Vec::new(),
            router: false,
            restart: verse_spec::Restart::No,
            health: None,
            snapshots: None,
            desktop: None,
            autostart: Vec::new(),
            label: None,
            clipboard: Default::default(),
            downloads: None,
            log_max: None,
            shm: None,
            root_user_given: false,
            root_workdir_given: false,
        },
        desired: "running".into(),
        remove_on_exit: request.rm,
        created_at: now(),
    };
    {
        let _changes = daemon.changes.lock().await;
        if daemon.db.env(&name)?.is_some() {
            return Err(
                ApiError::conflict(format!("an env named `{name}` already exists"))
                    .hint("pick another --name, or remove it with `verse rm`"),
            );
        }
        if daemon.db.image(&request.image)?.is_none() {
            return Err(
                ApiError::not_found(format!("no image named `{}`", request.image)).hint(format!(
                    "import it with `verse image import {} PATH`; `verse image ls` lists images",
                    request.image
                )),
            );
        }
        daemon.db.put_env(&row)?;
        if let Err(e) = lifecycle::start(&daemon, &row, true).await {
            let _ = lifecycle::remove(&daemon, &row).await;
            return Err(e);
        }
        let detail = format!("image={} {}", request.image, argv_detail(&request.argv));
        daemon.audit(&actor, "run", Some(&name), detail);
    }
    let attach = ShimRequest::Attach {
        tty: request.tty,
        rows: request.rows,
        cols: request.cols,
    };
    let shim = match lifecycle::shim_client(&daemon, &name)
        .request(&attach)
        .await
    {
        Ok((_, shim)) => shim,
        Err(e) => {
            let _ = lifecycle::remove(&daemon, &row).await;
            return Err(ApiError::bad_request(format!(
                "starting `{}` in env `{name}`: {e}",
                request.argv[0]
            )));
        }
    };
    let daemon = Arc::clone(&daemon);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("run upgrade failed: {e}");
                return;
            }
        };
        let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(upgraded));
        let (mut shim_read, mut shim_write) = tokio::io::split(shim);
        let to_shim = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut shim_write).await;
            let _ = shim_write.shutdown().await;
        });
        // Relay frames to the client, but forget a `--rm` env before its
        // exit code goes out, so a client that looks next finds nothing.
        while let Ok(Some(frame)) = tokio_io::read_frame(&mut shim_read).await {
            let last = matches!(frame.kind, Kind::Exit | Kind::Error);
            if last && row.remove_on_exit {
                let _ = daemon.db.remove_env(&row.name);
            }
            if tokio_io::write_frame(&mut client_write, &frame)
                .await
                .is_err()
                || last
            {
                break;
            }
        }
        if row.remove_on_exit {
            let _ = daemon.db.remove_env(&row.name);
        }
        let _ = client_write.shutdown().await;
        to_shim.abort();
    });
    Ok(switching_protocols())
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        bytes = (nanos ^ std::process::id()).to_le_bytes();
    }
    u32::from_le_bytes(bytes)
}

pub(crate) fn spec_errors(errors: verse_spec::SpecErrors) -> ApiError {
    let diagnostics: Vec<Diagnostic> = errors
        .iter()
        .map(|e| Diagnostic {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            message: e.message.clone(),
        })
        .collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, errors.to_string())
        .hint("nothing was changed")
        .diagnostics(diagnostics)
}

async fn apply(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<Json<ApplyReport>> {
    let spec = verse_spec::parse_str(&request.source, &request.file_name).map_err(spec_errors)?;
    let _changes = daemon.changes.lock().await;
    crate::images::build_declared(&daemon, &spec, request.spec_dir.as_deref(), request.dry_run)
        .await?;
    reconcile::check_images(&daemon, &spec, &request.file_name, &request.source)?;
    crate::net::check_names(&spec, &request.file_name, &request.source).await?;
    let actions = reconcile::plan(&daemon, &spec).await?;
    if request.dry_run {
        return Ok(Json(ApplyReport {
            generation: None,
            actions: actions.into_iter().map(|(a, _)| a).collect(),
            failures: Vec::new(),
        }));
    }
    let envs: Vec<String> = spec.envs.keys().cloned().collect();
    // Re-applying the active spec records no new generation.
    let digest = spec.digest();
    let active = daemon.db.generations()?.into_iter().find(|g| g.active);
    if let Some(active) = active.filter(|g| g.digest == digest) {
        let detail = format!(
            "generation={} (unchanged) file={}",
            active.id, request.file_name
        );
        daemon.audit(&actor, "apply", None, detail);
        let mut report = reconcile::execute(&daemon, &actor, actions).await?;
        report.generation = Some(active.id);
        return Ok(Json(report));
    }
    let generation =
        daemon
            .db
            .add_generation(&digest, &request.file_name, &spec.canonical_json(), &envs)?;
    let detail = format!(
        "generation={generation} file={} digest={digest}",
        request.file_name
    );
    daemon.audit(&actor, "apply", None, detail);
    let mut report = reconcile::execute(&daemon, &actor, actions).await?;
    report.generation = Some(generation);
    Ok(Json(report))
}

async fn net_show(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<verse_api::NetInfo>> {
    let row = daemon
        .db
        .env(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no env named `{name}`")))?;
    Ok(Json(tokio::task::block_in_place(|| {
        crate::net::show(&daemon, &row)
    })))
}

/// Deletes all but the newest `keep` generations; the active one always stays, so
/// a rollback target that is in use is never lost.
async fn generations_gc(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<verse_api::GenerationsGcRequest>,
) -> ApiResult<Json<verse_api::GenerationsGcReport>> {
    let _changes = daemon.changes.lock().await;
    let all = daemon.db.generations()?;
    let newest: Vec<u64> = all
        .iter()
        .rev()
        .take(request.keep as usize)
        .map(|g| g.id)
        .collect();
    let (kept, removed): (Vec<u64>, Vec<u64>) = all
        .iter()
        .map(|g| g.id)
        .partition(|id| newest.contains(id) || all.iter().any(|g| g.active && g.id == *id));
    daemon.db.remove_generations(&removed)?;
    if !removed.is_empty() {
        daemon.audit(
            &actor,
            "generations-gc",
            None,
            format!("removed {removed:?}"),
        );
    }
    Ok(Json(verse_api::GenerationsGcReport { removed, kept }))
}

async fn generations(State(daemon): Shared) -> ApiResult<Json<Vec<GenerationInfo>>> {
    Ok(Json(daemon.db.generations()?))
}

async fn rollback(
    State(daemon): Shared,
    Extension(actor): Extension<Actor>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult<Json<ApplyReport>> {
    let _changes = daemon.changes.lock().await;
    let all = daemon.db.generations()?;
    let active = all.iter().find(|g| g.active).map(|g| g.id);
    let target = match request.generation {
        Some(id) => id,
        None => {
            let Some(active) = active else {
                return Err(ApiError::conflict("no generation has been applied yet")
                    .hint("run `verse apply FILE` first"));
            };
            all.iter()
                .rev()
                .map(|g| g.id)
                .find(|id| *id < active)
                .ok_or_else(|| {
                    ApiError::conflict(format!(
                        "generation {active} is the oldest; there is nothing to roll back to"
                    ))
                })?
        }
    };
    let json = daemon.db.generation_spec(target)?.ok_or_else(|| {
        let known: Vec<String> = all.iter().map(|g| g.id.to_string()).collect();
        ApiError::not_found(format!(
            "no generation {target} (known: {})",
            known.join(", ")
        ))
    })?;
    let spec: verse_spec::Spec = serde_json::from_str(&json)
        .map_err(|e| ApiError::internal(format!("generation {target} is unreadable: {e}")))?;
    let actions = reconcile::plan(&daemon, &spec).await?;
    daemon.db.activate_generation(target)?;
    daemon.audit(&actor, "rollback", None, format!("generation={target}"));
    let mut report = reconcile::execute(&daemon, &actor, actions).await?;
    report.generation = Some(target);
    Ok(Json(report))
}

fn valid_image_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(b))
}

async fn import_image(
    State(daemon): Shared,
    Query(query): Query<crate::progress::ProgressQuery>,
    Extension(actor): Extension<Actor>,
    Json(request): Json<ImportRequest>,
) -> ApiResult<axum::response::Response> {
    if !valid_image_name(&request.name) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a valid image name: use lowercase letters, digits and . _ - :",
            request.name
        )));
    }
    let path = std::path::PathBuf::from(&request.path);
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "the import path must be absolute, got `{}`",
            request.path
        )));
    }
    std::fs::metadata(&path)
        .map_err(|e| ApiError::bad_request(format!("cannot read {}: {e}", path.display())))?;
    if query.progress {
        return Ok(crate::progress::stream(daemon, move |d, emit| {
            let report = import_blocking(d, &request, emit)?;
            audit_import(d, &actor, &report, &request.path);
            serde_json::to_value(report).map_err(ApiError::internal)
        }));
    }
    // Held across the import and the image record: a gc in between would free the layers
    // just imported, as no image reaches them yet.
    let _changes = daemon.changes.lock().await;
    let request_path = request.path.clone();
    let worker = Arc::clone(&daemon);
    let report =
        tokio::task::spawn_blocking(move || import_blocking(&worker, &request, &mut |_| {}))
            .await
            .map_err(ApiError::internal)??;
    audit_import(&daemon, &actor, &report, &request_path);
    Ok(Json(report).into_response())
}

fn audit_import(daemon: &Daemon, actor: &Actor, report: &ImportReport, path: &str) {
    let detail = format!(
        "image={} root={} path={}",
        report.image.name, report.image.root, path
    );
    daemon.audit(actor, "image-import", None, detail);
}

/// A failed import; a full disk says so, and what to do.
fn import_error(path: &str, e: &(dyn std::error::Error + 'static), hint: &str) -> ApiError {
    let mut cur = Some(e);
    let mut full = false;
    while let Some(err) = cur {
        full |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull);
        cur = err.source();
    }
    let error = ApiError::bad_request(format!("importing {path}: {e}"));
    if full {
        error.hint(format!(
            "the filesystem holding the store is full; {hint}, the store is consistent (`verse image verify` checks it); free space (`verse image gc` removes what no image uses) and retry"
        ))
    } else {
        error.hint(hint.to_string())
    }
}

/// Imports a directory, a tar, or an image archive (OCI layout, docker/podman save, a
/// `verse image export`) and records the image; the caller holds the change lock.
fn import_blocking(
    daemon: &crate::Daemon,
    request: &ImportRequest,
    emit: &mut dyn FnMut(verse_api::ProgressEvent),
) -> ApiResult<ImportReport> {
    use verse_api::ProgressEvent;
    let path = std::path::PathBuf::from(&request.path);
    let metadata = std::fs::metadata(&path)
        .map_err(|e| ApiError::bad_request(format!("cannot read {}: {e}", path.display())))?;
    let started = Instant::now();
    if metadata.is_file() && verse_image::is_image_archive(&path) {
        let mut lines = Vec::new();
        let h = {
            let mut counts = crate::progress::Counts::new(emit);
            verse_image::import_archive(
                &daemon.store,
                &path,
                &mut |line| {
                    tracing::info!(target: "verse::import", "{line}");
                    lines.push(line.to_string());
                },
                &mut counts,
            )
        }
        .map_err(|e| import_error(&request.path, &e, "no image was recorded"))?;
        for text in lines {
            emit(ProgressEvent::Line { text });
        }
        let image = crate::images::record_manifest(daemon, &request.name, h)?;
        return Ok(ImportReport {
            image,
            new_bytes: 0,
            millis: started.elapsed().as_millis() as u64,
        });
    }
    let layer = (|| {
        let mut progress = crate::progress::Counts::new(emit);
        let layer = if metadata.is_dir() {
            daemon.store.import_dir(&path, &mut progress)
        } else {
            daemon.store.import_tar(&path, &mut progress)
        }?;
        // Re-importing is how a user repairs a layer whose checkout was
        // tampered with: drop checkouts that no longer match, so the next
        // start builds them afresh from the verified objects.
        for (uid_base, _) in daemon.store.checkouts_of(&layer.root)? {
            if daemon.store.quick_check(&layer.root, uid_base).is_err() {
                daemon.store.remove_checkout(&layer.root, uid_base)?;
            }
        }
        Ok::<_, verse_store::StoreError>(layer)
    })()
    .map_err(|e| import_error(&request.path, &e, "nothing was added to the store"))?;
    emit(ProgressEvent::Count {
        files: layer.files,
        bytes: layer.size,
    });
    let image = crate::images::record_single_layer(daemon, &request.name, &layer, &request.path)?;
    daemon.db.put_image(&image)?;
    Ok(ImportReport {
        image,
        new_bytes: layer.new_bytes,
        millis: started.elapsed().as_millis() as u64,
    })
}

async fn verify_image(
    State(daemon): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<VerifyReport>> {
    let image = daemon.db.image(&name)?.ok_or_else(|| {
        ApiError::not_found(format!("no image named `{name}`"))
            .hint("`verse image ls` lists images")
    })?;
    // Every layer of the image, bottom first: a change in any of them is reported with the
    // layer it is in.
    let (_, manifest) = crate::images::manifest_of(&daemon, &image)?;
    let worker = Arc::clone(&daemon);
    let changes = tokio::task::spawn_blocking(move || {
        let many = manifest.layers.len() > 1;
        let mut all = Vec::new();
        for (i, layer) in manifest.layers.iter().enumerate() {
            for mut change in worker.store.verify(&layer.root)? {
                if many {
                    change.detail = format!("layer {} ({}): {}", i + 1, layer.input, change.detail);
                }
                all.push(change);
            }
        }
        Ok::<_, verse_store::StoreError>(all)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(VerifyReport {
        image: name,
        root: image.root,
        changes: changes.into_iter().map(lifecycle::to_path_change).collect(),
    }))
}
