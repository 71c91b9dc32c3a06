//! A layer written back out as a tar, in the form OCI layers take (whiteouts as `.wh.NAME`,
//! opaque directories as `.wh..wh..opq`), such that importing it with whiteouts on gives the
//! same root hash: modes, owners, symlink targets, devices and contents are all kept; times
//! are zero, so the same layer always gives the same bytes.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use crate::error::{IoContext, Result};
use crate::hash::Hash;
use crate::store::Store;
use crate::tree::{Entry, EntryKind};

impl Store {
    /// Writes layer `root` as an uncompressed tar to `out`; returns (files, content bytes).
    pub fn export_layer_tar(&self, root: &Hash, out: &mut dyn Write) -> Result<(u64, u64)> {
        let _lock = self.lock_shared()?;
        let mut tar = tar::Builder::new(out);
        let (mut files, mut bytes) = (0u64, 0u64);
        self.walk_layer(root, &mut |rel, entry| {
            self.export_entry(&mut tar, rel, entry, &mut files, &mut bytes)
        })?;
        tar.finish().ctx(|| "finishing the layer tar".to_string())?;
        Ok((files, bytes))
    }

    fn export_entry(
        &self,
        tar: &mut tar::Builder<&mut dyn Write>,
        rel: &[u8],
        entry: &Entry,
        files: &mut u64,
        bytes: &mut u64,
    ) -> Result<()> {
        let mut path = if rel.is_empty() {
            b"./".to_vec()
        } else {
            rel.to_vec()
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.meta.mode);
        header.set_uid(entry.meta.uid.into());
        header.set_gid(entry.meta.gid.into());
        header.set_mtime(0);
        header.set_size(0);
        let ctx = || format!("writing /{} to the layer tar", String::from_utf8_lossy(rel));
        let as_path = |p: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p));
        match &entry.kind {
            EntryKind::Dir(_) => {
                header.set_entry_type(tar::EntryType::Directory);
                if !rel.is_empty() {
                    path.push(b'/');
                }
                tar.append_data(&mut header, as_path(&path), std::io::empty())
                    .ctx(ctx)?;
            }
            EntryKind::File(h) => {
                let object = self.object_path(h);
                let f = std::fs::File::open(&object)
                    .ctx(|| format!("opening object {}", object.display()))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.size);
                // Exactly the recorded size: a store object that changed length fails here.
                let mut body = std::io::Read::take(f, entry.size);
                tar.append_data(&mut header, as_path(&path), &mut body)
                    .ctx(ctx)?;
                *files += 1;
                *bytes += entry.size;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                tar.append_link(&mut header, as_path(&path), as_path(target))
                    .ctx(ctx)?;
            }
            EntryKind::CharDev { rdev: 0 } => {
                // A whiteout, or the opaque marker (its name is already `.wh..wh..opq`).
                let (dir, name) = match path.iter().rposition(|b| *b == b'/') {
                    Some(i) => (path[..=i].to_vec(), path[i + 1..].to_vec()),
                    None => (Vec::new(), path.clone()),
                };
                let mut wh = dir;
                if name != crate::OPAQUE_MARKER {
                    wh.extend_from_slice(b".wh.");
                }
                wh.extend_from_slice(&name);
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_size(0);
                tar.append_data(&mut h, as_path(&wh), std::io::empty())
                    .ctx(ctx)?;
            }
            EntryKind::CharDev { rdev } | EntryKind::BlockDev { rdev } => {
                header.set_entry_type(if matches!(entry.kind, EntryKind::CharDev { .. }) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                header.set_device_major(rustix::fs::major(*rdev)).ctx(ctx)?;
                header.set_device_minor(rustix::fs::minor(*rdev)).ctx(ctx)?;
                tar.append_data(&mut header, as_path(&path), std::io::empty())
                    .ctx(ctx)?;
            }
            EntryKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                tar.append_data(&mut header, as_path(&path), std::io::empty())
                    .ctx(ctx)?;
            }
        }
        Ok(())
    }
}
