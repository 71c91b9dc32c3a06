//! Garbage collection: drop everything not reachable from the layers to keep.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::store::Store;
use crate::tree::EntryKind;

/// What a gc removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Bytes of storage released (objects, trees, pool inodes whose last link went, records).
    pub freed_bytes: u64,
    pub objects_removed: u64,
    pub trees_removed: u64,
    pub pool_removed: u64,
    pub checkouts_removed: u64,
    pub layers_removed: u64,
}

#[derive(Default)]
struct Reachable {
    trees: HashSet<Hash>,
    objects: HashSet<Hash>,
}

impl Store {
    /// Removes objects, trees, layer records, pool entries and checkouts not reachable from
    /// `keep_roots`. A kept layer whose trees are missing or corrupt stops the gc (it cannot
    /// tell what that layer needs), so nothing is removed then.
    pub fn gc(&self, keep_roots: &[Hash]) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        let mut reach = Reachable::default();
        for root in keep_roots {
            if !self.has(root) && !self.tree_path(root).exists() {
                continue;
            }
            self.mark(root, &mut reach)?;
        }
        let keep: HashSet<Hash> = keep_roots.iter().copied().collect();
        let mut report = GcReport::default();

        // Checkouts and their sidecars: "<root>-<uid_base>" and "<root>-<uid_base>.state".
        let checkouts = self.sub("checkouts");
        for entry in list(&checkouts)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".state").unwrap_or(&name);
            let root = stem.split('-').next().and_then(|h| h.parse::<Hash>().ok());
            if root.is_some_and(|r| keep.contains(&r)) {
                continue;
            }
            let dir = checkouts.join(stem);
            let state = checkouts.join(format!("{stem}.state"));
            if name.ends_with(".state") {
                // A sidecar whose checkout is gone (else it goes with its checkout).
                if !dir.exists() && state.exists() {
                    report.freed_bytes += size_of(&state);
                    fs::remove_file(&state).ctx(|| format!("removing {}", state.display()))?;
                }
                continue;
            }
            report.freed_bytes += size_of(&state);
            self.remove_checkout_dir(&dir, &state)?;
            report.checkouts_removed += 1;
        }

        for root in self.layers()? {
            if !keep.contains(&root) {
                let path = self.layer_path(&root);
                report.freed_bytes += size_of(&path);
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
                report.layers_removed += 1;
            }
        }

        let (n, bytes) = sweep_fanout(&self.sub("trees"), |h| reach.trees.contains(h))?;
        report.trees_removed = n;
        report.freed_bytes += bytes;
        let (n, bytes) = sweep_fanout(&self.sub("objects"), |h| reach.objects.contains(h))?;
        report.objects_removed = n;
        report.freed_bytes += bytes;

        let pool = self.sub("pool");
        for entry in list(&pool)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hash = name.split('.').next().and_then(|h| h.parse::<Hash>().ok());
            if hash.is_some_and(|h| reach.objects.contains(&h)) {
                continue;
            }
            let path = entry.path();
            if let Ok(md) = fs::symlink_metadata(&path)
                && md.nlink() == 1
            {
                report.freed_bytes += md.len();
            }
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            report.pool_removed += 1;
        }
        if report.pool_removed > 0 {
            self.prune_pool_state()?;
        }

        // Leftovers of interrupted writes (no import or checkout runs while we hold the lock).
        for entry in list(&self.sub("tmp"))? {
            let path = entry.path();
            report.freed_bytes += size_of(&path);
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
        Ok(report)
    }

    fn mark(&self, root: &Hash, reach: &mut Reachable) -> Result<()> {
        if !reach.trees.insert(*root) {
            return Ok(());
        }
        for entry in self.read_tree(root)? {
            match entry.kind {
                EntryKind::Dir(h) => self.mark(&h, reach)?,
                EntryKind::File(h) => {
                    reach.objects.insert(h);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn list(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let rd = fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?;
    rd.collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| StoreError::Io {
            context: format!("listing {}", dir.display()),
            source: e,
        })
}

fn size_of(path: &Path) -> u64 {
    fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Removes every `<dir>/<hh>/<hash>` not kept. Returns (count, bytes).
fn sweep_fanout(dir: &Path, keep: impl Fn(&Hash) -> bool) -> Result<(u64, u64)> {
    let (mut count, mut bytes) = (0, 0);
    for bucket in list(dir)? {
        for entry in list(&bucket.path())? {
            let path = entry.path();
            let name = entry.file_name();
            let hash = name.to_str().and_then(|n| n.parse::<Hash>().ok());
            if hash.is_some_and(|h| keep(&h)) {
                continue;
            }
            bytes += size_of(&path);
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            count += 1;
        }
    }
    Ok((count, bytes))
}
