//! `spawn`: creates a new environment and execs its PID 1.

use std::convert::Infallible;
use std::os::fd::AsRawFd;

use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, sethostname};

use crate::child::{
    Channel, Command, Message, StepContext, StepResult, child_main, clone_fork, clone_into_cgroup,
    setup_stdio,
};
use crate::error::{Context, SandboxError};
use crate::security::SeccompPrograms;
use crate::{ContainerConfig, IdMap, mounts, process};

const GO: u8 = b'G';
const USERNS_READY: u8 = b'U';
const MAPS_WRITTEN: u8 = b'M';

/// Starts the environment described by `config` and returns the host pid of its PID 1
/// once `argv` has been exec'd. The caller must reap it with `waitpid`.
///
/// **Must be called from a single-threaded process** (the per-env shim): it forks with a
/// raw clone(2), and the child allocates memory and later needs to be the only thread to
/// enter a user namespace. In a multi-threaded caller another thread may hold the
/// allocator's lock at fork time and the child would deadlock.
///
/// On failure nothing is left behind: the child is killed and reaped, and all its mounts
/// lived in its private mount namespace. The error names the step, path and errno, e.g.
/// `mount overlay on /x: Invalid argument (os error 22)`.
pub fn spawn(config: ContainerConfig) -> Result<Pid, SandboxError> {
    spawn_with(config, |_| Ok(()))
}

/// Like [`spawn`], and calls `before_start(pid)` in the caller once the env's init exists
/// (its namespaces are made and it sits in its cgroup) but before it runs a single step of
/// its own: before its rootfs, before its user namespace, long before the command is exec'd.
/// The caller uses it to configure the env from outside, e.g. to move a veth into its network
/// namespace (`/proc/PID/ns/net`), so the command never runs without its network policy.
/// If the hook fails, the init is killed and reaped and the hook's message is returned.
pub fn spawn_with(
    config: ContainerConfig,
    before_start: impl FnOnce(Pid) -> Result<(), String>,
) -> Result<Pid, SandboxError> {
    validate(&config)?;
    let cmd = Command::new(&config.argv, &config.env)?;
    let seccomp = SeccompPrograms::build()?;
    let (parent_end, child_end) = Channel::pair()?;

    // Namespaces owned by the initial user namespace: the env's root (which lives in a
    // user namespace created later) holds no capability over them, so it can never mount,
    // change the hostname, or reconfigure the network, even with CAP_SYS_ADMIN in its own
    // user namespace. NEWPID makes the command PID 1 and hides host processes; NEWNET leaves
    // only a loopback; NEWIPC hides host SysV IPC / POSIX message queues.
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if !config.share_host_network {
        flags |= libc::CLONE_NEWNET;
    }
    // On cgroup v2 the child is born in its cgroup; v1 has no such clone flag, so there
    // the parent moves it in before releasing it (see `drive`).
    let v2_dir = config.cgroup.v2_dir().map(|dir| {
        std::fs::File::open(dir).map_err(|e| SandboxError::Io {
            context: format!("opening cgroup {}", dir.display()),
            source: e,
        })
    });
    let (cloned, born_in_cgroup) = match &v2_dir {
        Some(Ok(dir)) => match clone_into_cgroup(flags, dir.as_raw_fd()) {
            // Kernels before 5.7: fall back to moving the child in.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG)) => {
                (clone_fork(flags), false)
            }
            other => (other, true),
        },
        _ => (clone_fork(flags), false),
    };
    let Some(pid) = cloned.context(|| "clone env init".into())? else {
        drop(parent_end);
        child_main(&child_end, || {
            spawn_child(&config, &cmd, &seccomp, &child_end)
        })
    };
    drop(child_end);
    match drive(pid, &config, &parent_end, born_in_cgroup, before_start) {
        Ok(()) => Ok(pid),
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        }
    }
}

fn validate(config: &ContainerConfig) -> Result<(), SandboxError> {
    for v in &config.volumes {
        mounts::check_volume_target(&v.target).map_err(SandboxError::Config)?;
    }
    if config.hostname.is_empty() || config.hostname.len() > 64 {
        return Err(SandboxError::Config(format!(
            "hostname {:?} must be 1..=64 bytes",
            config.hostname
        )));
    }
    if !config.cwd.is_absolute() {
        return Err(SandboxError::Config(format!(
            "cwd {} must be absolute",
            config.cwd.display()
        )));
    }
    Ok(())
}

/// Parent side of the handshake.
fn drive(
    pid: Pid,
    config: &ContainerConfig,
    chan: &Channel,
    born_in_cgroup: bool,
    before_start: impl FnOnce(Pid) -> Result<(), String>,
) -> Result<(), SandboxError> {
    // Into the cgroup before the child does anything, so every byte and task it creates is
    // accounted and limited.
    if !born_in_cgroup {
        config.cgroup.add(pid)?;
    }
    // The child waits for GO: whatever the hook sets up is in place before it moves.
    before_start(pid).map_err(SandboxError::Hook)?;
    chan.send(&[GO]).context(|| "release env child".into())?;
    match chan.recv().context(|| "read from env child".into())? {
        Message::Sync(USERNS_READY) => {}
        other => return Err(unexpected(other)),
    }
    write_id_maps(pid, &config.uid_map, &config.gid_map)?;
    chan.send(&[MAPS_WRITTEN])
        .context(|| "release env child".into())?;
    match chan.recv().context(|| "read from env child".into())? {
        Message::Eof => Ok(()),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn unexpected(msg: Message) -> SandboxError {
    match msg {
        Message::Error(e) => SandboxError::Child {
            step: e.step,
            source: std::io::Error::from_raw_os_error(e.errno),
        },
        Message::Eof => SandboxError::Config("env child exited during setup".into()),
        Message::Sync(b) => SandboxError::Config(format!("unexpected sync byte {b} from child")),
        Message::Pid(p) => SandboxError::Config(format!("unexpected pid {p} from child")),
    }
}

/// Writes uid_map and gid_map from the parent. Because the writer is privileged in the
/// parent user namespace, /proc/PID/setgroups can stay "allow" (the env's root may use
/// setgroups within its mapped gids) and any range may be mapped.
fn write_id_maps(pid: Pid, uid: &IdMap, gid: &IdMap) -> Result<(), SandboxError> {
    for (file, m) in [("uid_map", uid), ("gid_map", gid)] {
        let path = format!("/proc/{pid}/{file}");
        let line = format!("{} {} {}\n", m.container_id, m.host_id, m.size);
        std::fs::write(&path, &line).context(|| format!("write {:?} to {path}", line.trim()))?;
    }
    Ok(())
}

/// The env's init, from clone until execve. Each step says what it prevents.
fn spawn_child(
    config: &ContainerConfig,
    cmd: &Command,
    seccomp: &SeccompPrograms,
    chan: &Channel,
) -> StepResult<Infallible> {
    chan.wait_for(GO, "cgroup")?;
    // Own cgroup namespace: /proc/self/cgroup shows "/" instead of the host's hierarchy
    // layout, and cgroup paths inside the env cannot name host cgroups.
    unshare(CloneFlags::CLONE_NEWCGROUP).step(|| "unshare cgroup namespace".into())?;
    // New session without a controlling terminal: the env cannot TIOCSTI-inject keystrokes
    // into a terminal of the caller.
    nix::unistd::setsid().step(|| "setsid".into())?;
    setup_stdio([
        config.stdin.as_raw_fd(),
        config.stdout.as_raw_fd(),
        config.stderr.as_raw_fd(),
    ])?;

    mounts::setup_rootfs(
        &config.rootfs,
        &config.volumes,
        &config.uid_map,
        &config.gid_map,
    )?;
    sethostname(&config.hostname).step(|| format!("sethostname {}", config.hostname))?;
    if !config.share_host_network {
        mounts::loopback_up()?;
    }

    // The user namespace comes last: from here on "root" is the mapped host uid, with
    // capabilities only over objects owned by this user namespace (none of the namespaces
    // above), and files owned by unmapped host users are out of reach.
    unshare(CloneFlags::CLONE_NEWUSER).step(|| "unshare user namespace".into())?;
    chan.send(&[USERNS_READY]).step(|| "notify parent".into())?;
    chan.wait_for(MAPS_WRITTEN, "id maps")?;
    process::become_root()?;
    process::restrict_and_exec(&config.cwd, config.uid, config.gid, cmd, seccomp)
}
