//! Quarantined downloads and `verse copy`.
//!
//! An env with `downloads = "quarantine"` gets a host directory bind-mounted
//! at `/downloads`. Once a second the daemon looks at it: a regular file
//! whose size and times have not changed since the last look, and that no
//! process of the env holds open for writing, is taken out of the env into
//! `$VERSE_ROOT/var/lib/verse/quarantine/ID` (root-only), scanned (type,
//! archive and YARA checks) and held. A clean file whose hold has passed
//! moves on by itself to the env's `release_to` (or the target a
//! `verse copy` gave it); a flagged one waits for `verse quarantine release
//! --force` or `reject`. Every step is in the audit log.
//!
//! A vm env's `/downloads` is a directory in the guest (its agent makes it
//! at boot): the daemon lists it, reads a ready file out into a host staging
//! file and has the agent remove it (only if it is still the file that was
//! read) before taking it in, all through the env's shim ([`GuestFs`]).
//! Releases and copies reach either kind of env through [`EnvFiles`].

use crate::Engine;
use crate::envfs::EnvFiles;
use crate::error::{EngineError, EngineResult};
use crate::guard::Actor;
use crate::guestfs::GuestFs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use verse_api::Paths;
use verse_api::quarantine::{CopyReport, CopyRequest, Item, ReleaseRequest, State};
use verse_guard::quarantine::{Quarantine, QuarantineError};
use verse_guard::yara::Scanner;
use verse_spec::{CopyAction, Target};

/// Where an env's downloads directory appears inside it.
pub const DOWNLOADS_IN_ENV: &str = "/downloads";
const TICK: Duration = Duration::from_secs(1);

/// The host directory bind-mounted at `/downloads`.
pub fn downloads_dir(paths: &Paths, env: &str) -> PathBuf {
    // On the env's disk when it has one: what it downloads counts against it.
    verse_disk::layer_dir(&paths.env_dir(env)).join("downloads")
}

/// Creates the env's downloads directory, owned by the env's user (`base`: host id of
/// the env's root).
pub fn prepare_downloads(
    paths: &Paths,
    env: &str,
    base: u32,
    uid: u32,
    gid: u32,
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = downloads_dir(paths, env);
    if !dir.exists() {
        std::fs::create_dir_all(&dir)?;
    }
    std::os::unix::fs::chown(&dir, Some(base + uid), Some(base + gid))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// The daemon's quarantine: the store, the scanner, and what the watcher
/// saw of each file last time.
pub struct QuarantineState {
    pub store: Quarantine,
    pub scanner: Scanner,
    /// Serialises release and reject (a person's and the daemon's own).
    pub acts: tokio::sync::Mutex<()>,
    seen: Mutex<HashMap<PathBuf, FileKey>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// `verse-scan`: $VERSE_SCAN, next to the `verse` binary, or on PATH.
fn find_scanner(exe: &Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VERSE_SCAN") {
        return Some(PathBuf::from(path));
    }
    let beside = exe.parent().map(|d| d.join("verse-scan"));
    if let Some(beside) = beside.filter(|p| p.is_file()) {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("verse-scan"))
            .find(|p| p.is_file())
    })
}

impl QuarantineState {
    pub fn open(paths: &Paths, exe: &Path) -> Result<QuarantineState, QuarantineError> {
        let store = Quarantine::open(
            &paths.state_dir().join("quarantine"),
            verse_guard::scan::ArchiveLimits::default(),
        )?;
        let bin = find_scanner(exe);
        match &bin {
            Some(bin) => tracing::info!(scanner = %bin.display(), "YARA scanner found"),
            None => tracing::warn!(
                "no YARA scanner (verse-scan) found: every quarantined file will be flagged as unscanned"
            ),
        }
        Ok(QuarantineState {
            store,
            scanner: Scanner {
                bin,
                // Rules shipped with Verse are built into verse-scan; these are the host's own.
                rules: vec![paths.etc().join("rules")],
                timeout: Duration::from_secs(120),
            },
            acts: tokio::sync::Mutex::new(()),
            seen: Mutex::new(HashMap::new()),
        })
    }
}

fn key_of(meta: &std::fs::Metadata) -> FileKey {
    use std::os::unix::fs::MetadataExt;
    FileKey {
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
    }
}

impl FileKey {
    fn of_guest(stamp: &verse_runtime::agent_proto::Stamp) -> FileKey {
        FileKey {
            ino: stamp.ino,
            size: stamp.size,
            mtime_ns: stamp.mtime_ns as i128,
            ctime_ns: stamp.ctime_ns as i128,
        }
    }
}

/// Whether the file seen under `key` is ready to take: unchanged since the
/// last look and not open for writing (or `everything`). A ready file is
/// forgotten, so it is looked at afresh if it stays.
fn ready_now(
    seen: &mut HashMap<PathBuf, FileKey>,
    key: PathBuf,
    now: FileKey,
    writing: impl FnOnce() -> bool,
    everything: bool,
) -> bool {
    let stable = seen.insert(key.clone(), now) == Some(now);
    if everything || (stable && !writing()) {
        seen.remove(&key);
        return true;
    }
    false
}

/// Regular files in `dir` that are ready to take: unchanged since the last
/// look and not open for writing in the env (`everything`: all regular
/// files, for an env that is going away).
fn ready_files(
    state: &QuarantineState,
    dir: &Path,
    cgroup: &str,
    everything: bool,
) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let pids = verse_sandbox::Cgroup::open(cgroup)
        .ok()
        .flatten()
        .map(|c| c.procs())
        .unwrap_or_default();
    let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
    let mut ready = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // Directories, symlinks, fifos...: left where they are.
        if !meta.file_type().is_file() {
            continue;
        }
        let writing = || {
            let pids = pids.iter().map(|p| p.as_raw());
            verse_runtime::open_files::open_for_writing(pids).contains(&(meta.dev(), meta.ino()))
        };
        if ready_now(&mut seen, path.clone(), key_of(&meta), writing, everything) {
            let name = entry.file_name().to_string_lossy().into_owned();
            ready.push((path, name));
        }
    }
    ready
}

/// Runs forever in the daemon.
pub async fn run(daemon: Arc<Engine>) {
    loop {
        tokio::time::sleep(TICK).await;
        if let Err(e) = tick(&daemon).await {
            tracing::warn!("quarantine: {}", e.message);
        }
    }
}

async fn tick(daemon: &Arc<Engine>) -> EngineResult<()> {
    for row in daemon.db.envs()? {
        if let Some(downloads) = &row.plan.downloads {
            if !crate::backend::of(row.plan.backend).host_mounts() {
                take_from_guest(daemon, &row.name, downloads.hold_ms, false).await;
                continue;
            }
            take_from(daemon, &row.name, downloads.hold_ms, false).await;
        }
    }
    release_due(daemon).await;
    Ok(())
}

/// Takes ready files of `env`'s downloads directory into quarantine.
pub async fn take_from(daemon: &Arc<Engine>, env: &str, hold_ms: u64, everything: bool) {
    let worker = Arc::clone(daemon);
    let env = env.to_string();
    let _ =
        tokio::task::spawn_blocking(move || take_ready(&worker, &env, hold_ms, everything)).await;
}

/// Takes every regular file left in `env`'s downloads directory (the env is
/// being removed; a vm env's are taken while it still runs).
pub async fn take_all(daemon: &Engine, env: &str) {
    let row = daemon.db.env(env).ok().flatten();
    let hold_ms = row
        .as_ref()
        .and_then(|r| r.plan.downloads.as_ref())
        .map_or(verse_spec::guard::DEFAULT_HOLD_MS, |d| d.hold_ms);
    if row.is_some_and(|r| !crate::backend::of(r.plan.backend).host_mounts()) {
        take_from_guest(daemon, env, hold_ms, true).await;
        return;
    }
    tokio::task::block_in_place(|| take_ready(daemon, env, hold_ms, true));
}

/// Takes ready files of a running vm env's `/downloads` into quarantine.
async fn take_from_guest(daemon: &Engine, env: &str, hold_ms: u64, everything: bool) {
    if !crate::envs::is_running(daemon, env).await {
        return;
    }
    let guest = GuestFs::new(env, daemon.paths.shim_socket(env));
    let files = match guest.list(DOWNLOADS_IN_ENV).await {
        Ok(files) => files,
        Err(e) => {
            tracing::debug!(env, "listing the guest's downloads: {}", e.message);
            return;
        }
    };
    let ready: Vec<_> = {
        let mut seen = daemon
            .quarantine
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        files
            .into_iter()
            .filter(|f| {
                let key = PathBuf::from(format!("vm:{env}")).join(&f.name);
                ready_now(
                    &mut seen,
                    key,
                    FileKey::of_guest(&f.stamp),
                    || f.writing,
                    everything,
                )
            })
            .collect()
    };
    for file in ready {
        let staged = staging_path(&daemon.paths, "guest");
        let path = format!("{DOWNLOADS_IN_ENV}/{}", file.name);
        // Staged whole and synced, then removed from the guest (only if it is
        // still what was read), then taken in: never in two places for long,
        // never in none.
        let fetched = async {
            let mut out = new_staging_file(&staged).map_err(EngineError::internal)?;
            let stamp = guest
                .read_into(&path, true, crate::guestfs::MAX_FILE_BYTES, &mut out)
                .await?;
            if stamp != file.stamp {
                return Err(EngineError::conflict(format!(
                    "{path} changed since it was listed"
                )));
            }
            out.sync_all().map_err(EngineError::internal)?;
            guest.unlink(&path, stamp).await
        }
        .await;
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&staged);
            tracing::info!(env, "not taken yet: {}", e.message);
            continue;
        }
        tokio::task::block_in_place(|| ingest_download(daemon, &staged, env, &file.name, hold_ms));
    }
}

/// A fresh path in the quarantine's staging directory (root-only, like the
/// quarantine itself).
fn staging_path(paths: &Paths, what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    staging_dir(paths).join(format!("{what}-{}-{n}", std::process::id()))
}

fn staging_dir(paths: &Paths) -> PathBuf {
    paths.state_dir().join("quarantine-staging")
}

/// A new file at `path` (mode 0600), its directory made if missing.
fn new_staging_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn take_ready(daemon: &Engine, env: &str, hold_ms: u64, everything: bool) {
    let dir = downloads_dir(&daemon.paths, env);
    let cgroup = crate::envs::cgroup_path(daemon, env);
    let state = &daemon.quarantine;
    for (path, name) in ready_files(state, &dir, &cgroup, everything) {
        ingest_download(daemon, &path, env, &name, hold_ms);
    }
}

/// Takes the file at `path` (a download of `env` named `name`) into the
/// quarantine, scanned, held for `hold_ms`, audited.
fn ingest_download(daemon: &Engine, path: &Path, env: &str, name: &str, hold_ms: u64) {
    let state = &daemon.quarantine;
    let scanner = &state.scanner;
    {
        match state.store.ingest_with(
            path,
            env,
            name,
            crate::db::now(),
            (hold_ms / 1000) as i64,
            None,
            &|content| scanner.scan(content),
        ) {
            Ok(item) => {
                tracing::info!(id = %item.id, env, name = %item.name, findings = item.report.findings.len(), "quarantined a download");
                daemon.audit(
                    &Actor::daemon(),
                    "quarantine-in",
                    Some(env),
                    in_detail(&item),
                );
            }
            Err(e) => tracing::warn!(env, "taking {} into quarantine: {e}", path.display()),
        }
    }
}

fn in_detail(item: &Item) -> String {
    let findings: Vec<&str> = item
        .report
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    format!(
        "id={} name={:?} size={} blake3={} hold_until={} findings={}",
        item.id,
        item.name,
        item.report.size,
        item.report.blake3,
        item.hold_until,
        serde_json::to_string(&findings).expect("strings serialise")
    )
}

/// Where an item goes by itself, if anywhere.
fn auto_target(daemon: &Engine, item: &Item) -> Option<Target> {
    if let Some(target) = &item.target {
        return Target::parse(target).ok();
    }
    daemon
        .db
        .env(&item.env)
        .ok()
        .flatten()
        .and_then(|row| row.plan.downloads)
        .and_then(|d| d.release_to)
}

/// Moves on every clean item whose hold has passed and that has a target
/// that is running; the rest waits.
async fn release_due(daemon: &Arc<Engine>) {
    let now = crate::db::now();
    let Ok(due) = daemon.quarantine.store.due(now) else {
        return;
    };
    for item in due {
        let Some(target) = auto_target(daemon, &item) else {
            continue;
        };
        match release_to(daemon, &item.id, &target, false).await {
            Ok(done) => {
                let detail = format!(
                    "id={} to={} auto (hold passed, clean)",
                    done.id,
                    done.released_to.as_deref().unwrap_or("?")
                );
                daemon.audit(
                    &Actor::daemon(),
                    "quarantine-release",
                    Some(&target.env),
                    detail,
                );
            }
            Err(e) => tracing::debug!(id = %item.id, "not released yet: {}", e.message),
        }
    }
}

fn quarantine_error(e: QuarantineError) -> EngineError {
    match e {
        QuarantineError::NotFound(_) => EngineError::not_found(e.to_string())
            .hint("`verse quarantine ls` lists quarantined files"),
        QuarantineError::Flagged { .. } => EngineError::conflict(e.to_string())
            .hint("read the report with `verse quarantine show ID` first"),
        QuarantineError::Done { .. } | QuarantineError::Exists(_) => {
            EngineError::conflict(e.to_string())
        }
        other => EngineError::internal(other),
    }
}

/// Releases one item into `target` (a running container or vm env).
async fn release_to(
    daemon: &Arc<Engine>,
    id: &str,
    target: &Target,
    force: bool,
) -> EngineResult<Item> {
    let _acts = daemon.quarantine.acts.lock().await;
    let item = daemon.quarantine.store.get(id).map_err(quarantine_error)?;
    if item.state != State::Held {
        return Err(quarantine_error(QuarantineError::Done {
            id: id.into(),
            state: item.state,
        }));
    }
    let files = EnvFiles::open(daemon, &target.env).await?;
    let dir = target.dir().to_string();
    let worker = Arc::clone(daemon);
    let id = id.to_string();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        worker
            .quarantine
            .store
            .release_with(&id, force, &mut |name, input| {
                files.write_new_blocking(&runtime, &dir, name, true, input)
            })
    })
    .await
    .map_err(EngineError::internal)?
    .map_err(quarantine_error)
}

pub async fn list(daemon: &Arc<Engine>) -> EngineResult<Vec<Item>> {
    daemon.quarantine.store.list().map_err(quarantine_error)
}

pub async fn show(daemon: &Arc<Engine>, id: String) -> EngineResult<Item> {
    daemon.quarantine.store.get(&id).map_err(quarantine_error)
}

fn parse_target(text: &str) -> EngineResult<Target> {
    Target::parse(text).map_err(|problem| {
        EngineError::invalid(format!("--to {text}: {problem}")).hint("write ENV or ENV:/dir")
    })
}

pub async fn release(
    daemon: &Arc<Engine>,
    actor: &Actor,
    id: String,
    request: ReleaseRequest,
) -> EngineResult<Item> {
    let target = parse_target(&request.to)?;
    let item = release_to(daemon, &id, &target, request.force).await?;
    let detail = format!(
        "id={} to={}{}",
        item.id,
        item.released_to.as_deref().unwrap_or("?"),
        if item.forced {
            " FORCED past findings"
        } else {
            ""
        }
    );
    daemon.audit(actor, "quarantine-release", Some(&target.env), detail);
    Ok(item)
}

pub async fn reject(daemon: &Arc<Engine>, actor: &Actor, id: String) -> EngineResult<Item> {
    let _acts = daemon.quarantine.acts.lock().await;
    let item = daemon
        .quarantine
        .store
        .reject(&id)
        .map_err(quarantine_error)?;
    daemon.audit(
        actor,
        "quarantine-reject",
        Some(&item.env),
        format!("id={} name={:?}", item.id, item.name),
    );
    Ok(item)
}

pub async fn copy(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: CopyRequest,
) -> EngineResult<CopyReport> {
    let (src_env, src_path) = request
        .from
        .split_once(':')
        .filter(|(_, p)| p.starts_with('/'))
        .ok_or_else(|| {
            EngineError::invalid(format!("`{}` is not SRC_ENV:/path/to/file", request.from))
                .hint("verse copy SRC_ENV:PATH DST_ENV[:PATH]")
        })?;
    let target = parse_target(&request.to)?;
    if target.env == src_env {
        return Err(EngineError::invalid(
            "a copy goes between two different envs",
        ));
    }
    for env in [src_env, target.env.as_str()] {
        if daemon.db.env(env)?.is_none() {
            return Err(EngineError::not_found(format!("no env named `{env}`"))
                .hint("`verse ls` lists the envs this daemon knows"));
        }
    }
    let policy = active_spec(daemon)?
        .map(|spec| spec.copy_policy(src_env, &target.env))
        .unwrap_or_default();
    let detail = format!(
        "from={} to={} policy={}",
        request.from,
        target,
        policy.as_str()
    );
    if policy == CopyAction::Deny {
        daemon.audit(actor, "copy-denied", Some(src_env), &detail);
        return Err(EngineError::forbidden(format!(
                "copying from `{src_env}` to `{}` is denied by the spec's [copy] policy",
                target.env
            ),
        )
        .hint(format!(
            "allow it in the spec: [copy] \"{src_env} -> {}\" = \"allow\" (or \"quarantine\"); nothing was copied",
            target.env
        )));
    }
    let source = EnvFiles::open(daemon, src_env).await?;
    let mut file = source
        .read_file(src_path, &staging_dir(&daemon.paths))
        .await?;
    let name = verse_guard::quarantine::safe_name(src_path);
    match policy {
        CopyAction::Quarantine => {
            // Stage a copy in the quarantine's own directory, then take it in
            // like a download, with the destination recorded on the item.
            let hold_ms = daemon
                .db
                .env(src_env)?
                .and_then(|r| r.plan.downloads)
                .map_or(verse_spec::guard::DEFAULT_HOLD_MS, |d| d.hold_ms);
            let worker = Arc::clone(daemon);
            let src_env = src_env.to_string();
            let target_text = target.to_string();
            let item = tokio::task::spawn_blocking(move || {
                let staged = staging_path(&worker.paths, "copy");
                stage(&staged, &mut file)?;
                let scanner = &worker.quarantine.scanner;
                let result = worker.quarantine.store.ingest_with(
                    &staged,
                    &src_env,
                    &name,
                    crate::db::now(),
                    (hold_ms / 1000) as i64,
                    Some(target_text),
                    &|content| scanner.scan(content),
                );
                let _ = std::fs::remove_file(&staged);
                result.map_err(std::io::Error::other)
            })
            .await
            .map_err(EngineError::internal)?
            .map_err(EngineError::internal)?;
            daemon.audit(
                actor,
                "copy",
                Some(&item.env),
                format!("{detail} {}", in_detail(&item)),
            );
            Ok(CopyReport {
                policy,
                copied_to: None,
                quarantined: Some(item),
            })
        }
        _ => {
            let dest = EnvFiles::open(daemon, &target.env).await?;
            let dir = target.dir().to_string();
            let runtime = tokio::runtime::Handle::current();
            let written = tokio::task::spawn_blocking(move || {
                dest.write_new_blocking(&runtime, &dir, &name, true, &mut file)
            })
            .await
            .map_err(EngineError::internal)?
            .map_err(quarantine_error)?;
            daemon.audit(
                actor,
                "copy",
                Some(src_env),
                format!("{detail} wrote={written}"),
            );
            Ok(CopyReport {
                policy,
                copied_to: Some(written),
                quarantined: None,
            })
        }
    }
}

/// Copies `input` into a new file at `path` (mode 0600).
fn stage(path: &Path, input: &mut std::fs::File) -> std::io::Result<()> {
    let mut out = new_staging_file(path)?;
    std::io::copy(input, &mut out)?;
    out.sync_all()
}

fn active_spec(daemon: &Engine) -> EngineResult<Option<verse_spec::Spec>> {
    let Some(active) = daemon.db.generations()?.into_iter().find(|g| g.active) else {
        return Ok(None);
    };
    let Some(json) = daemon.db.generation_spec(active.id)? else {
        return Ok(None);
    };
    serde_json::from_str(&json)
        .map(Some)
        .map_err(|e| EngineError::internal(format!("the active spec is unreadable: {e}")))
}
