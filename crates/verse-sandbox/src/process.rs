//! The tail shared by `spawn` and `exec`: privilege reduction and execve.

use std::convert::Infallible;
use std::path::Path;

use nix::unistd::{Gid, Uid, chdir, setgroups, setresgid, setresuid};

use crate::child::{Command, StepContext, StepResult, cloexec_all_fds};
use crate::security::{self, SeccompPrograms};

/// Becomes uid/gid 0 of the env's user namespace with no supplementary groups (which
/// otherwise would still be the host's, e.g. host root's group list).
pub(crate) fn become_root() -> StepResult<()> {
    setgroups(&[]).step(|| "setgroups []".into())?;
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .step(|| "setresgid 0".into())?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .step(|| "setresuid 0".into())?;
    Ok(())
}

/// Gives the command the signal state a fresh process expects. Ignored
/// signals stay ignored across execve and the mask is inherited: the Rust
/// runtime of our caller ignores SIGPIPE, which would make `yes | head` in the
/// env spin on EPIPE instead of ending.
fn reset_signals() -> StepResult<()> {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    // SAFETY: installing SIG_DFL runs no handler code; this process is single-
    // threaded and about to execve.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.step(|| "reset SIGPIPE".into())?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .step(|| "clear the signal mask".into())?;
    Ok(())
}

/// Caps → no_new_privs → Landlock → target user → cwd → seccomp (last) → execve.
pub(crate) fn restrict_and_exec(
    cwd: &Path,
    uid: u32,
    gid: u32,
    cmd: &Command,
    seccomp: &SeccompPrograms,
) -> StepResult<Infallible> {
    security::drop_capabilities()?;
    security::set_no_new_privs()?;
    security::apply_landlock()?;
    // Switching from the namespace's root to a non-zero uid clears all capabilities
    // (permitted, effective, ambient), so non-root commands run with none.
    if gid != 0 {
        setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
            .step(|| format!("setresgid {gid}"))?;
    }
    if uid != 0 {
        setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
            .step(|| format!("setresuid {uid}"))?;
    }
    chdir(cwd).step(|| format!("chdir {}", cwd.display()))?;
    reset_signals()?;
    cloexec_all_fds()?;
    seccomp.apply()?;
    Err(cmd.exec())
}
