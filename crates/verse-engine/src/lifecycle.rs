//! Starting, stopping, removing and observing envs.

use crate::Engine;
use crate::db::{EnvRow, now};
use crate::envs::{cgroup_path, env_id_base, is_running, shim_client};
use crate::error::{EngineError, EngineResult};
use std::path::PathBuf;
use std::sync::Arc;
use verse_api::{EnvInfo, EnvState, PathChange};
use verse_runtime::{
    ExitRecord, ID_BASE, Launch, Launched, ShimConfig, ShimRecord, ShimRequest, VolumeMount,
};
use verse_spec::caps::Feature;

/// The main process of an env whose spec names no command: a shell that
/// waits and ends cleanly on SIGTERM (PID 1 ignores signals it has no handler for).
pub const IDLE_COMMAND: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// Host id of the root that owns `row`'s writable layer and the host directories
/// mounted into it: the env's own base for a container env, ID_BASE for gvisor envs
/// (as before ranges were per env).
pub fn layer_owner_base(daemon: &Engine, row: &EnvRow) -> EngineResult<u32> {
    if crate::backend::of(row.plan.backend).own_id_range() {
        env_id_base(daemon, &row.name)
    } else {
        Ok(ID_BASE)
    }
}

/// What `verse ls` shows for one env.
pub async fn info(daemon: &Engine, row: &EnvRow) -> EnvInfo {
    let mut info = EnvInfo {
        name: row.name.clone(),
        state: EnvState::Created,
        backend: row.plan.backend.into(),
        image: row.plan.image.clone(),
        origin: row.origin,
        ephemeral: row.plan.ephemeral,
        cpu: row.plan.cpu,
        memory: row.plan.memory,
        pids: row.plan.pids,
        pid: None,
        started_at: None,
        uptime_secs: None,
        exit_code: None,
        error: None,
        cpu_usage_ns: None,
        memory_bytes: None,
        health: None,
        note: daemon.db.note(&row.name).ok().flatten(),
        desktop: row.plan.desktop.as_ref().map(|d| verse_api::DesktopInfo {
            wm: d.wm.clone(),
            size: format!("{}x{}", d.width, d.height),
            clipboard: row.plan.clipboard.as_str().to_string(),
        }),
        label: row.plan.label.as_ref().map(|l| verse_api::EnvLabel {
            color: l.color.clone(),
            name: l.name.clone(),
        }),
        network: Some(row.plan.network.mode().to_string()),
        network_detail: match &row.plan.network {
            verse_spec::Network::None | verse_spec::Network::Nat => None,
            verse_spec::Network::Allow(to) => Some(to.join(", ")),
            verse_spec::Network::Proxy(url) => Some(url.clone()),
            verse_spec::Network::Via(router) => Some(router.clone()),
        },
        downloads: row
            .plan
            .downloads
            .as_ref()
            .map(|d| verse_api::DownloadsInfo {
                hold_ms: d.hold_ms,
                release_to: d.release_to.as_ref().map(|t| t.to_string()),
            }),
        host_id_base: crate::backend::of(row.plan.backend)
            .own_id_range()
            .then(|| env_id_base(daemon, &row.name).ok())
            .flatten(),
        pids_current: None,
    };
    let env_dir = daemon.paths.env_dir(&row.name);
    match shim_client(daemon, &row.name)
        .call(&ShimRequest::Status)
        .await
    {
        Ok(response) => {
            let status = response.status.unwrap_or_default();
            if let Some(pid) = status.init_pid {
                info.state = EnvState::Running;
                info.pid = Some(pid);
                info.started_at = status.started_at;
                info.uptime_secs = status.started_at.map(|t| (now() - t).max(0) as u64);
                info.cpu_usage_ns = status.cpu_usage_ns;
                info.memory_bytes = status.memory_bytes;
                info.pids_current = status.pids;
                if status.paused {
                    info.state = EnvState::Paused;
                }
                if row.plan.health.is_some() {
                    info.health = Some(
                        crate::events::lock(&daemon.watch.health)
                            .get(&row.name)
                            .cloned()
                            .unwrap_or_else(|| "starting".into()),
                    );
                }
            }
        }
        Err(_) => {
            if ShimRecord::load(&env_dir).is_some() {
                // A record of a started env without a shim: the shim died
                // without cleaning up (killed, or the host lost power).
                info.state = EnvState::Failed;
                info.error = Some("the env's shim ended unexpectedly".into());
            } else if let Some(exit) = ExitRecord::load(&env_dir) {
                info.exit_code = exit.exit_code;
                info.error = exit.error.clone();
                let asked_to_stop = row.desired == crate::db::Desired::Stopped;
                info.state = if exit.error.is_some()
                    || (!asked_to_stop && exit.exit_code.is_some_and(|c| c != 0))
                {
                    EnvState::Failed
                } else {
                    EnvState::Stopped
                };
            }
        }
    }
    if info.state != EnvState::Running
        && info.state != EnvState::Paused
        && crate::envs::is_hibernated(daemon, &row.name)
    {
        info.state = EnvState::Hibernated;
    }
    info
}

/// Starts an env. In attach mode the env waits for a client to attach
/// (`verse run`) before its command starts.
pub async fn start(daemon: &Arc<Engine>, row: &EnvRow, attach: bool) -> EngineResult<Launched> {
    start_because(daemon, row, attach, "requested").await
}

/// [`start`], recording `cause` in the event log.
pub async fn start_because(
    daemon: &Arc<Engine>,
    row: &EnvRow,
    attach: bool,
    cause: &str,
) -> EngineResult<Launched> {
    match start_unlogged(daemon, row, attach).await {
        Ok(launched) => {
            daemon.emit(
                &row.name,
                verse_api::EventKind::Started,
                Some(EnvState::Running),
                cause,
            );
            Ok(launched)
        }
        Err(e) => {
            daemon.emit(
                &row.name,
                verse_api::EventKind::Failed,
                Some(EnvState::Failed),
                format!("{cause}: could not start: {}", e.message),
            );
            Err(e)
        }
    }
}

async fn start_unlogged(
    daemon: &Arc<Engine>,
    row: &EnvRow,
    attach: bool,
) -> EngineResult<Launched> {
    if crate::envs::is_hibernated(daemon, &row.name) {
        return Err(EngineError::conflict(format!(
            "env `{}` is hibernated; starting it afresh would lose its saved processes",
            row.name
        ))
        .hint(format!(
            "`verse resume {0}` brings it back; `verse hibernate --discard {0}` drops the saved state",
            row.name
        )));
    }
    if is_running(daemon, &row.name).await {
        return Err(EngineError::conflict(format!(
            "env `{}` is already running",
            row.name
        )));
    }
    let image = daemon.db.image(&row.plan.image)?.ok_or_else(|| {
        EngineError::not_found(format!(
            "env `{}` uses image `{}`, which is not in the store",
            row.name, row.plan.image
        ))
        .hint(format!(
            "import it with `verse image import {} PATH`",
            row.plan.image
        ))
    })?;
    let daemon = Arc::clone(daemon);
    let row = row.clone();
    tokio::task::spawn_blocking(move || start_blocking(&daemon, &row, &image, attach))
        .await
        .map_err(EngineError::internal)?
}

/// Verifies layer `root`'s existing checkout (quick check) or makes one; the path to mount.
fn checked_checkout(
    daemon: &Engine,
    row: &EnvRow,
    root: &verse_store::Hash,
) -> EngineResult<PathBuf> {
    let plan = &row.plan;
    let root = *root;
    // Tampering with any file of a layer is caught here, before an env runs
    // on it. An existing checkout is checked, never silently rebuilt: the
    // user learns what changed and repairs it by re-importing the image.
    let check_base = if crate::backend::of(plan.backend).own_id_range() {
        ID_BASE
    } else {
        0
    };
    let existing = daemon.store.checkout_path(&root, check_base);
    if existing.exists() {
        // Checked once: `checkout` would quick-check it again.
        match daemon.store.quick_check(&root, check_base) {
            Ok(()) => return Ok(existing),
            Err(changes) => return Err(verification_failed(plan, &root, &row.name, changes)),
        }
    }
    daemon.store.checkout(&root, check_base).map_err(|e| {
        EngineError::internal(format!("checking out image `{}`: {e}", plan.image)).hint(format!(
            "`verse image verify {}` names what is wrong",
            plan.image
        ))
    })
}

fn verification_failed(
    plan: &crate::db::EnvPlan,
    root: &verse_store::Hash,
    env: &str,
    changes: Vec<verse_store::Change>,
) -> EngineError {
    let first = changes
        .first()
        .map(|c| format!("{} ({})", c.path, c.detail))
        .unwrap_or_default();
    EngineError::conflict(format!(
            "image `{}` failed verification: layer {root}: {} path(s) changed on disk, first {first}; refusing to start `{env}` on it",
            plan.image,
            changes.len(),
        ))
        .hint(format!(
            "see every change with `verse image verify {}`; re-import the image to repair it",
            plan.image
        ))
        .changes(changes.into_iter().map(to_path_change).collect())
}

fn start_blocking(
    daemon: &Engine,
    row: &EnvRow,
    image: &verse_api::ImageInfo,
    attach: bool,
) -> EngineResult<Launched> {
    let plan = &row.plan;
    let (manifest_hash, manifest) = crate::images::manifest_of(daemon, image)?;
    if let Some(keys) = &plan.trusted_keys {
        crate::images::check_trust(daemon, &plan.image, &manifest_hash, keys)?;
    }
    let verifying = std::time::Instant::now();
    let roots = manifest.roots_top_first();
    let mut lowers = Vec::new();
    for root in &roots {
        lowers.push(checked_checkout(daemon, row, root)?);
    }
    tracing::info!(
        env = %row.name,
        layers = lowers.len(),
        micros = verifying.elapsed().as_micros() as u64,
        "layers verified (quick check, or checkout from verified objects) before start"
    );
    let run = &manifest.config;

    let env_dir = daemon.paths.env_dir(&row.name);
    std::fs::create_dir_all(&env_dir)
        .map_err(|e| EngineError::internal(format!("creating {}: {e}", env_dir.display())))?;
    crate::disk::prepare(&row.name, &env_dir, plan)?;
    let owner_base = layer_owner_base(daemon, row)?;
    // vm and gvisor envs see the image's own ids: their kernel, not a user
    // namespace, separates them from the host.
    let backend = crate::backend::of(plan.backend);
    let id_base = if backend.own_id_range() {
        owner_base
    } else {
        0
    };
    prepare_env_dir(&env_dir, owner_base)
        .map_err(|e| EngineError::internal(format!("preparing {}: {e}", env_dir.display())))?;
    let mut volumes = Vec::new();
    for (path, host, readonly) in &plan.volumes {
        let host = PathBuf::from(host);
        if !host.is_dir() {
            return Err(EngineError::invalid(format!(
                "env `{}`: volume source {} is not a directory on this host",
                row.name,
                host.display()
            ))
            .hint("create it first, or fix the path in the spec"));
        }
        volumes.push(VolumeMount {
            host,
            path: path.into(),
            readonly: *readonly,
        });
    }
    // The image's user and workdir apply where the spec is silent; a spec that
    // says `user = "root"` or `workdir = "/"` means it.
    let (uid, gid) = match (
        plan.uid,
        plan.gid,
        run.user.as_deref().and_then(numeric_user),
    ) {
        (0, 0, Some(ids)) if !plan.root_user_given => ids,
        _ => (plan.uid, plan.gid),
    };
    let workdir = match (&plan.workdir[..], &run.workdir) {
        ("/", Some(w)) if !plan.root_workdir_given => w.clone(),
        _ => plan.workdir.clone(),
    };
    // A vm env's downloads directory is in the guest (its agent makes it);
    // a container env's is a host directory mounted in.
    let guest_downloads = plan.downloads.is_some() && !backend.host_mounts();
    if plan.downloads.is_some() && !guest_downloads {
        let dir =
            crate::quarantine::prepare_downloads(&daemon.paths, &row.name, owner_base, uid, gid)
                .map_err(|e| {
                    EngineError::internal(format!("env `{}`: preparing /downloads: {e}", row.name))
                })?;
        volumes.push(VolumeMount {
            host: dir,
            path: crate::quarantine::DOWNLOADS_IN_ENV.into(),
            readonly: false,
        });
    }
    // The image's entrypoint and cmd and env apply where the plan is silent.
    let image_argv: Vec<String> = run.entrypoint.iter().chain(&run.cmd).cloned().collect();
    let mut argv = plan.command.clone().unwrap_or_else(|| {
        if image_argv.is_empty() {
            vec!["/bin/sh".into(), "-c".into(), IDLE_COMMAND.into()]
        } else {
            image_argv
        }
    });
    if let Some(desktop) = &plan.desktop {
        let dir =
            crate::desktop::prepare_socket_dir(&daemon.paths, &row.name, owner_base, uid, gid)
                .map_err(|e| {
                    EngineError::internal(format!("env `{}`: preparing its desktop: {e}", row.name))
                })?;
        volumes.push(VolumeMount {
            host: dir,
            path: crate::desktop::SOCKET_DIR_IN_ENV.into(),
            readonly: false,
        });
        argv = crate::desktop::session_command(desktop, &plan.autostart, plan.command.as_deref());
    }
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        (
            "HOME".to_string(),
            if uid == 0 { "/root".into() } else { "/".into() },
        ),
        ("HOSTNAME".to_string(), plan.hostname.clone()),
    ];
    let net = crate::net::prepare_env(daemon, row, &env_dir)?;
    if let Some((_, vars)) = &net {
        for (key, value) in vars {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        // A vm env's agent writes the guest's own /etc/resolv.conf from this file.
        if backend.host_mounts() {
            volumes.push(VolumeMount {
                host: crate::net::resolv_conf(&daemon.paths, &row.name),
                path: "/etc/resolv.conf".into(),
                readonly: true,
            });
        }
    }
    if plan.desktop.is_some() {
        env.push(("DISPLAY".to_string(), crate::desktop::DISPLAY.to_string()));
    }
    for (key, value) in run.env.iter().chain(&plan.env) {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    if !plan.volumes.is_empty() {
        backend
            .require(Feature::Volumes, &format!("env `{}`: volumes", row.name))
            .map_err(|e| EngineError::invalid(e.message))?;
    }
    let launch = backend.launch(&crate::backend::LaunchCtx {
        engine: daemon,
        row,
        roots: &roots,
        lowers: &lowers,
        env_dir: &env_dir,
        networked: net.is_some(),
    })?;
    if matches!(launch, Launch::Vm(_)) && attach {
        return Err(EngineError::invalid(
            "`verse run` starts container envs only; declare a vm env in a spec",
        ));
    }
    let config = ShimConfig {
        name: row.name.clone(),
        env_dir: env_dir.clone(),
        socket: daemon.paths.shim_socket(&row.name),
        lowers,
        volumes,
        hostname: plan.hostname.clone(),
        argv,
        env,
        cwd: workdir.into(),
        uid,
        gid,
        id_base,
        cgroup: cgroup_path(daemon, &row.name),
        cpu: plan.cpu,
        memory: plan.memory,
        pids: plan.pids,
        stop_timeout_ms: plan.stop_timeout_ms,
        log_max: plan.log_max.unwrap_or(verse_spec::DEFAULT_LOG_MAX),
        shm: plan.shm,
        ephemeral: plan.ephemeral,
        remove_on_exit: row.remove_on_exit,
        attach,
        net: net.map(|(n, _)| n),
        launch,
        restore: None,
        incoming: None,
        guest_downloads: guest_downloads.then(|| crate::quarantine::DOWNLOADS_IN_ENV.to_string()),
    };
    let networked = config.net.is_some();
    let launched = verse_runtime::launch(&daemon.exe, &config).map_err(|e| {
        EngineError::internal(format!("starting env `{}`: {e}", row.name)).hint(format!(
            "the shim's own log is {}",
            env_dir.join("shim.log").display()
        ))
    })?;
    if networked {
        // Its interface exists now: routes of envs that go via it (or it via others).
        crate::net::sync_blocking(daemon)?;
    }
    Ok(launched)
}

pub fn to_path_change(change: verse_store::Change) -> PathChange {
    let kind = match change.kind {
        verse_store::ChangeKind::Changed => "changed",
        verse_store::ChangeKind::Added => "added",
        verse_store::ChangeKind::Missing => "missing",
    };
    PathChange {
        path: change.path,
        kind: kind.into(),
        detail: change.detail,
    }
}

/// Creates the env's directories; the writable layer (in the env dir, or on its
/// disk) belongs to the env's root, host id `id_base`.
fn prepare_env_dir(env_dir: &std::path::Path, id_base: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(env_dir.join("rootfs"))?;
    let layer = verse_disk::layer_dir(env_dir);
    for sub in ["upper", "work"] {
        let dir = layer.join(sub);
        if !dir.exists() {
            std::fs::create_dir(&dir)?;
            std::os::unix::fs::chown(&dir, Some(id_base), Some(id_base))?;
        }
    }
    Ok(())
}

/// Stops an env: SIGTERM, then SIGKILL after `timeout_ms`. Returns once it
/// has stopped; a stopped env is left as it is.
pub async fn stop(daemon: &Engine, name: &str, timeout_ms: u64) -> EngineResult<()> {
    stop_because(daemon, name, timeout_ms, "requested").await
}

/// [`stop`], recording `cause` in the event log when the env was running.
pub async fn stop_because(
    daemon: &Engine,
    name: &str,
    timeout_ms: u64,
    cause: &str,
) -> EngineResult<()> {
    let was_running = is_running(daemon, name).await;
    // (A paused env's shim lets it run again itself to stop it.)
    stop_unlogged(daemon, name, timeout_ms).await?;
    if was_running {
        daemon.emit(
            name,
            verse_api::EventKind::Stopped,
            Some(EnvState::Stopped),
            cause,
        );
    }
    Ok(())
}

async fn stop_unlogged(daemon: &Engine, name: &str, timeout_ms: u64) -> EngineResult<()> {
    match shim_client(daemon, name)
        .call(&ShimRequest::Stop { timeout_ms })
        .await
    {
        Ok(_) | Err(verse_runtime::ShimClientError::Gone(_)) => {}
        Err(e) => return Err(EngineError::internal(format!("stopping env `{name}`: {e}"))),
    }
    // The shim answers after its cleanup; wait for its socket to go, so a
    // caller that looks next sees no trace of the running env.
    let socket = daemon.paths.shim_socket(name);
    for _ in 0..200 {
        if !socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Stops and deletes an env: its writable layer, records, cgroup and row.
pub async fn remove(daemon: &Engine, row: &EnvRow) -> EngineResult<()> {
    let guest_downloads = !crate::backend::of(row.plan.backend).host_mounts();
    if row.plan.downloads.is_some() && guest_downloads {
        // A vm env's /downloads is inside the guest: taken while it runs.
        crate::quarantine::take_all(daemon, &row.name).await;
    }
    stop(daemon, &row.name, row.plan.stop_timeout_ms).await?;
    // A shim that died uncleanly may have left its cgroup behind.
    if let Ok(Some(cgroup)) = verse_sandbox::Cgroup::open(&cgroup_path(daemon, &row.name)) {
        let _ = cgroup.kill_all();
        let _ = cgroup.remove();
    }
    let env_dir = daemon.paths.env_dir(&row.name);
    if row.plan.downloads.is_some() && !guest_downloads {
        // Nothing is lost: what is still in /downloads goes to quarantine
        // before the env's directory goes.
        crate::quarantine::take_all(daemon, &row.name).await;
    }
    // The env's disk, if it has one: unmounted first (its loop device detaches
    // with it), so deleting the directory deletes nothing but the image.
    verse_disk::unmount_under(&env_dir);
    if env_dir.exists() {
        std::fs::remove_dir_all(&env_dir)
            .map_err(|e| EngineError::internal(format!("removing {}: {e}", env_dir.display())))?;
    }
    let _ = std::fs::remove_file(daemon.paths.shim_socket(&row.name));
    crate::desktop::remove_socket_dir(&daemon.paths, &row.name);
    crate::net::remove_resolv_conf(&daemon.paths, &row.name);
    daemon.db.remove_env(&row.name)?;
    if row.plan.network != verse_spec::Network::None {
        // A shim that died uncleanly left the host end of its veth.
        if let Some((_, ifname, _)) = daemon.net.existing(&row.name)
            && std::path::Path::new("/sys/class/net")
                .join(&ifname)
                .exists()
        {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &ifname])
                .status();
        }
        let _ = daemon.net.release(&row.name);
        crate::net::sync(daemon).await?;
    }
    // Its snapshots go with it (their layers are reclaimed by the store's gc).
    let _ = daemon.db.remove_snapshots_of(&row.name);
    let _ = daemon.db.set_note(&row.name, None);
    let _ = daemon.db.clear_fallback(&row.name);
    daemon.emit(&row.name, verse_api::EventKind::Removed, None, "requested");
    daemon.forget(&row.name);
    Ok(())
}

/// At daemon start: find the shims of running envs again and tidy what a
/// crash left behind.
pub async fn reattach(daemon: &Engine) {
    // Directories finished envs left for deletion, if their shim died first.
    let trash = verse_runtime::config::trash_dir(&daemon.paths.state_dir());
    if let Ok(entries) = std::fs::read_dir(&trash) {
        for entry in entries.flatten() {
            // A one-off env's disk its shim did not get to unmount.
            verse_disk::unmount_under(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let rows = match daemon.db.envs() {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("reading envs: {e}");
            return;
        }
    };
    for row in rows {
        let running = is_running(daemon, &row.name).await;
        if running {
            tracing::info!(env = %row.name, "reattached to running env");
        } else if row.remove_on_exit {
            tracing::info!(env = %row.name, "removing finished one-off env");
            let _ = remove(daemon, &row).await;
        }
    }
    // Reconcile the host's rules with the specs: the table is rebuilt whole, so a restart
    // never duplicates anything.
    if let Err(e) = crate::net::sync(daemon).await {
        tracing::error!("reconciling network rules: {}", e.message);
    }
}

/// "1000:100" or "1000" as (uid, gid); names are resolved when the image is built.
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    match user.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
        None => user.parse().ok().map(|u| (u, u)),
    }
}
