//! Probes that need a throw-away child process, so nothing they do can touch this process
//! or the host: the child's namespaces (and any mount made in them) die with it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A failure inside the child: which step failed and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChildFailure {
    step: u8,
    errno: i32,
}

/// Run `body` in a forked child and report how it ended.
///
/// `body` runs after `fork()` in a possibly multi-threaded process, so it must only make
/// async-signal-safe calls (plain syscalls; no allocation, no locks).
fn in_child(
    body: impl FnOnce() -> Result<(), ChildFailure>,
) -> io::Result<Result<(), ChildFailure>> {
    // SAFETY: fork has no memory-safety preconditions; the child below only runs `body`
    // (which the caller restricts to async-signal-safe syscalls) and then `_exit`s without
    // running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // Encode the outcome in the exit status: 0 = ok, else step * 128 + errno (errno < 128).
        let code = match body() {
            Ok(()) => 0,
            Err(f) => i32::from(f.step.min(1)) * 128 + f.errno.clamp(1, 127),
        };
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live local; `pid` is our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if !libc::WIFEXITED(status) {
        return Err(io::Error::other(format!(
            "probe child died with signal {}",
            libc::WTERMSIG(status)
        )));
    }
    Ok(match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        code => Err(ChildFailure {
            step: (code / 128) as u8,
            errno: code % 128,
        }),
    })
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn namespace_flag(ns: &str) -> Option<libc::c_int> {
    Some(match ns {
        "user" => libc::CLONE_NEWUSER,
        "mount" => libc::CLONE_NEWNS,
        "pid" => libc::CLONE_NEWPID,
        "net" => libc::CLONE_NEWNET,
        "uts" => libc::CLONE_NEWUTS,
        "ipc" => libc::CLONE_NEWIPC,
        "cgroup" => libc::CLONE_NEWCGROUP,
        _ => return None,
    })
}

/// Unshare namespace `ns` (an `unshare(1)` name) in a child process.
pub(crate) fn try_unshare(ns: &str) -> io::Result<()> {
    let flag = namespace_flag(ns).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown namespace {ns}"),
        )
    })?;
    let outcome = in_child(|| {
        // SAFETY: unshare takes no pointers and only affects this (child) process.
        if unsafe { libc::unshare(flag) } == 0 {
            Ok(())
        } else {
            Err(ChildFailure {
                step: 0,
                errno: errno(),
            })
        }
    })?;
    outcome.map_err(|f| io::Error::from_raw_os_error(f.errno))
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Mount a tiny overlay under a fresh directory in `base`, inside a child's private mount
/// namespace, check a lower-layer file shows through, and remove the directory again.
pub(crate) fn try_overlay_mount(base: &Path) -> io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = base.join(format!(".verse-doctor-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let result = overlay_in(&dir);
    let cleanup = std::fs::remove_dir_all(&dir);
    result?;
    cleanup
}

fn overlay_in(dir: &Path) -> io::Result<()> {
    for sub in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(dir.join(sub))?;
    }
    std::fs::write(dir.join("lower/probe"), b"verse")?;
    let options = CString::new(format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.join("lower").display(),
        dir.join("upper").display(),
        dir.join("work").display()
    ))
    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let merged = cstring(&dir.join("merged"))?;
    let shown = cstring(&dir.join("merged/probe"))?;
    let overlay = c"overlay";
    let root = c"/";

    let outcome = in_child(|| {
        // SAFETY: for the whole block: every pointer is a NUL-terminated string owned by the parent's
        // stack frame, which the forked child shares a copy of; the calls only affect the
        // child's own, fresh mount namespace, made private first so nothing propagates back.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(ChildFailure {
                    step: 0,
                    errno: errno(),
                });
            }
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(ChildFailure {
                    step: 0,
                    errno: errno(),
                });
            }
            if libc::mount(
                overlay.as_ptr(),
                merged.as_ptr(),
                overlay.as_ptr(),
                0,
                options.as_ptr().cast(),
            ) != 0
            {
                return Err(ChildFailure {
                    step: 1,
                    errno: errno(),
                });
            }
            if libc::access(shown.as_ptr(), libc::F_OK) != 0 {
                return Err(ChildFailure {
                    step: 1,
                    errno: errno(),
                });
            }
        }
        Ok(())
    })?;
    outcome.map_err(|f| {
        let err = io::Error::from_raw_os_error(f.errno);
        let step = if f.step == 0 {
            "private mount namespace"
        } else {
            "overlay mount"
        };
        io::Error::new(err.kind(), format!("{step}: {err}"))
    })
}

/// Find an executable called `name` on PATH (plus the sbin directories).
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Run `program args` with no input and discarded output; succeed on exit status 0 within 2 s.
pub(crate) fn run_quiet(program: &Path, args: &[&str]) -> io::Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("exited with {status}")))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out after 2 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
