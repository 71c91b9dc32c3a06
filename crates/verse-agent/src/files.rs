//! The agent's side of the host's file operations ([`FileOp`]): list the
//! env's downloads, read a file out, remove what the host took, write a file
//! in. Each runs as the env's user (see [`FsIds`]); the host bounds and checks
//! everything that comes back.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use verse_agent::proto::{GuestFile, Stamp};

/// Most files one listing reports (its JSON stays well under the control
/// message limit); the rest are listed the next time.
const MAX_LISTED: usize = 1000;

/// Switches the agent's filesystem ids to the env's user while alive. The
/// agent is single-threaded, and setfsuid/setfsgid act on the calling thread
/// only; the supplementary groups are emptied once at boot ([`drop_groups`]).
pub struct FsIds {
    uid: u32,
    gid: u32,
}

impl FsIds {
    pub fn new(uid: u32, gid: u32) -> FsIds {
        // SAFETY: setfsgid/setfsuid take plain ids and return the previous ones.
        let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
        FsIds {
            uid: old_uid as u32,
            gid: old_gid as u32,
        }
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as in `new`: restores the previous filesystem ids.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
    }
}

/// Empties the agent's supplementary groups, so acting as the env's user
/// (fsuid/fsgid) grants no group the user does not have.
pub fn drop_groups() {
    let _ = nix::unistd::setgroups(&[]);
}

pub fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    }
}

/// Creates the downloads directory at boot, owned by the env's user; an
/// existing entry (from an earlier boot) is left as it is.
pub fn make_downloads(dir: &str, uid: u32, gid: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("giving {dir} to the env's user: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("creating {dir}: {e}")),
    }
}

/// The regular files directly in `dir` (a symlink at `dir` is refused).
pub fn list(dir: &str, uid: u32, gid: u32) -> Result<Vec<GuestFile>, String> {
    let mut files = Vec::new();
    {
        let _ids = FsIds::new(uid, gid);
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{dir}: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("{dir} is not a directory"));
        }
        for entry in std::fs::read_dir(dir)
            .map_err(|e| format!("{dir}: {e}"))?
            .flatten()
        {
            // A name that is not UTF-8 cannot be named back: left where it is.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.file_type().is_file() {
                files.push(GuestFile {
                    name,
                    stamp: stamp_of(&meta),
                    writing: false,
                });
            }
            if files.len() == MAX_LISTED {
                break;
            }
        }
    }
    if !files.is_empty() {
        let dev = std::fs::metadata(dir).map(|m| m.dev()).unwrap_or(0);
        let open = open_for_writing();
        for file in &mut files {
            file.writing = open.contains(&(dev, file.stamp.ino));
        }
    }
    Ok(files)
}

/// `(dev, ino)` of every file some guest process (not the agent, PID 1) holds
/// open for writing. Run as root: /proc/PID/fd of other users needs it.
fn open_for_writing() -> HashSet<(u64, u64)> {
    let pids = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != 1);
    verse_agent::writers::open_for_writing(pids)
}

/// A file being sent to the host.
pub struct Reader {
    pub file: File,
    pub start: Stamp,
    pub sent: u64,
}

/// Opens `path` for [`FileOp::Read`](verse_agent::proto::FileOp::Read).
pub fn open_read(
    path: &str,
    max_bytes: u64,
    nofollow: bool,
    uid: u32,
    gid: u32,
) -> Result<Reader, String> {
    let _ids = FsIds::new(uid, gid);
    let flags = libc::O_NONBLOCK | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let file = File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.size() > max_bytes {
        return Err(format!(
            "{path} is {} bytes, more than the {max_bytes} bytes allowed",
            meta.size()
        ));
    }
    Ok(Reader {
        file,
        start: stamp_of(&meta),
        sent: 0,
    })
}

/// Removes `path` if it is still the file `stamp` describes.
pub fn unlink(path: &str, stamp: &Stamp, uid: u32, gid: u32) -> Result<(), String> {
    let _ids = FsIds::new(uid, gid);
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() || stamp_of(&meta) != *stamp {
        return Err(format!("{path} changed since it was read; left in place"));
    }
    std::fs::remove_file(path).map_err(|e| format!("removing {path}: {e}"))
}

/// A file being written from the host's data.
pub struct Writer {
    pub file: File,
    dir: OwnedFd,
    name: CString,
    uid: u32,
    gid: u32,
    pub bytes: u64,
}

pub enum Created {
    New(Writer),
    Exists,
}

/// Creates `dir` (and parents) and the new file `name` in it, as the user.
pub fn create(dir: &str, name: &str, mode: u32, uid: u32, gid: u32) -> Result<Created, String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!("`{name}` is not a file name"));
    }
    let _ids = FsIds::new(uid, gid);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot open or create the directory {dir}: {e}"))?;
    let dir_file = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| format!("cannot open the directory {dir}: {e}"))?;
    let c = CString::new(name).map_err(|_| format!("`{name}` has a NUL byte"))?;
    // SAFETY: `c` is a valid C string, `dir_file` an open directory; the
    // result is a new descriptor owned below.
    let fd = unsafe {
        libc::openat(
            dir_file.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            (mode & 0o777) as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Ok(Created::Exists);
        }
        return Err(format!("creating {dir}/{name}: {e}"));
    }
    // SAFETY: openat returned a fresh descriptor nobody else owns.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(Created::New(Writer {
        file,
        dir: dir_file.into(),
        name: c,
        uid,
        gid,
        bytes: 0,
    }))
}

impl Writer {
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        self.file
            .write_all(data)
            .map_err(|e| format!("writing: {e}"))?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<u64, String> {
        if let Err(e) = self.file.sync_all() {
            let message = format!("syncing: {e}");
            self.abandon();
            return Err(message);
        }
        Ok(self.bytes)
    }

    /// Removes the half-written file: half a file is worse than none.
    pub fn abandon(self) {
        let _ids = FsIds::new(self.uid, self.gid);
        // SAFETY: valid C string and open directory descriptor; removes the
        // entry this writer created, following nothing.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
    }
}
