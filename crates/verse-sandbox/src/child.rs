//! Plumbing shared by `spawn` and `exec`: the forked child's error type, the
//! parent/child channel, raw clone(2), stdio and execve.
//!
//! Code here runs in a child forked from a process that must be single-threaded (see the
//! crate docs): after fork only the calling thread exists, so heap allocation is safe only
//! because no other thread could have held the allocator's lock at fork time.

use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::Pid;

use crate::error::SandboxError;

/// A failed step in the child: what it was doing (with the path) and the errno.
#[derive(Debug)]
pub(crate) struct StepError {
    pub step: String,
    pub errno: i32,
}

impl StepError {
    pub(crate) fn new(step: impl Into<String>, errno: i32) -> Self {
        StepError {
            step: step.into(),
            errno,
        }
    }
}

pub(crate) type StepResult<T> = Result<T, StepError>;

/// Attaches a step description to a failed syscall.
pub(crate) trait StepContext<T> {
    fn step(self, f: impl FnOnce() -> String) -> StepResult<T>;
}

impl<T> StepContext<T> for nix::Result<T> {
    fn step(self, f: impl FnOnce() -> String) -> StepResult<T> {
        self.map_err(|e| StepError::new(f(), e as i32))
    }
}

impl<T> StepContext<T> for io::Result<T> {
    fn step(self, f: impl FnOnce() -> String) -> StepResult<T> {
        self.map_err(|e| StepError::new(f(), e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// Checks a raw libc return value (`-1` + errno on failure).
pub(crate) fn step_io(rc: libc::c_int, f: impl FnOnce() -> String) -> StepResult<()> {
    if rc < 0 {
        Err(StepError::new(f(), nix::errno::Errno::last_raw()))
    } else {
        Ok(())
    }
}

/// One end of the SOCK_SEQPACKET pair between the caller and its child. Both ends are
/// CLOEXEC: when the child's command is exec'd successfully the parent reads EOF.
pub(crate) struct Channel(OwnedFd);

const MSG_ERROR: u8 = b'E';
const MSG_PID: u8 = b'P';

/// What the parent can receive.
pub(crate) enum Message {
    /// The peer closed its end: the command was exec'd (or the child died).
    Eof,
    /// A synchronisation byte.
    Sync(u8),
    /// A pid (host view), sent by the intermediate process of `exec`.
    Pid(Pid),
    /// The child failed.
    Error(StepError),
}

impl Channel {
    pub(crate) fn pair() -> Result<(Channel, Channel), SandboxError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| SandboxError::io("socketpair", e))?;
        Ok((Channel(a), Channel(b)))
    }

    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        // MSG_NOSIGNAL: a dead peer must give EPIPE, not kill us with SIGPIPE.
        // SAFETY: msg is a valid buffer of msg.len() bytes.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(crate) fn send_error(&self, e: &StepError) {
        let mut msg = vec![MSG_ERROR];
        msg.extend_from_slice(&e.errno.to_le_bytes());
        msg.extend_from_slice(e.step.as_bytes());
        let _ = self.send(&msg);
    }

    pub(crate) fn send_pid(&self, pid: Pid) -> io::Result<()> {
        let mut msg = vec![MSG_PID];
        msg.extend_from_slice(&pid.as_raw().to_le_bytes());
        self.send(&msg)
    }

    pub(crate) fn recv(&self) -> io::Result<Message> {
        let mut buf = [0u8; 4096];
        let n = loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let msg = &buf[..n];
        let int = |b: &[u8]| {
            i32::from_le_bytes(
                b.get(1..5)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or_default(),
            )
        };
        Ok(match msg.first() {
            None => Message::Eof,
            Some(&MSG_ERROR) if n >= 5 => Message::Error(StepError::new(
                String::from_utf8_lossy(&msg[5..]).into_owned(),
                int(msg),
            )),
            Some(&MSG_PID) if n >= 5 => Message::Pid(Pid::from_raw(int(msg))),
            Some(&b) => Message::Sync(b),
        })
    }

    /// Child side: waits for one sync byte `want` from the parent.
    pub(crate) fn wait_for(&self, want: u8, what: &str) -> StepResult<()> {
        match self.recv() {
            Ok(Message::Sync(b)) if b == want => Ok(()),
            Ok(_) => Err(StepError::new(
                format!("waiting for parent ({what})"),
                libc::EPIPE,
            )),
            Err(e) => Err(StepError::new(
                format!("waiting for parent ({what})"),
                e.raw_os_error().unwrap_or(libc::EIO),
            )),
        }
    }
}

/// fork(2) via raw clone(2) with extra `flags` (namespaces, CLONE_PARENT): no CLONE_VM and
/// a NULL stack, so the child runs on a copy of the caller's stack like after fork.
/// Returns `None` in the child.
///
/// glibc's fork handlers do not run; that is fine in a single-threaded caller (and glibc
/// no longer caches the pid).
pub(crate) fn clone_fork(flags: libc::c_int) -> io::Result<Option<Pid>> {
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: without CLONE_VM and with a NULL stack, clone behaves like fork: the child
    // gets a private copy of the address space, including the current stack. The other
    // arguments (tid pointers, tls) are unused for these flags.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// The kernel's `struct clone_args` (clone3(2)), up to the `cgroup` field.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`clone_fork`], but the child is born inside the cgroup v2 directory `cgroup_dir`
/// (clone3 with CLONE_INTO_CGROUP). Moving a process into a cgroup afterwards takes the
/// cgroup threadgroup lock for writing, which waits for an RCU grace period (7-15 ms on
/// an idle host); being born there takes no such lock. Returns `Ok(None)` in the child and
/// `Err` with ENOSYS/E2BIG on kernels without clone3 or CLONE_INTO_CGROUP (before 5.7).
pub(crate) fn clone_into_cgroup(flags: libc::c_int, cgroup_dir: RawFd) -> io::Result<Option<Pid>> {
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 reads `args` (valid, correctly sized, alive for the call). Without
    // CLONE_VM and with a zero stack the child gets a private copy of the address space and
    // continues on a copy of the current stack, exactly like fork.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Runs `body` in the child; on failure reports the step to the parent and exits.
pub(crate) fn child_main(chan: &Channel, body: impl FnOnce() -> StepResult<Infallible>) -> ! {
    let Err(e) = body();
    chan.send_error(&e);
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the parent.
    unsafe { libc::_exit(127) }
}

/// Installs the three descriptors as 0, 1, 2. They are first duplicated above 2 so that a
/// source fd that is itself 0, 1 or 2 is not clobbered by an earlier dup2.
pub(crate) fn setup_stdio(fds: [RawFd; 3]) -> StepResult<()> {
    let mut high = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: fcntl on a descriptor we were given; returns a new fd or -1.
        let h = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
        step_io(h, || format!("dup stdio fd {fd}"))?;
        high[i] = h;
    }
    for (i, h) in high.iter().enumerate() {
        // SAFETY: dup2 onto 0..=2; the result is not CLOEXEC, so it survives execve.
        step_io(unsafe { libc::dup2(*h, i as RawFd) }, || {
            format!("dup2 onto fd {i}")
        })?;
        // SAFETY: closing the temporary copy made above, which we own.
        unsafe { libc::close(*h) };
    }
    Ok(())
}

/// Marks every descriptor above 2 close-on-exec, so nothing the caller had open (sockets to
/// the daemon, host directories, ...) leaks into the env.
pub(crate) fn cloexec_all_fds() -> StepResult<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    step_io(rc as libc::c_int, || "close_range(3.., CLOEXEC)".into())
}

/// A command ready for execve, validated and converted before forking.
pub(crate) struct Command {
    argv: Vec<CString>,
    envp: Vec<CString>,
    path: String,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(what: &str, s: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| SandboxError::Config(format!("{what} contains a NUL byte: {s:?}")))
}

impl Command {
    pub(crate) fn new(argv: &[String], env: &[(String, String)]) -> Result<Self, SandboxError> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(SandboxError::Config("argv must not be empty".into()));
        }
        let argv = argv
            .iter()
            .map(|a| cstring("argument", a))
            .collect::<Result<_, _>>()?;
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            if k.is_empty() || k.contains('=') {
                return Err(SandboxError::Config(format!(
                    "bad environment variable name {k:?}"
                )));
            }
            envp.push(cstring("environment", &format!("{k}={v}"))?);
        }
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH.to_owned(), |(_, v)| v.clone());
        Ok(Command { argv, envp, path })
    }

    /// execve, resolving argv[0] through PATH (from the command's own environment) when it
    /// has no slash, like execvpe. Returns only on failure.
    pub(crate) fn exec(&self) -> StepError {
        let name = self.argv[0].to_str().unwrap_or_default();
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let candidates: Vec<String> = if name.contains('/') {
            vec![name.to_owned()]
        } else {
            self.path
                .split(':')
                .map(|d| if d.is_empty() { "." } else { d })
                .map(|d| format!("{d}/{name}"))
                .collect()
        };
        let mut errno = libc::ENOENT;
        for cand in candidates {
            let Ok(c) = CString::new(cand) else { continue };
            // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings that
            // outlive the call.
            unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let e = nix::errno::Errno::last_raw();
            // Keep the most telling error (EACCES over ENOENT), like execvp.
            if e != libc::ENOENT && e != libc::ENOTDIR {
                errno = e;
            }
        }
        StepError::new(format!("execve {name}"), errno)
    }
}
