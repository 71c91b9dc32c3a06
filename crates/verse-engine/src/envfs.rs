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
