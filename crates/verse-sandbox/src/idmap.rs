//! Idmapped image layers: an env with a host id range of its own sees the shared layer
//! checkouts (owned by the range they were checked out for) as its own files, without a
//! copy of the image per env.
//!
//! A layer is presented through a detached clone of its directory's mount
//! (`open_tree(OPEN_TREE_CLONE)`) made idmapped (`mount_setattr(MOUNT_ATTR_IDMAP)`) with a
//! user namespace whose map sends the checkout's range to the env's. Only host root may
//! make it (it needs CAP_SYS_ADMIN over the layer's filesystem); the env gets the finished
//! mount as a descriptor and names it to overlayfs as a lower layer.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;

use crate::IdMap;
use crate::child::{Channel, child_main, clone_fork};
use crate::error::{Context, SandboxError};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// struct mount_attr for mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace whose uid and gid maps are the single range `map` (`container_id` is
/// the id on the layer's disk, `host_id` the id it is presented as), for
/// [`idmapped_tree`]. Nothing runs in it: a child is born in it only so that its maps can
/// be written, and is gone when this returns.
///
/// **Must be called from a single-threaded process** (it forks, like [`crate::spawn`]).
pub fn layer_userns(map: &IdMap) -> Result<OwnedFd, SandboxError> {
    let (parent_end, child_end) = Channel::pair()?;
    let Some(pid) = clone_fork(libc::CLONE_NEWUSER).context(|| "clone idmap namespace".into())?
    else {
        drop(parent_end);
        child_main(&child_end, || {
            // Holds the namespace until the parent has opened it (EOF on the channel).
            let _ = child_end.recv();
            // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the
            // parent.
            unsafe { libc::_exit(0) }
        })
    };
    drop(child_end);
    let opened = (|| {
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            let line = format!("{} {} {}\n", map.container_id, map.host_id, map.size);
            std::fs::write(&path, &line)
                .context(|| format!("write {:?} to {path}", line.trim()))?;
        }
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .context(|| format!("open {path}"))
    })();
    if opened.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    drop(parent_end);
    let _ = waitpid(pid, None);
    opened
}

/// A detached, read-only (nosuid, nodev) clone of the mount at `path` whose file owners
/// are translated through `userns` (see [`layer_userns`]). The caller needs CAP_SYS_ADMIN
/// over the filesystem of `path` (host root). The clone belongs to an anonymous mount
/// namespace owned by the user namespace of the caller's mount namespace: made by a helper
/// that joined an env's mount namespace, the env's root may mount an overlay on it.
pub fn idmapped_tree(path: &Path, userns: &OwnedFd) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_tree with a valid NUL-terminated path; returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a descriptor we now own.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on our detached mount with a properly sized mount_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Attaches a detached mount (from [`idmapped_tree`]) on `target`, in the caller's mount
/// namespace (which should be a private one: the mount propagates like any other).
pub fn attach_tree(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: move_mount from a descriptor we hold onto a valid NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
