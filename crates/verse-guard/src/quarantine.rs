//! The quarantine: files that left an env wait here, out of every env's
//! reach, with their scan report, until their hold passes and they are
//! released (to a directory of another env) or rejected.
//!
//! Layout: `DIR/ID/content` (the file, mode 0600) and `DIR/ID/item.json`
//! (what is known about it), written to a temp name and renamed so a crash
//! never leaves a half-written record. Nothing is deleted before it has
//! landed where it goes.

use crate::scan::{self, ArchiveLimits};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
pub use verse_api::quarantine::{Item, State};

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("no quarantined file {0}")]
    NotFound(String),
    #[error("{id} was flagged by the scan ({reason}); releasing it needs --force")]
    Flagged { id: String, reason: String },
    #[error("{id} is already {state}")]
    Done { id: String, state: State },
    #[error("`{0}` already exists at the destination; nothing was overwritten")]
    Exists(String),
    #[error("{0} is not a regular file; only regular files are taken into quarantine")]
    NotRegular(String),
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> QuarantineError + 'a {
    move |source| QuarantineError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

pub struct Quarantine {
    dir: PathBuf,
    limits: ArchiveLimits,
}

/// A base name safe to create in a destination directory.
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() || c == '\\' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "unnamed".into(),
        _ => cleaned,
    }
}

impl Quarantine {
    pub fn open(dir: &Path, limits: ArchiveLimits) -> Result<Quarantine, QuarantineError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        Ok(Quarantine {
            dir: dir.to_path_buf(),
            limits,
        })
    }

    fn item_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn save(&self, item: &Item) -> Result<(), QuarantineError> {
        let path = self.item_dir(&item.id).join("item.json");
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(item).expect("item serialises");
        std::fs::write(&tmp, text).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("writing", &path))
    }

    /// Takes `src` (a file in an env's downloads directory) into quarantine:
    /// moved out of the env's reach, scanned, held until `now + hold`.
    pub fn ingest(
        &self,
        src: &Path,
        env: &str,
        name: &str,
        now: i64,
        hold_secs: i64,
    ) -> Result<Item, QuarantineError> {
        self.ingest_with(src, env, name, now, hold_secs, None, &|_| Vec::new())
    }

    /// [`Quarantine::ingest`], with a destination for the item and a further
    /// scan (YARA) whose findings join the report.
    ///
    /// The entry is first renamed out of the env's directory (rename moves a
    /// symlink itself, never what it points to), then opened with
    /// `O_NOFOLLOW` and copied into a fresh inode only the host can reach: a
    /// hard link or a descriptor the env kept to the original cannot change
    /// what was scanned.
    #[allow(clippy::too_many_arguments)]
    pub fn ingest_with(
        &self,
        src: &Path,
        env: &str,
        name: &str,
        now: i64,
        hold_secs: i64,
        target: Option<String>,
        extra_scan: &dyn Fn(&Path) -> Vec<scan::Finding>,
    ) -> Result<Item, QuarantineError> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| QuarantineError::Io {
            what: "no randomness for an id for",
            path: src.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let id = format!("q{}", crate::audit::to_hex(&random));
        let dir = self.item_dir(&id);
        std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
        let taken = dir.join("taken");
        let content = dir.join("content");
        // Across filesystems there is no rename: read the source in place.
        let from = match std::fs::rename(src, &taken) {
            Ok(()) => taken.clone(),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => src.to_path_buf(),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(io("taking", src)(e));
            }
        };
        let copied = copy_regular(&from, &content);
        if let Err(e) = copied {
            // Not ours to keep (a symlink, a fifo...) or unreadable: put the
            // entry back where it was, so nothing is lost.
            if from == taken {
                let _ = std::fs::rename(&taken, src);
            }
            let _ = std::fs::remove_file(&content);
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        let _ = std::fs::remove_file(&from);
        let mut report =
            scan::scan_file(&content, name, &self.limits).map_err(io("scanning", &content))?;
        report.findings.extend(extra_scan(&content));
        let item = Item {
            id,
            env: env.into(),
            name: safe_name(name),
            received_at: now,
            hold_until: now + hold_secs,
            state: State::Held,
            report,
            released_to: None,
            forced: false,
            target,
        };
        self.save(&item)?;
        Ok(item)
    }

    pub fn list(&self) -> Result<Vec<Item>, QuarantineError> {
        let mut items = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("reading", &self.dir))? {
            let entry = entry.map_err(io("reading", &self.dir))?;
            let path = entry.path().join("item.json");
            if let Ok(text) = std::fs::read(&path)
                && let Ok(item) = serde_json::from_slice::<Item>(&text)
            {
                items.push(item);
            }
        }
        items.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(items)
    }

    pub fn get(&self, id: &str) -> Result<Item, QuarantineError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(QuarantineError::NotFound(id.into()));
        }
        let path = self.item_dir(id).join("item.json");
        let text = std::fs::read(&path).map_err(|_| QuarantineError::NotFound(id.into()))?;
        serde_json::from_slice(&text).map_err(|_| QuarantineError::NotFound(id.into()))
    }

    /// Clean, held items whose hold has passed: what may move on by itself.
    pub fn due(&self, now: i64) -> Result<Vec<Item>, QuarantineError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| i.state == State::Held && !i.flagged() && i.hold_until <= now)
            .collect())
    }

    /// Writes the file into `dest_dir` under its name, never following a
    /// symlink there and never overwriting, then marks it released.
    pub fn release(&self, id: &str, dest_dir: &Path, force: bool) -> Result<Item, QuarantineError> {
        let dir = std::fs::File::open(dest_dir).map_err(io("opening", dest_dir))?;
        self.release_at(
            id,
            dir.as_fd(),
            &dest_dir.display().to_string(),
            force,
            None,
            false,
        )
    }

    /// Writes the file into the directory `dir` (shown as `shown`), with
    /// `O_NOFOLLOW | O_EXCL` so a symlink planted there cannot redirect the
    /// write, owned by `owner` when given. With `free_name`, a name already
    /// taken becomes `NAME (1)`, `NAME (2)`...; without, it is an error.
    pub fn release_at(
        &self,
        id: &str,
        dir: BorrowedFd<'_>,
        shown: &str,
        force: bool,
        owner: Option<(u32, u32)>,
        free_name: bool,
    ) -> Result<Item, QuarantineError> {
        self.release_with(id, force, &mut |name, input| {
            write_into(dir, name, free_name, shown, input, owner)
        })
    }

    /// Releases the item through `write`, which is given the item's name and
    /// its content and returns where it put it (`ENV:/path`): the checks of
    /// [`Quarantine::release_at`] for any destination (a vm env's files are
    /// written by its agent).
    pub fn release_with(
        &self,
        id: &str,
        force: bool,
        write: &mut dyn FnMut(&str, &mut std::fs::File) -> Result<String, QuarantineError>,
    ) -> Result<Item, QuarantineError> {
        let mut item = self.get(id)?;
        if item.state != State::Held {
            return Err(QuarantineError::Done {
                id: id.into(),
                state: item.state,
            });
        }
        if item.flagged() && !force {
            let reason = item
                .report
                .findings
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(QuarantineError::Flagged {
                id: id.into(),
                reason,
            });
        }
        let content = self.item_dir(id).join("content");
        let mut input = std::fs::File::open(&content).map_err(io("reading", &content))?;
        let dest = write(&item.name, &mut input)?;
        item.state = State::Released;
        item.forced = item.flagged() && force;
        item.released_to = Some(dest);
        self.save(&item)?;
        let _ = std::fs::remove_file(&content);
        Ok(item)
    }

    /// Deletes the file and keeps the record of it.
    pub fn reject(&self, id: &str) -> Result<Item, QuarantineError> {
        let mut item = self.get(id)?;
        if item.state != State::Held {
            return Err(QuarantineError::Done {
                id: id.into(),
                state: item.state,
            });
        }
        item.state = State::Rejected;
        self.save(&item)?;
        let _ = std::fs::remove_file(self.item_dir(id).join("content"));
        Ok(item)
    }
}

/// Copies the regular file at `from` (never a symlink: `O_NOFOLLOW`; never
/// blocking on a fifo: `O_NONBLOCK`) into a new file `to`, mode 0600.
fn copy_regular(from: &Path, to: &Path) -> Result<(), QuarantineError> {
    let mut input = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(from)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                QuarantineError::NotRegular(from.display().to_string())
            } else {
                io("opening", from)(e)
            }
        })?;
    let meta = input.metadata().map_err(io("reading", from))?;
    if !meta.file_type().is_file() {
        return Err(QuarantineError::NotRegular(from.display().to_string()));
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io("creating", to))?;
    std::io::copy(&mut input, &mut out).map_err(io("copying", from))?;
    out.sync_all().map_err(io("syncing", to))
}

/// `NAME`, then `STEM (1).EXT`, `STEM (2).EXT`... for the n-th try.
pub fn nth_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

/// Creates files as the env's user for as long as it lives: switches this
/// thread's filesystem ids (setfsuid/setfsgid act on the calling thread only).
/// The env's root filesystem is mounted in the env's user namespace, which
/// refuses to create files for ids it does not map (host root gets EOVERFLOW);
/// and what Verse writes into an env belongs to the env's user anyway. Keep it
/// on one thread, with no `.await` while it is alive.
pub struct AsOwner {
    uid: u32,
    gid: u32,
}

impl AsOwner {
    pub fn new((uid, gid): (u32, u32)) -> AsOwner {
        // SAFETY: setfsgid/setfsuid take plain ids and return the previous ones;
        // they change only this thread's filesystem credentials.
        let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
        AsOwner {
            uid: old_uid as u32,
            gid: old_gid as u32,
        }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        // SAFETY: as in `new`: restores this thread's previous filesystem ids.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
    }
}

/// Creates a new file in `dir` with `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`.
fn create_in(
    dir: BorrowedFd<'_>,
    name: &str,
    free_name: bool,
    shown: &str,
) -> Result<(std::fs::File, String), QuarantineError> {
    for n in 0..1000 {
        let candidate = nth_name(name, n);
        let c = CString::new(candidate.clone()).map_err(|_| {
            QuarantineError::NotFound(format!("a name with a NUL byte: {candidate:?}"))
        })?;
        // SAFETY: `c` is a valid C string that outlives the call and `dir` is
        // an open descriptor; the returned descriptor is owned below.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by openat and nothing else owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            return Ok((std::fs::File::from(owned), candidate));
        }
        let e = std::io::Error::last_os_error();
        let dest = format!("{}/{candidate}", shown.trim_end_matches('/'));
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(QuarantineError::Io {
                what: "creating",
                path: dest,
                source: e,
            });
        }
        if !free_name {
            return Err(QuarantineError::Exists(dest));
        }
    }
    Err(QuarantineError::Exists(format!(
        "{shown}/{name} and 999 numbered names like it"
    )))
}

fn unlinkat(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    let c = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: valid C string and open directory descriptor; unlinkat with
    // flags 0 removes a non-directory entry and follows nothing.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Writes `input` into a new file named `name` (or `NAME (1)`... when taken)
/// in the directory `dir`, shown as `shown`, owned by `owner`: never through
/// a symlink, never over an existing file. Returns where it went.
pub fn write_new_in(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
    input: &mut std::fs::File,
    owner: (u32, u32),
) -> Result<String, QuarantineError> {
    write_into(dir, &safe_name(name), true, shown, input, Some(owner))
}

/// A new file in `dir` (see [`create_in`]) with all of `input`, synced; on
/// any failure it is removed again: half a file is worse than none.
pub fn write_into(
    dir: BorrowedFd<'_>,
    name: &str,
    free_name: bool,
    shown: &str,
    input: &mut std::fs::File,
    owner: Option<(u32, u32)>,
) -> Result<String, QuarantineError> {
    let (mut out, name) = {
        let _as_owner = owner.map(AsOwner::new);
        create_in(dir, name, free_name, shown)?
    };
    let dest = format!("{}/{name}", shown.trim_end_matches('/'));
    let written = (|| {
        std::io::copy(input, &mut out)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&out, Some(uid), Some(gid))?;
        }
        out.sync_all()
    })();
    if let Err(e) = written {
        let _ = unlinkat(dir, &name);
        return Err(QuarantineError::Io {
            what: "writing",
            path: dest,
            source: e,
        });
    }
    Ok(dest)
}
