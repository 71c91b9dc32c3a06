//! The gvisor backend's part of the shim: a process-tree env like a
//! container's ([`super::procs`]), with `runsc run` as the env's init and
//! `runsc exec` for execs; the OCI bundle and runsc's command lines are in
//! [`bundle`].

mod bundle;

pub use bundle::GvisorConfig;

use super::event_loop::{Core, Save};
use super::procs::{Detached, Runner, Tree, said_last};
use crate::config::ShimConfig;
use crate::console_log::ConsoleLog;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::Pid;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use verse_sandbox as sandbox;

/// How long `runsc run` may take to bring the sandbox up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Host memory the sandbox (sentry, gofer) may use on top of the env's limit.
const SANDBOX_OVERHEAD: u64 = 256 << 20;

/// How often a gvisor env's console.log is brought under its cap.
const LOG_CAP_TICK: Duration = Duration::from_millis(200);

/// The refusal of `verse hibernate` (the daemon's own words for it).
const NO_HIBERNATE: &str = "the gvisor backend has no hibernate yet";

pub(crate) struct Gvisor(pub GvisorConfig);

impl Runner for Gvisor {
    /// runsc gives an exec no pty of the sandbox's: the host's devpts does.
    const PTY_IN_ENV: bool = false;
    /// runsc's sandbox fails writes to a full host pipe (EIO in this
    /// gVisor), so it appends to console.log itself and the shim caps the
    /// file on a timer.
    const LOG_CAP_TICK: Option<Duration> = Some(LOG_CAP_TICK);
    /// Under gVisor the limit is the sandbox kernel's; the host cgroup also
    /// bounds the sentry and gofer around it.
    const MEMORY_OVERHEAD: u64 = SANDBOX_OVERHEAD;

    fn start_detached(&mut self, core: &Core<Pid>, log: &mut ConsoleLog) -> Detached {
        let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
        let out = log.file().try_clone().map_err(|e| e.to_string())?;
        let err = log.file().try_clone().map_err(|e| e.to_string())?;
        let pid = self
            .start(core, [stdin.into(), out.into(), err.into()])
            .map_err(|e| {
                let said = std::fs::read_to_string(core.config.log_path()).unwrap_or_default();
                format!("{e}: {}", said_last(&said, 5))
            })?;
        Ok((pid, None))
    }

    fn start(&mut self, core: &Core<Pid>, stdio: [OwnedFd; 3]) -> Result<Pid, String> {
        start(&core.config, &self.0, &core.cgroup, stdio)
    }

    fn exec(&self, core: &Core<Pid>, _init: Pid, exec: sandbox::ExecConfig) -> Result<Pid, String> {
        run_exec(&core.config, &self.0, exec)
    }

    fn can_hibernate(&self) -> Result<(), String> {
        Err(NO_HIBERNATE.into())
    }

    fn checkpoint(
        &mut self,
        _core: &Core<Pid>,
        _tree: Tree<'_>,
        _save: &Save,
    ) -> Result<(), String> {
        Err(NO_HIBERNATE.into())
    }

    fn cleanup(&self, config: &ShimConfig) {
        cleanup(config, &self.0)
    }
}

/// Gives the shim a private mount namespace: the rootfs overlay mounted
/// next is visible to runsc (the shim's child) and to nobody on the host,
/// and it disappears with the shim however the shim ends.
pub(crate) fn private_mounts() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unsharing the mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))
}

/// The sandbox's id: runsc names host-wide things after it (its control socket is an
/// abstract unix socket in the host's network namespace), so two Verse roots with an env of
/// the same name must not share one. The env's name, and a hash of its directory.
fn sandbox_id(config: &ShimConfig) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in config.env_dir.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("verse-{hash:08x}-{}", config.name)
}

fn state_dir(config: &ShimConfig) -> PathBuf {
    config.env_dir.join("runsc")
}

/// Mounts the rootfs, writes the bundle, starts `runsc run` inside the env's cgroup.
fn start(
    config: &ShimConfig,
    gvisor: &GvisorConfig,
    cgroup: &sandbox::Cgroup,
    stdio: [OwnedFd; 3],
) -> Result<Pid, String> {
    for dir in [config.upper(), config.work(), config.mountpoint()] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = std::os::unix::fs::chown(&dir, Some(config.id_base), Some(config.id_base));
    }
    let options = config.overlay_options();
    mount(
        Some("overlay"),
        &config.mountpoint(),
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting the rootfs overlay: {e}"))?;
    let netns = match &config.net {
        Some(net) if net.router => {
            return Err("router envs run on the container backend for now".into());
        }
        Some(net) => {
            let path = prepare_netns(config)?;
            verse_net::attach_netns(&path.display().to_string(), net)
                .map_err(|e| format!("wiring the env's network: {e}"))?;
            Some(path)
        }
        None => None,
    };
    let bundle = bundle::write_bundle(&config.env_dir.join("bundle"), config, netns.as_deref())
        .map_err(|e| e.to_string())?;
    let state = state_dir(config);
    // A sandbox left by a shim that was killed would block the id.
    let _ = gvisor.delete_command(&state, &sandbox_id(config)).output();
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).map_err(|e| format!("creating {}: {e}", state.display()))?;
    let procs: Vec<CString> = cgroup
        .dirs()
        .iter()
        .filter_map(|d| CString::new(d.join("cgroup.procs").display().to_string()).ok())
        .collect();
    let [stdin, stdout, stderr] = stdio;
    let mut command = gvisor.run_command(&state, &bundle, &sandbox_id(config));
    command.stdin(stdin).stdout(stdout).stderr(stderr);
    // SAFETY: between fork and exec only async-signal-safe calls: open(2),
    // write(2), close(2) on paths prepared before the fork. Joining the
    // cgroup before exec puts runsc and every sandbox process it forks
    // under the env's limits, with no window in which one escapes them.
    unsafe {
        command.pre_exec(move || {
            for path in &procs {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                libc::close(fd);
                if !ok {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", gvisor.runsc.display()))?;
    let pid = Pid::from_raw(child.id() as i32);
    wait_running(config, gvisor, pid)?;
    Ok(pid)
}

/// A new network namespace for the sandbox, bind-mounted on `ENV_DIR/netns` in the shim's
/// private mount namespace (so runsc, the shim's child, can name it in the bundle, and it
/// vanishes with the shim). The shim itself returns to the host's namespace. The namespace
/// belongs to the initial user namespace: nothing in the sandbox holds `CAP_NET_ADMIN` over
/// it, and gVisor's netstack only uses the interface Verse configured there.
fn prepare_netns(config: &ShimConfig) -> Result<PathBuf, String> {
    let path = config.env_dir.join("netns");
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    std::fs::write(&path, b"").map_err(|e| format!("creating {}: {e}", path.display()))?;
    let host = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| format!("opening the host's network namespace: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unsharing a network namespace: {e}"))?;
    let bound = mount(
        Some("/proc/self/ns/net"),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("binding the network namespace on {}: {e}", path.display()));
    // Back to the host's namespace whatever happened: the shim's own sockets and the `ip`
    // commands that wire the env run there.
    nix::sched::setns(&host, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("returning to the host's network namespace: {e}"))?;
    bound?;
    Ok(path)
}

/// `runsc run` returns nothing when the sandbox is up: ask `runsc state`
/// until it says running, so an exec right after start finds the sandbox.
fn wait_running(config: &ShimConfig, gvisor: &GvisorConfig, runsc: Pid) -> Result<(), String> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let out = gvisor
            .state_command(&state_dir(config), &sandbox_id(config))
            .output();
        if let Ok(out) = out
            && let Ok(state) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && state["status"] == "running"
        {
            return Ok(());
        }
        match waitpid(runsc, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            // The shim adds what runsc printed (it reads runsc's output pipe).
            _ => return Err("runsc ended before the sandbox ran".into()),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the gVisor sandbox did not start within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `runsc exec` with the given stdio.
fn run_exec(
    config: &ShimConfig,
    gvisor: &GvisorConfig,
    exec: sandbox::ExecConfig,
) -> Result<Pid, String> {
    let mut command: Command = gvisor.exec_command(
        &state_dir(config),
        &sandbox_id(config),
        &exec.argv,
        &exec.env,
        &exec.cwd,
        (exec.uid, exec.gid),
    );
    command
        .stdin(exec.stdin)
        .stdout(exec.stdout)
        .stderr(exec.stderr);
    if exec.tty {
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe; the
        // ioctl takes an integer argument.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", gvisor.runsc.display()))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Ends the sandbox and removes its state and the rootfs mount.
fn cleanup(config: &ShimConfig, gvisor: &GvisorConfig) {
    let state = state_dir(config);
    let _ = gvisor.delete_command(&state, &sandbox_id(config)).output();
    let _ = std::fs::remove_dir_all(&state);
    let _ = umount2(&config.mountpoint(), MntFlags::MNT_DETACH);
    let _ = umount2(&config.env_dir.join("netns"), MntFlags::MNT_DETACH);
}
