//! `exec`: starts another process inside a running environment.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::child::{
    Channel, Command, Message, StepContext, StepResult, child_main, clone_fork, setup_stdio,
    step_io,
};
use crate::error::{Context, SandboxError};
use crate::security::SeccompPrograms;
use crate::spawn::unexpected;
use crate::{Cgroup, ExecConfig, process};

/// Namespaces joined, in order. The user namespace is last: joining it drops our host
/// capabilities, which the other setns calls (and the mount namespace's chroot) need.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// Runs `config.argv` inside the environment whose PID 1 has host pid `init_pid`, in its
/// cgroup, with the same restrictions as PID 1 (capability allow-list, no_new_privs,
/// Landlock, seccomp), as `config.uid`/`config.gid`.
///
/// Returns the host pid of the command once it has been exec'd. That pid is a direct child
/// of the caller (the intermediate process that joins the namespaces forks it with
/// CLONE_PARENT and exits), so the caller reaps it with `waitpid` and gets the command's
/// real exit status, and signals sent to the pid reach the command itself. Inside the env
/// its parent pid reads 0 (its parent lives outside the pid namespace).
///
/// Reaping matters: when the env's PID 1 dies, the kernel kills the rest of its pid
/// namespace and PID 1 only finishes exiting once every one of them has been reaped, so
/// the caller should reap with `waitpid(-1, ..)` (any child) rather than waiting for PID 1
/// alone while exec'd processes are still its unreaped children.
///
/// Like [`crate::spawn`], **must be called from a single-threaded process**.
pub fn exec(init_pid: Pid, cgroup: &Cgroup, config: ExecConfig) -> Result<Pid, SandboxError> {
    if !config.cwd.is_absolute() {
        return Err(SandboxError::Config(format!(
            "cwd {} must be absolute",
            config.cwd.display()
        )));
    }
    let cmd = Command::new(&config.argv, &config.env)?;
    let seccomp = SeccompPrograms::build()?;
    let (parent_end, child_end) = Channel::pair()?;
    let Some(mid) = clone_fork(0).context(|| "fork exec helper".into())? else {
        drop(parent_end);
        child_main(&child_end, || {
            intermediate(init_pid, cgroup, &config, &cmd, &seccomp, &child_end)
        })
    };
    drop(child_end);

    let mut target = None;
    let mut result = Ok(());
    loop {
        match parent_end.recv() {
            Ok(Message::Pid(p)) => target = Some(p),
            Ok(Message::Eof) => break,
            Ok(other) => {
                result = Err(unexpected(other));
                break;
            }
            Err(e) => {
                result = Err(SandboxError::io("read from exec helper", e));
                break;
            }
        }
    }
    let _ = waitpid(mid, None);
    match (result, target) {
        (Ok(()), Some(pid)) => Ok(pid),
        (Ok(()), None) => Err(SandboxError::Config(
            "exec helper exited without starting the command".into(),
        )),
        (Err(e), pid) => {
            if let Some(pid) = pid {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
            Err(e)
        }
    }
}

/// The helper: cgroup, namespaces, then fork the command with CLONE_PARENT.
fn intermediate(
    init_pid: Pid,
    cgroup: &Cgroup,
    config: &ExecConfig,
    cmd: &Command,
    seccomp: &SeccompPrograms,
    chan: &Channel,
) -> StepResult<Infallible> {
    // Into the env's cgroup first (by host path, before the mount namespace hides it), so
    // the command is limited and accounted and `kill_all` finds it.
    cgroup.add(nix::unistd::getpid()).map_err(|e| {
        crate::child::StepError::new(e.to_string(), e.raw_os_error().unwrap_or(libc::EIO))
    })?;
    // Open every namespace before joining any: after joining the mount namespace, /proc
    // is the env's and init_pid means something else.
    let fds: Vec<(&str, CloneFlags, OwnedFd)> = NAMESPACES
        .iter()
        .map(|&(name, flag)| {
            let path = format!("/proc/{init_pid}/ns/{name}");
            open(
                path.as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .step(|| format!("open {path}"))
            .map(|fd| (name, flag, fd))
        })
        .collect::<StepResult<_>>()?;
    for (name, flag, fd) in &fds {
        setns(fd, *flag).step(|| format!("setns {name} of pid {init_pid}"))?;
    }
    drop(fds);

    // setns(pid) only applies to children: fork the command into the env's pid namespace,
    // as a child of our caller (CLONE_PARENT) so it can be reaped and signalled directly.
    match clone_fork(libc::CLONE_PARENT).step(|| "clone command".into())? {
        Some(pid) => {
            chan.send_pid(pid).step(|| "send pid".into())?;
            // SAFETY: _exit skips the parent's atexit handlers and stdio buffers.
            unsafe { libc::_exit(0) }
        }
        None => command(config, cmd, seccomp),
    }
}

/// The command: session/tty, user, restrictions, execve.
fn command(
    config: &ExecConfig,
    cmd: &Command,
    seccomp: &SeccompPrograms,
) -> StepResult<Infallible> {
    // New session: with tty, the pty slave becomes our controlling terminal; without, we
    // have none, so nothing can TIOCSTI into the caller's terminal.
    nix::unistd::setsid().step(|| "setsid".into())?;
    setup_stdio([
        config.stdin.as_raw_fd(),
        config.stdout.as_raw_fd(),
        config.stderr.as_raw_fd(),
    ])?;
    if config.tty {
        // SAFETY: TIOCSCTTY on fd 0 with arg 0 (do not steal a terminal from another session).
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        step_io(rc, || "TIOCSCTTY on stdin".into())?;
    }
    process::become_root()?;
    process::restrict_and_exec(&config.cwd, config.uid, config.gid, cmd, seccomp)
}
