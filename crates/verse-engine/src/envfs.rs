//! Files inside a running container env, reached from the host without
//! trusting anything the env controls: every path is resolved with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) beneath
//! `/proc/PID/root` of the env's init process, so `..` and symlinks
//! (absolute or relative) planted by the env stay inside the env's own root
//! and can never name a host file. The env's mounts (volumes, /downloads)
//! are seen as the env sees them.

use crate::Engine;
use crate::backend::Files;
use crate::error::{EngineError, EngineResult};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use verse_runtime::ShimRequest;

/// An open view of one env's root.
pub struct EnvRoot {
    pub env: String,
    root: OwnedFd,
    /// The env user's ids on the host (what files written for it are owned by).
    pub owner: (u32, u32),
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: BorrowedFd<'_>, path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).map_err(std::io::Error::other)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `c` and `how` outlive the call; the size passed is that of
    // `how`; a non-negative result is a new descriptor owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl EnvRoot {
    /// The root of `env`, which must be a running container env.
    pub async fn open(daemon: &Engine, env: &str) -> EngineResult<EnvRoot> {
        let row = daemon.db.env(env)?.ok_or_else(|| {
            EngineError::not_found(format!("no env named `{env}`"))
                .hint("`verse ls` lists the envs this daemon knows")
        })?;
        if crate::backend::of(row.plan.backend).files() != Files::HostRoot {
            return Err(EngineError::invalid(format!(
                "env `{env}` is a {} env; files move only into and out of container envs for now",
                row.plan.backend.as_str()
            )));
        }
        let status = crate::envs::shim_client(daemon, env)
            .call(&ShimRequest::Status)
            .await
            .ok()
            .and_then(|r| r.status);
        let Some(pid) = status.and_then(|s| s.init_pid) else {
            return Err(EngineError::conflict(format!("env `{env}` is not running"))
                .hint(format!("start it with `verse up {env}`; nothing was moved")));
        };
        let proc_root = format!("/proc/{pid}/root");
        let root = std::fs::File::open(&proc_root)
            .map_err(|e| EngineError::internal(format!("opening {proc_root}: {e}")))?;
        // The ids the env runs as: the spec's user, or else the image's.
        let config = verse_runtime::ShimConfig::load(&daemon.paths.env_dir(env))
            .map_err(|e| EngineError::internal(format!("env `{env}`: its shim config: {e}")))?;
        Ok(EnvRoot {
            env: env.to_string(),
            root: root.into(),
            // The ids of the running env's own range (its shim config says which).
            owner: (config.id_base + config.uid, config.id_base + config.gid),
        })
    }

    fn root(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.root.as_fd()
    }

    /// Opens a regular file for reading; a symlink is followed only within
    /// the env's root. Refuses anything but a regular file.
    pub fn open_file(&self, path: &str) -> EngineResult<std::fs::File> {
        let fd = openat2(self.root(), path, libc::O_RDONLY | libc::O_NONBLOCK).map_err(|e| {
            EngineError::invalid(format!("env `{}`: cannot open {path}: {e}", self.env))
        })?;
        let file = std::fs::File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| EngineError::internal(format!("env `{}`: {path}: {e}", self.env)))?;
        if !meta.is_file() {
            return Err(EngineError::invalid(format!(
                "env `{}`: {path} is not a regular file; `verse copy` moves one file at a time",
                self.env
            )));
        }
        Ok(file)
    }

    /// Opens the directory `path`, creating it and missing parents (owned by
    /// the env's user, mode 0755).
    pub fn open_dir(&self, path: &str) -> EngineResult<OwnedFd> {
        let _as_owner = verse_guard::quarantine::AsOwner::new(self.owner);
        self.dir(path, 0).map_err(|e| {
            EngineError::invalid(format!(
                "env `{}`: cannot open or create the directory {path}: {e}",
                self.env
            ))
        })
    }

    fn dir(&self, path: &str, depth: u32) -> std::io::Result<OwnedFd> {
        match openat2(self.root(), path, libc::O_RDONLY | libc::O_DIRECTORY) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && depth < 64 => {
                let trimmed = path.trim_end_matches('/');
                let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
                if name.is_empty() || name == "." || name == ".." {
                    return Err(e);
                }
                let parent = self.dir(if parent.is_empty() { "/" } else { parent }, depth + 1)?;
                let c = CString::new(name).map_err(std::io::Error::other)?;
                // SAFETY: valid C string, open directory descriptor.
                let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755) };
                if rc != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                } else {
                    // SAFETY: as above; AT_SYMLINK_NOFOLLOW: the entry we just made.
                    unsafe {
                        libc::fchownat(
                            parent.as_raw_fd(),
                            c.as_ptr(),
                            self.owner.0,
                            self.owner.1,
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    };
                }
                openat2(self.root(), path, libc::O_RDONLY | libc::O_DIRECTORY)
            }
            other => other,
        }
    }
}

/// The files of a running env, whatever its backend: a container env's are
/// reached under its root ([`EnvRoot`]), a vm env's through its agent
/// ([`GuestFs`](crate::guestfs::GuestFs)). Quarantine and `verse copy` go
/// through this, so they have one path for both.
pub enum EnvFiles {
    Container(EnvRoot),
    Vm(crate::guestfs::GuestFs),
}

impl EnvFiles {
    /// The files of `env`, which must be a running container or vm env.
    pub async fn open(daemon: &Engine, env: &str) -> EngineResult<EnvFiles> {
        let row = daemon.db.env(env)?.ok_or_else(|| {
            EngineError::not_found(format!("no env named `{env}`"))
                .hint("`verse ls` lists the envs this daemon knows")
        })?;
        if crate::backend::of(row.plan.backend).files() != Files::Guest {
            return EnvRoot::open(daemon, env).await.map(EnvFiles::Container);
        }
        if !crate::envs::is_running(daemon, env).await {
            return Err(EngineError::conflict(format!("env `{env}` is not running"))
                .hint(format!("start it with `verse up {env}`; nothing was moved")));
        }
        Ok(EnvFiles::Vm(crate::guestfs::GuestFs::new(
            env,
            daemon.paths.shim_socket(env),
        )))
    }

    /// The regular file `path`, for reading (a vm env's is fetched first
    /// into an anonymous host file under `staging`).
    pub async fn read_file(
        &self,
        path: &str,
        staging: &std::path::Path,
    ) -> EngineResult<std::fs::File> {
        match self {
            EnvFiles::Container(root) => root.open_file(path),
            EnvFiles::Vm(guest) => {
                use std::io::Seek;
                let mut file = anonymous_file(staging)?;
                guest
                    .read_into(path, false, crate::guestfs::MAX_FILE_BYTES, &mut file)
                    .await?;
                file.rewind().map_err(EngineError::internal)?;
                Ok(file)
            }
        }
    }

    /// Writes `input` as a new file `name` in `dir` (made if missing), owned
    /// by the env's user, never through a symlink, never over a file; a
    /// taken name becomes `NAME (1)`... when `free_name`. Returns
    /// `ENV:/dir/name`. Blocks: call it off the async threads (it runs a vm
    /// env's write on the current runtime).
    pub fn write_new_blocking(
        &self,
        runtime: &tokio::runtime::Handle,
        dir: &str,
        name: &str,
        free_name: bool,
        input: &mut std::fs::File,
    ) -> Result<String, verse_guard::quarantine::QuarantineError> {
        match self {
            EnvFiles::Container(root) => {
                let fd = root.open_dir(dir).map_err(|e| {
                    verse_guard::quarantine::QuarantineError::Io {
                        what: "opening",
                        path: format!("{}:{dir}", root.env),
                        source: std::io::Error::other(e.message),
                    }
                })?;
                use std::os::fd::AsFd;
                verse_guard::quarantine::write_into(
                    fd.as_fd(),
                    name,
                    free_name,
                    &format!("{}:{dir}", root.env),
                    input,
                    Some(root.owner),
                )
            }
            EnvFiles::Vm(guest) => runtime.block_on(guest.write_new(dir, name, free_name, input)),
        }
    }
}

/// A new file with no name in `dir` (O_TMPFILE): gone when closed.
fn anonymous_file(dir: &std::path::Path) -> EngineResult<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| EngineError::internal(format!("creating {}: {e}", dir.display())))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .map_err(|e| EngineError::internal(format!("a staging file in {}: {e}", dir.display())))
}

/// Browsing an env's files read-only (the control filesystem's `files/`,
/// `GET /v1/envs/NAME/files`). Every path is resolved as [`openat2`] does it
/// for copies: inside the env's root, a symlink never followed out of it;
/// the path's own last component is not followed at all when it is
/// described (a symlink is shown as one, with its target as text).
impl EnvRoot {
    fn io_error(&self, path: &str, e: std::io::Error) -> EngineError {
        let text = format!("env `{}`: {path}: {e}", self.env);
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => EngineError::not_found(text),
            _ => EngineError::invalid(text),
        }
    }

    /// `path` itself (not followed) and, for a directory, its entries.
    pub fn describe(&self, path: &str) -> EngineResult<verse_api::EnvPath> {
        let at = openat2(self.root(), path, libc::O_PATH | libc::O_NOFOLLOW)
            .map_err(|e| self.io_error(path, e))?;
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let entry = entry_of(at.as_raw_fd(), c"", libc::AT_EMPTY_PATH, name)
            .map_err(|e| self.io_error(path, e))?;
        let mut entries = Vec::new();
        if entry.kind == "dir" {
            let dir = openat2(self.root(), path, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| self.io_error(path, e))?;
            // Our own descriptor's /proc link names exactly the directory opened.
            let names = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
                .map_err(|e| self.io_error(path, e))?;
            for item in names.flatten() {
                let Some(name) = item.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let Ok(c) = CString::new(name.as_str()) else {
                    continue;
                };
                // Gone since it was listed: left out.
                if let Ok(e) = entry_of(dir.as_raw_fd(), &c, libc::AT_SYMLINK_NOFOLLOW, &name) {
                    entries.push(e);
                }
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(verse_api::EnvPath {
            path: path.to_string(),
            entry,
            entries,
        })
    }

    /// Up to `length` bytes of the regular file `path` from `offset`. Files
    /// of the kernel's own filesystems (proc, sys) are refused: some of them
    /// are the host's (kcore, kallsyms) whatever the env's namespace.
    pub fn read_at(&self, path: &str, offset: u64, length: u64) -> EngineResult<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let at = openat2(self.root(), path, libc::O_PATH).map_err(|e| self.io_error(path, e))?;
        let file = std::fs::File::from(at);
        let meta = file.metadata().map_err(|e| self.io_error(path, e))?;
        if !meta.is_file() {
            return Err(EngineError::invalid(format!(
                "env `{}`: {path} is not a regular file",
                self.env
            )));
        }
        // SAFETY: a zeroed statfs is a valid out-buffer; the descriptor is open.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
            return Err(self.io_error(path, std::io::Error::last_os_error()));
        }
        if [libc::PROC_SUPER_MAGIC, libc::SYSFS_MAGIC as _].contains(&(fs.f_type as _)) {
            return Err(EngineError::invalid(format!(
                "env `{}`: {path} is a file of the kernel's proc or sys filesystem; read it inside the env",
                self.env
            )));
        }
        // Reopened for reading through our own descriptor: the same inode, a
        // regular file, so the open has no side effect (not a device, fifo).
        let file = std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| self.io_error(path, e))?;
        let mut out = Vec::new();
        let length = length.min(verse_api::MAX_FILE_CHUNK);
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = offset;
        while (out.len() as u64) < length {
            let want = (length - out.len() as u64).min(buf.len() as u64) as usize;
            let n = file
                .read_at(&mut buf[..want], at)
                .map_err(|e| self.io_error(path, e))?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Ok(out)
    }
}

/// The entry `name` of `dir` (with `flags`, e.g. AT_SYMLINK_NOFOLLOW).
fn entry_of(
    dir: i32,
    at: &std::ffi::CStr,
    flags: i32,
    name: &str,
) -> std::io::Result<verse_api::FileEntry> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and descriptor, `st` outlives the call.
    if unsafe { libc::fstatat(dir, at.as_ptr(), &mut st, flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        _ => "other",
    };
    let target = (kind == "symlink").then(|| {
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: as above; `buf` is as long as the length passed.
        let n = unsafe { libc::readlinkat(dir, at.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(n.max(0) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    });
    Ok(verse_api::FileEntry {
        name: name.to_string(),
        kind: kind.to_string(),
        size: st.st_size as u64,
        mode: st.st_mode & 0o7777,
        mtime: st.st_mtime,
        target,
    })
}

/// The most of a vm env's file read for one chunk: its agent sends whole
/// files only, so each chunk fetches the file again, up to this size.
pub const MAX_GUEST_BROWSE_BYTES: u64 = 64 << 20;

impl EnvFiles {
    /// What `path` is and, for a directory, what is in it. A vm env's agent
    /// lists regular files only: its subdirectories are not listed (they
    /// can still be named), and every mode shows as 0444.
    pub async fn describe(&self, path: &str) -> EngineResult<verse_api::EnvPath> {
        let guest = match self {
            EnvFiles::Container(root) => return root.describe(path),
            EnvFiles::Vm(guest) => guest,
        };
        let entry = |f: &verse_runtime::agent_proto::GuestFile| verse_api::FileEntry {
            name: f.name.clone(),
            kind: "file".into(),
            size: f.stamp.size,
            mode: 0o444,
            mtime: f.stamp.mtime_ns.div_euclid(1_000_000_000),
            target: None,
        };
        let trimmed = path.trim_end_matches('/');
        let name = trimmed.rsplit('/').next().unwrap_or("");
        if let Ok(files) = guest.list(path).await {
            return Ok(verse_api::EnvPath {
                path: path.to_string(),
                entry: verse_api::FileEntry {
                    name: name.to_string(),
                    kind: "dir".into(),
                    size: 0,
                    mode: 0o555,
                    mtime: 0,
                    target: None,
                },
                entries: files.iter().map(entry).collect(),
            });
        }
        let parent = match trimmed.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((p, _)) => p,
        };
        let files = guest.list(parent).await?;
        let file = files.iter().find(|f| f.name == name).ok_or_else(|| {
            EngineError::not_found(format!("env `{}`: no file {path}", guest.env))
        })?;
        Ok(verse_api::EnvPath {
            path: path.to_string(),
            entry: entry(file),
            entries: Vec::new(),
        })
    }

    /// Up to `length` bytes (at most [`verse_api::MAX_FILE_CHUNK`]) of the
    /// regular file `path` from `offset`.
    pub async fn read_at(
        &self,
        path: &str,
        offset: u64,
        length: u64,
        staging: &std::path::Path,
    ) -> EngineResult<Vec<u8>> {
        let guest = match self {
            EnvFiles::Container(root) => return root.read_at(path, offset, length),
            EnvFiles::Vm(guest) => guest,
        };
        use std::os::unix::fs::FileExt;
        let file = anonymous_file(staging)?;
        let mut out = file.try_clone().map_err(EngineError::internal)?;
        guest
            .read_into(path, false, MAX_GUEST_BROWSE_BYTES, &mut out)
            .await?;
        let length = length.min(verse_api::MAX_FILE_CHUNK) as usize;
        let mut buf = vec![0u8; length];
        let mut got = 0;
        while got < length {
            let n = file
                .read_at(&mut buf[got..], offset + got as u64)
                .map_err(EngineError::internal)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }
}
