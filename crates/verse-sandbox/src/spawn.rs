//! `spawn`: creates a new environment and execs its PID 1.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

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
    // Carries the descriptors of the env's host paths (layers, upper, volumes) from a
    // helper that opens them as host root (see `drive`): the child sits in its own user
    // namespace from birth, where host directories such as a 0700 state root are not even
    // searchable. All CLOEXEC: none survives into the command.
    let (fds_tx, fds_rx) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| SandboxError::io("socketpair", e))?;

    // Every namespace is created together with the env's user namespace, so the user
    // namespace owns them. What the env's root could do with that ownership is cut off
    // before its command runs: the bounding set keeps only ALLOWED_CAPS (no SYS_ADMIN,
    // NET_ADMIN, SYS_PTRACE...) and seccomp refuses mount, umount, pivot_root, unshare,
    // setns, sethostname and the new mount API outright (see docs/security.md). Owning them
    // is what lets CRIU checkpoint and restore the env (`verse hibernate`). NEWPID makes the
    // command PID 1 and hides host processes; NEWNET leaves only a loopback; NEWIPC hides
    // host SysV IPC / POSIX message queues; NEWUSER maps the env's ids to an unprivileged
    // host range (written by us, the parent, before the child runs a single step).
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
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
        drop(fds_tx);
        child_main(&child_end, || {
            spawn_child(&config, &fds_rx, &cmd, &seccomp, &child_end)
        })
    };
    drop(child_end);
    drop(fds_rx);
    match drive(
        pid,
        &config,
        &parent_end,
        &fds_tx,
        born_in_cgroup,
        before_start,
    ) {
        Ok(()) => Ok(pid),
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        }
    }
}

fn validate(config: &ContainerConfig) -> Result<(), SandboxError> {
    if config.rootfs.lowers.is_empty() {
        return Err(SandboxError::Config("overlay: no lower directory".into()));
    }
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
    fds_tx: &OwnedFd,
    born_in_cgroup: bool,
    before_start: impl FnOnce(Pid) -> Result<(), String>,
) -> Result<(), SandboxError> {
    // Into the cgroup before the child does anything, so every byte and task it creates is
    // accounted and limited.
    if !born_in_cgroup {
        config.cgroup.add(pid)?;
    }
    // The child was born in its user namespace with no ids mapped (it runs as the overflow
    // uid with no capability anywhere until the map exists).
    write_id_maps(pid, &config.uid_map, &config.gid_map)?;
    // The namespace that translates the layers' owners into the env's range (made here,
    // as the helper below runs inside the env's mount namespace and must not fork).
    let layer_ns = config
        .rootfs
        .lower_idmap
        .as_ref()
        .map(crate::idmap::layer_userns)
        .transpose()?;
    send_host_fds(pid, config, layer_ns.as_ref(), fds_tx)?;
    drop(layer_ns);
    // The child waits for GO: whatever the hook sets up is in place before it moves.
    before_start(pid).map_err(SandboxError::Hook)?;
    chan.send(&[GO]).context(|| "release env child".into())?;
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

/// Forks a helper that opens the env's host paths inside the child's mount namespace and
/// sends them to the child; returns once it is done.
fn send_host_fds(
    pid: Pid,
    config: &ContainerConfig,
    layer_ns: Option<&OwnedFd>,
    fds_tx: &OwnedFd,
) -> Result<(), SandboxError> {
    let (report, helper_end) = Channel::pair()?;
    let Some(helper) = clone_fork(0).context(|| "fork mount helper".into())? else {
        drop(report);
        child_main(&helper_end, || {
            mounts::HostFds::open_and_send(pid, &config.rootfs, &config.volumes, layer_ns, fds_tx)?;
            // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the
            // parent.
            unsafe { libc::_exit(0) }
        })
    };
    drop(helper_end);
    let answer = report.recv().context(|| "read from mount helper".into());
    let _ = waitpid(helper, None);
    match answer? {
        Message::Eof => Ok(()),
        other => Err(unexpected(other)),
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
    fds_rx: &OwnedFd,
    cmd: &Command,
    seccomp: &SeccompPrograms,
    chan: &Channel,
) -> StepResult<Infallible> {
    chan.wait_for(GO, "cgroup and id maps")?;
    // Root of the env's user namespace from here on: the mapped host uid, with
    // capabilities only over objects owned by this user namespace (its own namespaces),
    // and files owned by unmapped host users out of reach.
    process::become_root()?;
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

    let host = mounts::HostFds::recv(fds_rx, &config.rootfs, &config.volumes)?;
    mounts::setup_rootfs(
        &host,
        &config.volumes,
        &config.gid_map,
        config.share_host_network,
        config.shm_size.unwrap_or(crate::DEFAULT_SHM),
    )?;
    sethostname(&config.hostname).step(|| format!("sethostname {}", config.hostname))?;
    if !config.share_host_network {
        mounts::loopback_up()?;
    }
    process::restrict_and_exec(&config.cwd, config.uid, config.gid, cmd, seccomp)
}
