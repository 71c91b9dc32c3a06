//! Full verification: re-hash every object and every checkout of a layer against its trees.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::checkout::{bytes_path, hash_file, host_id};
use crate::error::{Result, StoreError};
use crate::hash::Hash;
use crate::store::{Store, layer_path_display};
use crate::tree::{Entry, EntryKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Content, mode, owner or type differs from the layer.
    Changed,
    /// Present in the checkout but not in the layer.
    Added,
    /// In the layer but absent.
    Missing,
}

/// One difference between a layer and what is on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the layer, e.g. "/bin/sh".
    pub path: String,
    pub kind: ChangeKind,
    /// What differs, for a human.
    pub detail: String,
}

impl Change {
    pub(crate) fn error(e: &StoreError) -> Change {
        Change {
            path: "/".into(),
            kind: ChangeKind::Changed,
            detail: e.to_string(),
        }
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = rel.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

impl Store {
    /// Re-hashes the objects and trees of layer `root` and every checkout of it, and names
    /// every changed, added and missing path.
    pub fn verify(&self, root: &Hash) -> Result<Vec<Change>> {
        let _lock = self.lock_shared()?;
        let (root_meta, inner) = self.layer_root(root)?;
        let top = Entry {
            name: Vec::new(),
            meta: root_meta,
            size: 0,
            kind: EntryKind::Dir(inner),
        };
        let mut changes = Vec::new();
        let mut objects: HashMap<Hash, Option<String>> = HashMap::new();
        self.verify_objects(&[], &top, &mut objects, &mut changes);
        for (uid_base, dir) in self.checkouts_of(root)? {
            let mut hashes = HashMap::new();
            self.verify_checkout_entry(&dir, uid_base, &[], &top, &mut hashes, &mut changes);
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// The checkouts of `root`: (uid_base, directory).
    pub fn checkouts_of(&self, root: &Hash) -> Result<Vec<(u32, std::path::PathBuf)>> {
        let dir = self.sub("checkouts");
        let prefix = format!("{root}-");
        let mut out = Vec::new();
        let list = fs::read_dir(&dir).map_err(|e| StoreError::Io {
            context: format!("listing {}", dir.display()),
            source: e,
        })?;
        for entry in list.flatten() {
            let name = entry.file_name();
            let Some(base) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if let Ok(base) = base.parse::<u32>() {
                out.push((base, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn verify_objects(
        &self,
        rel: &[u8],
        entry: &Entry,
        objects: &mut HashMap<Hash, Option<String>>,
        changes: &mut Vec<Change>,
    ) {
        let path = layer_path_display(rel);
        match &entry.kind {
            EntryKind::File(h) => {
                let problem =
                    objects
                        .entry(*h)
                        .or_insert_with(|| match hash_file(&self.object_path(h)) {
                            Ok(actual) if actual == *h => None,
                            Ok(actual) => Some(format!(
                                "object {h} is corrupt: its content hashes to {actual}"
                            )),
                            Err(e) => Some(format!("object {h} cannot be read: {e}")),
                        });
                if let Some(detail) = problem {
                    changes.push(Change {
                        path,
                        kind: ChangeKind::Changed,
                        detail: detail.clone(),
                    });
                }
            }
            EntryKind::Dir(h) => match self.read_tree(h) {
                Ok(children) => {
                    for child in &children {
                        self.verify_objects(&join(rel, &child.name), child, objects, changes);
                    }
                }
                Err(e) => changes.push(Change {
                    path,
                    kind: ChangeKind::Changed,
                    detail: e.to_string(),
                }),
            },
            _ => {}
        }
    }

    fn verify_checkout_entry(
        &self,
        dir: &Path,
        uid_base: u32,
        rel: &[u8],
        entry: &Entry,
        hashes: &mut HashMap<(u64, u64), Hash>,
        changes: &mut Vec<Change>,
    ) {
        if entry.kind.is_device() {
            return;
        }
        let path = layer_path_display(rel);
        let on_disk = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(bytes_path(rel))
        };
        let md = match fs::symlink_metadata(&on_disk) {
            Ok(md) => md,
            Err(_) => {
                changes.push(Change {
                    path,
                    kind: ChangeKind::Missing,
                    detail: format!("missing from checkout {}", dir.display()),
                });
                return;
            }
        };
        let mut problems = Vec::new();
        let ft = md.file_type();
        let type_ok = match entry.kind {
            EntryKind::File(_) => ft.is_file(),
            EntryKind::Dir(_) => ft.is_dir(),
            EntryKind::Symlink(_) => ft.is_symlink(),
            EntryKind::Fifo => ft.is_fifo(),
            _ => true,
        };
        if !type_ok {
            problems.push(format!("is no longer a {}", entry.kind.name()));
        } else {
            let (uid, gid) = (
                host_id(uid_base, entry.meta.uid),
                host_id(uid_base, entry.meta.gid),
            );
            if !ft.is_symlink() && md.mode() & 0o7777 != entry.meta.mode {
                problems.push(format!(
                    "mode is {:o}, the layer has {:o}",
                    md.mode() & 0o7777,
                    entry.meta.mode
                ));
            }
            if md.uid() != uid || md.gid() != gid {
                problems.push(format!(
                    "owner is {}:{}, expected {uid}:{gid}",
                    md.uid(),
                    md.gid()
                ));
            }
            match &entry.kind {
                EntryKind::File(h) => {
                    let key = (md.dev(), md.ino());
                    let actual = match hashes.get(&key) {
                        Some(a) => Ok(*a),
                        None => hash_file(&on_disk).inspect(|a| {
                            hashes.insert(key, *a);
                        }),
                    };
                    match actual {
                        Ok(a) if a == *h => {}
                        Ok(a) => problems.push(format!("content hashes to {a}, the layer has {h}")),
                        Err(e) => problems.push(format!("cannot be read: {e}")),
                    }
                }
                EntryKind::Symlink(target) => match fs::read_link(&on_disk) {
                    Ok(t) if t.as_os_str().as_bytes() == target.as_slice() => {}
                    Ok(t) => problems.push(format!(
                        "points to {:?}, the layer has {:?}",
                        t,
                        String::from_utf8_lossy(target)
                    )),
                    Err(e) => problems.push(format!("cannot be read: {e}")),
                },
                EntryKind::Dir(h) => {
                    if let Ok(children) = self.read_tree(h) {
                        self.verify_checkout_dir(
                            dir, uid_base, rel, &on_disk, &children, hashes, changes,
                        );
                    }
                }
                _ => {}
            }
        }
        if !problems.is_empty() {
            changes.push(Change {
                path,
                kind: ChangeKind::Changed,
                detail: problems.join("; "),
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn verify_checkout_dir(
        &self,
        dir: &Path,
        uid_base: u32,
        rel: &[u8],
        on_disk: &Path,
        children: &[Entry],
        hashes: &mut HashMap<(u64, u64), Hash>,
        changes: &mut Vec<Change>,
    ) {
        let expected: BTreeSet<&[u8]> = children.iter().map(|c| c.name.as_slice()).collect();
        let mut added = Vec::new();
        if let Ok(list) = fs::read_dir(on_disk) {
            for e in list.flatten() {
                let name = e.file_name();
                if !expected.contains(name.as_bytes()) {
                    added.push(name.as_bytes().to_vec());
                }
            }
        }
        added.sort();
        for name in added {
            changes.push(Change {
                path: layer_path_display(&join(rel, &name)),
                kind: ChangeKind::Added,
                detail: format!("not in the layer (checkout {})", dir.display()),
            });
        }
        for child in children {
            self.verify_checkout_entry(
                dir,
                uid_base,
                &join(rel, &child.name),
                child,
                hashes,
                changes,
            );
        }
    }
}
