//! Writable copies of a layer for use as an overlayfs upper directory: the
//! reverse of [`Store::import_upper`].
//!
//! A checkout ([`Store::checkout`]) is a hardlink farm of the store's own
//! inodes and must never be written to; an upper directory is written by the
//! env all the time, so here every file is a private copy.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, XattrFlags};

use crate::checkout::host_id;
use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::import::{OPAQUE_MARKER, OVERLAY_OPAQUE_USER_XATTR, OVERLAY_OPAQUE_XATTR};
use crate::store::{Store, layer_path_display};
use crate::tree::EntryKind;

impl Store {
    /// Writes layer `root` to `dest` (which must not exist) as an overlayfs upper
    /// directory with owners shifted to `uid_base`: private copies of every file,
    /// whiteouts as char devices 0/0, `.wh..wh..opq` markers turned back into the
    /// `trusted.overlay.opaque` and `user.overlay.opaque` xattrs. Other device nodes are refused: an env's
    /// writable layer cannot hold them. On error, `dest` is removed again.
    pub fn materialize_upper(&self, root: &Hash, dest: &Path, uid_base: u32) -> Result<()> {
        self.materialize_fresh(root, dest, Some(uid_base))
    }

    /// Writes layer `root` to `dest` (which must not exist) as a plain host directory
    /// with owners exactly as stored: the reverse of [`Store::import_dir_with`] with
    /// `id_base: 0` (a volume's host directory, for instance). Private copies of every
    /// file; `.wh..wh..opq` is an ordinary name here. On error, `dest` is removed again.
    pub fn materialize_host_dir(&self, root: &Hash, dest: &Path) -> Result<()> {
        self.materialize_fresh(root, dest, None)
    }

    /// Refuses an existing `dest`; removes a half-written one on error.
    fn materialize_fresh(&self, root: &Hash, dest: &Path, uid_base: Option<u32>) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Invalid {
                path: dest.display().to_string(),
                detail: "already exists".into(),
            });
        }
        let result = self.materialize_inner(root, dest, uid_base);
        if result.is_err() {
            let _ = fs::remove_dir_all(dest);
        }
        result
    }

    /// `uid_base`: `Some(base)` shifts owners into the range at `base`; `None` keeps them.
    fn materialize_inner(&self, root: &Hash, dest: &Path, uid_base: Option<u32>) -> Result<()> {
        let _lock = self.lock_shared()?;
        self.walk_layer(root, &mut |rel, entry| {
            let path: PathBuf = if rel.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(std::ffi::OsStr::from_bytes(rel))
            };
            let shown = || {
                format!(
                    "{} (layer path {})",
                    path.display(),
                    layer_path_display(rel)
                )
            };
            let (uid, gid) = match uid_base {
                Some(base) => (host_id(base, entry.meta.uid), host_id(base, entry.meta.gid)),
                None => (entry.meta.uid, entry.meta.gid),
            };
            match &entry.kind {
                EntryKind::Dir(_) => {
                    fs::create_dir(&path).ctx(|| format!("creating {}", shown()))?;
                }
                // The store marks an opaque directory with a whiteout named OPAQUE_MARKER.
                EntryKind::CharDev { rdev: 0 } | EntryKind::File(_)
                    if uid_base.is_some() && entry.name == OPAQUE_MARKER =>
                {
                    // Both names: overlayfs reads user.* when mounted in the env's user
                    // namespace (userxattr, the container backend) and trusted.* otherwise.
                    let parent = path.parent().unwrap_or(dest);
                    for name in [OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_USER_XATTR] {
                        rustix::fs::lsetxattr(parent, name, b"y", XattrFlags::empty())
                            .map_err(std::io::Error::from)
                            .ctx(|| format!("marking {} opaque", parent.display()))?;
                    }
                    return Ok(());
                }
                EntryKind::File(hash) => {
                    fs::copy(self.object_path(hash), &path)
                        .ctx(|| format!("writing {}", shown()))?;
                }
                EntryKind::Symlink(target) => {
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)
                        .ctx(|| format!("creating {}", shown()))?;
                }
                EntryKind::CharDev { rdev: 0 } => {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &path,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        0,
                    )
                    .map_err(std::io::Error::from)
                    .ctx(|| format!("creating whiteout {}", shown()))?;
                    return Ok(());
                }
                EntryKind::Fifo => {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &path,
                        FileType::Fifo,
                        Mode::from_raw_mode(0o600),
                        0,
                    )
                    .map_err(std::io::Error::from)
                    .ctx(|| format!("creating {}", shown()))?;
                }
                other => {
                    return Err(StoreError::Invalid {
                        path: layer_path_display(rel),
                        detail: format!("a writable layer cannot hold a {}", other.name()),
                    });
                }
            }
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .ctx(|| format!("setting the owner of {}", shown()))?;
            if !matches!(entry.kind, EntryKind::Symlink(_)) {
                // After chown, which clears setuid/setgid bits.
                fs::set_permissions(&path, fs::Permissions::from_mode(entry.meta.mode))
                    .ctx(|| format!("setting the mode of {}", shown()))?;
            }
            Ok(())
        })
    }
}
