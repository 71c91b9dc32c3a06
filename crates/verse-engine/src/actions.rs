//! What the API asks the engine to do, one function per request: each checks its input,
//! takes the change lock where it changes envs, acts, audits and answers with a
//! `verse_api` body or an [`EngineError`]. The daemon's handlers are one line around these.

use crate::Engine;
use crate::db::{Desired, EnvPlan, EnvRow, now};
use crate::envs::find_env;
use crate::error::{EngineError, EngineResult};
use crate::guard::Actor;
use crate::{control, diff, lifecycle, reconcile, snapshots};
use std::sync::Arc;
use std::time::Instant;
use verse_api::{
    ApplyReport, ApplyRequest, DiffReport, EnvInfo, EventKind, ExecRequest, GenerationDetail,
    GenerationInfo, HibernateQuery, ImportReport, ImportRequest, LimitsRequest, Origin, Removed,
    RestoreRequest, RollbackRequest, RunRequest, SnapshotInfo, SnapshotRequest, VerifyReport,
};
use verse_runtime::ShimRequest;

/// A connection to an env's shim that carries an exec or run session's frames.
pub type ShimStream = tokio::io::BufReader<tokio::net::UnixStream>;

pub async fn show_env(daemon: &Arc<Engine>, name: String) -> EngineResult<EnvInfo> {
    let row = find_env(daemon, &name)?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn up(daemon: &Arc<Engine>, actor: &Actor, name: String) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    daemon.db.set_desired(&name, Desired::Running)?;
    if !crate::envs::is_running(daemon, &name).await {
        lifecycle::start_because(daemon, &row, false, "verse up").await?;
        daemon.audit(actor, "start", Some(&name), "up");
    }
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn down(daemon: &Arc<Engine>, actor: &Actor, name: String) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    daemon.db.set_desired(&name, Desired::Stopped)?;
    lifecycle::stop_because(daemon, &name, row.plan.stop_timeout_ms, "verse down").await?;
    daemon.audit(actor, "stop", Some(&name), "down");
    let row = find_env(daemon, &name)?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn remove_env(
    daemon: &Arc<Engine>,
    actor: &Actor,
    name: String,
) -> EngineResult<Removed> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    lifecycle::remove(daemon, &row).await?;
    daemon.audit(actor, "rm", Some(&name), "");
    Ok(Removed { removed: name })
}

/// Starts `request` in a running env; the answer is the shim's stream, which the caller
/// relays to the client.
pub async fn exec(
    daemon: &Arc<Engine>,
    actor: &Actor,
    name: String,
    request: ExecRequest,
) -> EngineResult<ShimStream> {
    find_env(daemon, &name)?;
    if request.argv.is_empty() {
        return Err(
            EngineError::invalid("no command given").hint("verse exec NAME -- COMMAND [ARGS...]")
        );
    }
    if crate::control::is_paused_now(daemon, &name).await {
        return Err(EngineError::conflict(format!("env `{name}` is paused"))
            .hint(format!("`verse unpause {name}` lets it run again")));
    }
    let detail = argv_detail(&request.argv);
    let (_, shim) = crate::envs::shim_client(daemon, &name)
        .request(&ShimRequest::Exec(request))
        .await
        .map_err(|e| match e {
            verse_runtime::ShimClientError::Gone(_) => {
                EngineError::conflict(format!("env `{name}` is not running"))
                    .hint(format!("start it with `verse up {name}`"))
            }
            other => EngineError::invalid(format!("exec in `{name}`: {other}")),
        })?;
    daemon.audit(actor, "exec", Some(&name), detail);
    Ok(shim)
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

/// A `verse run` env that has started, attached to its main process.
pub struct RunSession {
    pub row: EnvRow,
    /// The shim's stream of the main process's frames.
    pub shim: ShimStream,
}

/// Forgets a `--rm` env once its main process has ended (call it before its exit code
/// reaches the client, so a client that looks next finds nothing).
pub fn finish_run(daemon: &Engine, row: &EnvRow) {
    if row.remove_on_exit {
        let _ = daemon.db.remove_env(&row.name);
    }
}

/// Creates and starts a one-off env and attaches to its main process.
pub async fn run(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: RunRequest,
) -> EngineResult<RunSession> {
    if request.argv.is_empty() {
        return Err(
            EngineError::invalid("no command given").hint("verse run IMAGE -- COMMAND [ARGS...]")
        );
    }
    if request.disk.is_some_and(|d| d < verse_spec::MIN_DISK) {
        return Err(EngineError::invalid(format!(
            "disk: at least {} bytes (16MiB) is needed",
            verse_spec::MIN_DISK
        )));
    }
    let name = match request.name.clone() {
        Some(name) if !valid_env_name(&name) => {
            return Err(EngineError::invalid(format!(
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
            backend: verse_spec::Backend::Container,
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
        desired: Desired::Running,
        remove_on_exit: request.rm,
        created_at: now(),
    };
    {
        let _changes = daemon.changes.lock().await;
        if daemon.db.env(&name)?.is_some() {
            return Err(
                EngineError::conflict(format!("an env named `{name}` already exists"))
                    .hint("pick another --name, or remove it with `verse rm`"),
            );
        }
        if daemon.db.image(&request.image)?.is_none() {
            return Err(
                EngineError::not_found(format!("no image named `{}`", request.image)).hint(format!(
                    "import it with `verse image import {} PATH`; `verse image ls` lists images",
                    request.image
                )),
            );
        }
        daemon.db.put_env(&row)?;
        if let Err(e) = lifecycle::start(daemon, &row, true).await {
            let _ = lifecycle::remove(daemon, &row).await;
            return Err(e);
        }
        let detail = format!("image={} {}", request.image, argv_detail(&request.argv));
        daemon.audit(actor, "run", Some(&name), detail);
    }
    let attach = ShimRequest::Attach {
        tty: request.tty,
        rows: request.rows,
        cols: request.cols,
    };
    let shim = match crate::envs::shim_client(daemon, &name)
        .request(&attach)
        .await
    {
        Ok((_, shim)) => shim,
        Err(e) => {
            let _ = lifecycle::remove(daemon, &row).await;
            return Err(EngineError::invalid(format!(
                "starting `{}` in env `{name}`: {e}",
                request.argv[0]
            )));
        }
    };
    Ok(RunSession { row, shim })
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

pub async fn apply(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: ApplyRequest,
) -> EngineResult<ApplyReport> {
    let spec = verse_spec::parse_str(&request.source, &request.file_name)
        .map_err(reconcile::spec_errors)?;
    let _changes = daemon.changes.lock().await;
    crate::images::build_declared(daemon, &spec, request.spec_dir.as_deref(), request.dry_run)
        .await?;
    reconcile::check_images(daemon, &spec, &request.file_name, &request.source)?;
    crate::net::check_names(&spec, &request.file_name, &request.source).await?;
    let actions = reconcile::plan(daemon, &spec).await?;
    if request.dry_run {
        return Ok(ApplyReport {
            generation: None,
            actions: actions.into_iter().map(|(a, _)| a).collect(),
            failures: Vec::new(),
        });
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
        daemon.audit(actor, "apply", None, detail);
        let mut report = reconcile::execute(daemon, actor, actions).await?;
        report.generation = Some(active.id);
        return Ok(report);
    }
    let generation =
        daemon
            .db
            .add_generation(&digest, &request.file_name, &spec.canonical_json(), &envs)?;
    let detail = format!(
        "generation={generation} file={} digest={digest}",
        request.file_name
    );
    daemon.audit(actor, "apply", None, detail);
    let mut report = reconcile::execute(daemon, actor, actions).await?;
    report.generation = Some(generation);
    Ok(report)
}

pub async fn net_show(daemon: &Arc<Engine>, name: String) -> EngineResult<verse_api::NetInfo> {
    let row = daemon
        .db
        .env(&name)?
        .ok_or_else(|| EngineError::not_found(format!("no env named `{name}`")))?;
    Ok(tokio::task::block_in_place(|| {
        crate::net::show(daemon, &row)
    }))
}

/// Deletes all but the newest `keep` generations; the active one always stays, so
/// a rollback target that is in use is never lost.
pub async fn generations_gc(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: verse_api::GenerationsGcRequest,
) -> EngineResult<verse_api::GenerationsGcReport> {
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
            actor,
            "generations-gc",
            None,
            format!("removed {removed:?}"),
        );
    }
    Ok(verse_api::GenerationsGcReport { removed, kept })
}

pub async fn generations(daemon: &Arc<Engine>) -> EngineResult<Vec<GenerationInfo>> {
    Ok(daemon.db.generations()?)
}

pub async fn rollback(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: RollbackRequest,
) -> EngineResult<ApplyReport> {
    let _changes = daemon.changes.lock().await;
    let all = daemon.db.generations()?;
    let active = all.iter().find(|g| g.active).map(|g| g.id);
    let target = match request.generation {
        Some(id) => id,
        None => {
            let Some(active) = active else {
                return Err(EngineError::conflict("no generation has been applied yet")
                    .hint("run `verse apply FILE` first"));
            };
            all.iter()
                .rev()
                .map(|g| g.id)
                .find(|id| *id < active)
                .ok_or_else(|| {
                    EngineError::conflict(format!(
                        "generation {active} is the oldest; there is nothing to roll back to"
                    ))
                })?
        }
    };
    let json = daemon.db.generation_spec(target)?.ok_or_else(|| {
        let known: Vec<String> = all.iter().map(|g| g.id.to_string()).collect();
        EngineError::not_found(format!(
            "no generation {target} (known: {})",
            known.join(", ")
        ))
    })?;
    let spec: verse_spec::Spec = serde_json::from_str(&json)
        .map_err(|e| EngineError::internal(format!("generation {target} is unreadable: {e}")))?;
    let actions = reconcile::plan(daemon, &spec).await?;
    daemon.db.activate_generation(target)?;
    daemon.audit(actor, "rollback", None, format!("generation={target}"));
    let mut report = reconcile::execute(daemon, actor, actions).await?;
    report.generation = Some(target);
    Ok(report)
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

/// Checks an import request before anything is read into the store.
pub fn check_import(request: &ImportRequest) -> EngineResult<()> {
    if !valid_image_name(&request.name) {
        return Err(EngineError::invalid(format!(
            "`{}` is not a valid image name: use lowercase letters, digits and . _ - :",
            request.name
        )));
    }
    let path = std::path::PathBuf::from(&request.path);
    if !path.is_absolute() {
        return Err(EngineError::invalid(format!(
            "the import path must be absolute, got `{}`",
            request.path
        )));
    }
    std::fs::metadata(&path)
        .map_err(|e| EngineError::invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(())
}

/// Imports and audits on this thread (it blocks), telling `emit` how it goes; the caller
/// holds the change lock (a gc in between would free the layers just imported, as no
/// image reaches them yet).
pub fn import_image_blocking(
    daemon: &Engine,
    actor: &Actor,
    request: &ImportRequest,
    emit: &mut dyn FnMut(verse_api::ProgressEvent),
) -> EngineResult<ImportReport> {
    let report = import_blocking(daemon, request, emit)?;
    audit_import(daemon, actor, &report, &request.path);
    Ok(report)
}

/// `verse image import` without progress: under the change lock, on a blocking thread.
pub async fn import_image(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: ImportRequest,
) -> EngineResult<ImportReport> {
    check_import(&request)?;
    let _changes = daemon.changes.lock().await;
    let worker = Arc::clone(daemon);
    let actor = actor.clone();
    tokio::task::spawn_blocking(move || {
        import_image_blocking(&worker, &actor, &request, &mut |_| {})
    })
    .await
    .map_err(EngineError::internal)?
}

fn audit_import(daemon: &Engine, actor: &Actor, report: &ImportReport, path: &str) {
    let detail = format!(
        "image={} root={} path={}",
        report.image.name, report.image.root, path
    );
    daemon.audit(actor, "image-import", None, detail);
}

/// A failed import; a full disk says so, and what to do.
fn import_error(path: &str, e: &(dyn std::error::Error + 'static), hint: &str) -> EngineError {
    let mut cur = Some(e);
    let mut full = false;
    while let Some(err) = cur {
        full |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull);
        cur = err.source();
    }
    let error = EngineError::invalid(format!("importing {path}: {e}"));
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
    daemon: &crate::Engine,
    request: &ImportRequest,
    emit: &mut dyn FnMut(verse_api::ProgressEvent),
) -> EngineResult<ImportReport> {
    use verse_api::ProgressEvent;
    let path = std::path::PathBuf::from(&request.path);
    let metadata = std::fs::metadata(&path)
        .map_err(|e| EngineError::invalid(format!("cannot read {}: {e}", path.display())))?;
    let started = Instant::now();
    if verse_image::is_image_archive(&path) {
        let mut lines = Vec::new();
        let imported = {
            let mut counts = crate::progress::Counts::new(emit);
            verse_image::import_archive(
                &daemon.store,
                &path,
                request.tag.as_deref(),
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
        let image = crate::images::record_manifest(daemon, &request.name, imported.manifest)?;
        return Ok(ImportReport {
            image,
            new_bytes: 0,
            millis: started.elapsed().as_millis() as u64,
            reference: imported.reference,
            devices_left_out: imported.devices_left_out,
        });
    }
    if let Some(tag) = &request.tag {
        return Err(EngineError::invalid(format!(
            "{}: not an image archive, so there is no image tagged `{tag}` to pick",
            request.path
        )));
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
        reference: None,
        devices_left_out: Vec::new(),
    })
}

pub async fn verify_image(daemon: &Arc<Engine>, name: String) -> EngineResult<VerifyReport> {
    let image = daemon.db.image(&name)?.ok_or_else(|| {
        EngineError::not_found(format!("no image named `{name}`"))
            .hint("`verse image ls` lists images")
    })?;
    // Every layer of the image, bottom first: a change in any of them is reported with the
    // layer it is in.
    let (_, manifest) = crate::images::manifest_of(daemon, &image)?;
    let worker = Arc::clone(daemon);
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
    .map_err(EngineError::internal)?
    .map_err(EngineError::internal)?;
    Ok(VerifyReport {
        image: name,
        root: image.root,
        changes: changes.into_iter().map(lifecycle::to_path_change).collect(),
    })
}

pub async fn pause(daemon: &Arc<Engine>, name: String) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    control::pause(daemon, &name, "verse pause").await?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn unpause(daemon: &Arc<Engine>, name: String) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    control::unpause(daemon, &name, "verse unpause").await?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn list_snapshots(daemon: &Arc<Engine>, name: String) -> EngineResult<Vec<SnapshotInfo>> {
    find_env(daemon, &name)?;
    Ok(daemon.db.snapshots(Some(&name))?)
}

pub async fn take_snapshot(
    daemon: &Arc<Engine>,
    name: String,
    request: SnapshotRequest,
) -> EngineResult<SnapshotInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    if let Some(label) = &request.label {
        let taken = daemon.db.snapshots(Some(&name))?;
        if label.is_empty() || label.len() > 128 || label.contains(char::is_control) {
            return Err(EngineError::invalid(format!(
                "snapshot label {label:?} must be 1-128 printable characters"
            )));
        }
        if taken
            .iter()
            .any(|s| s.label.as_deref() == Some(label.as_str()))
        {
            return Err(EngineError::conflict(format!(
                "env `{name}` already has a snapshot labelled `{label}`"
            )));
        }
    }
    snapshots::take(daemon, &row, request.label, "user", request.volumes).await
}

pub async fn remove_snapshot(
    daemon: &Arc<Engine>,
    (name, id): (String, String),
) -> EngineResult<Removed> {
    let _changes = daemon.changes.lock().await;
    find_env(daemon, &name)?;
    let snapshot = snapshots::find(daemon, &name, &id)?;
    daemon.db.remove_snapshot(&name, &snapshot.id)?;
    daemon.emit(
        &name,
        EventKind::SnapshotRemoved,
        None,
        format!("verse snapshot rm {name} {}", snapshot.id),
    );
    Ok(Removed {
        removed: snapshot.id,
    })
}

pub async fn restore(
    daemon: &Arc<Engine>,
    name: String,
    request: RestoreRequest,
) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    snapshots::restore(daemon, &row, &request.snapshot).await?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn hibernate(
    daemon: &Arc<Engine>,
    name: String,
    query: HibernateQuery,
) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    if query.discard {
        crate::hibernate::discard(daemon, &row)?;
    } else {
        crate::hibernate::hibernate(daemon, &row, query.timeout_ms).await?;
    }
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn resume(daemon: &Arc<Engine>, name: String) -> EngineResult<EnvInfo> {
    let _changes = daemon.changes.lock().await;
    let row = find_env(daemon, &name)?;
    crate::hibernate::resume(daemon, &row).await?;
    Ok(lifecycle::info(daemon, &row).await)
}

pub async fn diff_spec(daemon: &Arc<Engine>, request: ApplyRequest) -> EngineResult<DiffReport> {
    let spec = verse_spec::parse_str(&request.source, &request.file_name)
        .map_err(crate::reconcile::spec_errors)?;
    reconcile::check_images(daemon, &spec, &request.file_name, &request.source)?;
    let actions = reconcile::plan(daemon, &spec).await?;
    let mut envs = Vec::new();
    for (action, row) in &actions {
        let old = daemon.db.env(&action.env)?;
        envs.push(diff::env_diff(
            action,
            old.as_ref().map(|r| &r.plan),
            row.as_ref().map(|r| &r.plan),
        ));
    }
    Ok(DiffReport { envs })
}

/// The env's effective definition: what the daemon runs it with (its spec
/// entry resolved, or what `verse run` asked for, with live limit changes).
pub async fn env_spec(daemon: &Arc<Engine>, name: String) -> EngineResult<serde_json::Value> {
    let row = crate::envs::find_env(daemon, &name)?;
    serde_json::to_value(&row.plan).map_err(EngineError::internal)
}

/// What `GET /v1/envs/NAME/files` answers.
pub enum EnvFilesAnswer {
    Path(verse_api::EnvPath),
    Bytes(Vec<u8>),
}

/// Browses a running env's own files, read-only (see [`crate::envfs`]).
pub async fn env_files(
    daemon: &Arc<Engine>,
    name: String,
    query: verse_api::EnvFilesQuery,
) -> EngineResult<EnvFilesAnswer> {
    let row = crate::envs::find_env(daemon, &name)?;
    crate::backend::of(row.plan.backend).require(
        verse_spec::caps::Feature::Files,
        &format!("env `{name}`: its files"),
    )?;
    let path = &query.path;
    if !path.starts_with('/') || path.contains('\0') {
        return Err(EngineError::invalid(format!(
            "path `{}`: give an absolute path as the env sees it, like /etc/hostname",
            path.escape_debug()
        )));
    }
    let files = crate::envfs::EnvFiles::open(daemon, &name).await?;
    if query.read {
        let length = query.length.unwrap_or(verse_api::MAX_FILE_CHUNK);
        let staging = daemon.paths.state_dir().join("browse-staging");
        files
            .read_at(path, query.offset, length, &staging)
            .await
            .map(EnvFilesAnswer::Bytes)
    } else {
        files.describe(path).await.map(EnvFilesAnswer::Path)
    }
}

pub async fn generation(daemon: &Arc<Engine>, id: String) -> EngineResult<GenerationDetail> {
    let all = daemon.db.generations()?;
    let wanted = id.parse::<u64>().ok();
    let Some(info) = all.into_iter().find(|g| Some(g.id) == wanted) else {
        return Err(EngineError::not_found(format!("no generation {id}"))
            .hint("`verse generations` lists the kept generations"));
    };
    let json = daemon
        .db
        .generation_spec(info.id)?
        .ok_or_else(|| EngineError::not_found(format!("no generation {id}")))?;
    let spec = serde_json::from_str(&json)
        .map_err(|e| EngineError::internal(format!("generation {id} is unreadable: {e}")))?;
    Ok(GenerationDetail { info, spec })
}

fn check_limits(request: &LimitsRequest) -> EngineResult<()> {
    if let Some(cpu) = request.cpu
        && !(cpu.is_finite() && cpu > 0.0 && cpu <= verse_spec::MAX_CPU)
    {
        return Err(EngineError::invalid(format!(
            "cpu {cpu}: must be more than 0 and at most {} cores (fractions like 0.5 are allowed)",
            verse_spec::MAX_CPU
        )));
    }
    if let Some(memory) = request.memory
        && memory < verse_spec::MIN_MEMORY
    {
        return Err(EngineError::invalid(format!(
            "memory {memory} bytes: at least {} bytes (4MiB)",
            verse_spec::MIN_MEMORY
        )));
    }
    if let Some(pids) = request.pids
        && !(1..=verse_spec::MAX_PIDS).contains(&pids)
    {
        return Err(EngineError::invalid(format!(
            "pids {pids}: between 1 and {}",
            verse_spec::MAX_PIDS
        )));
    }
    if request.cpu.is_none() && request.memory.is_none() && request.pids.is_none() {
        return Err(EngineError::invalid(
            "no limit given: set cpu, memory or pids",
        ));
    }
    Ok(())
}

/// New cgroup limits for an env, live when it runs; audited and evented
/// (`updated`) like the same change made by `verse apply`.
pub async fn set_limits(
    daemon: &Arc<Engine>,
    actor: &Actor,
    name: String,
    request: LimitsRequest,
) -> EngineResult<EnvInfo> {
    check_limits(&request)?;
    let _changes = daemon.changes.lock().await;
    let mut row = crate::envs::find_env(daemon, &name)?;
    row.plan.cpu = request.cpu.or(row.plan.cpu);
    row.plan.memory = request.memory.or(row.plan.memory);
    row.plan.pids = request.pids.or(row.plan.pids);
    let detail = format!(
        "cpu={:?} memory={:?} pids={:?}",
        row.plan.cpu, row.plan.memory, row.plan.pids
    );
    if crate::envs::is_running(daemon, &name).await {
        // Only limits differ: the update applies them to the live cgroup.
        crate::supervisor::update(daemon, &row).await?;
    } else {
        daemon.db.put_env(&row)?;
        daemon.emit(
            &name,
            verse_api::EventKind::Updated,
            None,
            format!("verse limit: {detail}, from the next start"),
        );
    }
    daemon.audit(actor, "limits", Some(&name), &detail);
    let row = crate::envs::find_env(daemon, &name)?;
    Ok(crate::lifecycle::info(daemon, &row).await)
}
