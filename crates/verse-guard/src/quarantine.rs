//! The quarantine: files that left an env wait here, out of every env's
//! reach, with their scan report, until their hold passes and they are
//! released (to a directory of another env) or rejected.
//!
//! Layout: `DIR/ID/content` (the file, mode 0600) and `DIR/ID/item.json`
//! (what is known about it), written to a temp name and renamed so a crash
//! never leaves a half-written record. Nothing is deleted before it has
//! landed where it goes.

use crate::scan::{self, ArchiveLimits, ScanReport};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Held,
    Released,
    Rejected,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Held => "held",
            State::Released => "released",
            State::Rejected => "rejected",
        })
    }
}

/// One quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// The env it came from.
    pub env: String,
    /// Its file name in the env (a base name: directories are not kept).
    pub name: String,
    /// Unix seconds.
    pub received_at: i64,
    pub hold_until: i64,
    pub state: State,
    pub report: ScanReport,
    /// Where it went, once released.
    pub released_to: Option<String>,
    /// Released despite findings.
    pub forced: bool,
}

impl Item {
    pub fn flagged(&self) -> bool {
        !self.report.clean()
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
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| QuarantineError::Io {
            what: "no randomness for an id for",
            path: src.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let id = format!("q{}", crate::audit::to_hex(&random));
        let dir = self.item_dir(&id);
        std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
        let content = dir.join("content");
        // A rename keeps the inode and is atomic; across filesystems, copy
        // then remove, so the file exists in one place at least at every moment.
        if std::fs::rename(src, &content).is_err() {
            std::fs::copy(src, &content).map_err(io("copying", src))?;
            std::fs::remove_file(src).map_err(io("removing", src))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&content, std::fs::Permissions::from_mode(0o600));
        let report =
            scan::scan_file(&content, name, &self.limits).map_err(io("scanning", &content))?;
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
        let dest = dest_dir.join(&item.name);
        // O_NOFOLLOW | O_EXCL: a symlink planted at the destination by the
        // env cannot redirect the write onto the host.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&dest)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    QuarantineError::Exists(dest.display().to_string())
                } else {
                    io("creating", &dest)(e)
                }
            })?;
        let content = self.item_dir(id).join("content");
        let mut input = std::fs::File::open(&content).map_err(io("reading", &content))?;
        std::io::copy(&mut input, &mut out).map_err(io("writing", &dest))?;
        out.flush().map_err(io("writing", &dest))?;
        out.sync_all().map_err(io("syncing", &dest))?;
        item.state = State::Released;
        item.forced = item.flagged() && force;
        item.released_to = Some(dest.display().to_string());
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
