//! The store on disk: layout, locking, atomic writes, objects, trees and layer records.
//!
//! ```text
//! <dir>/lock                     flock: shared for import/verify/quick_check, exclusive for
//!                                checkout, remove_checkout and gc
//! <dir>/objects/<hh>/<hash>      file contents, named by BLAKE3 of the content
//! <dir>/trees/<hh>/<hash>        tree objects (see tree.rs), named by BLAKE3 of the encoding
//! <dir>/layers/<root>            layer record ("size", "files"); written last, so a layer
//!                                exists only once all its objects and trees are durable
//! <dir>/pool/<hash>.<mode>.<uid>.<gid>   one inode per (content, metadata), hardlinked into checkouts
//! <dir>/checkouts/<root>-<uid_base>/     materialised layer, owners shifted by uid_base
//! <dir>/checkouts/<root>-<uid_base>.state  sidecar: inode number and ctime of each entry
//! <dir>/tmp/                     everything is written here first, then renamed into place
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, RenameFlags};

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::tree::{self, Entry, EntryKind, Meta};

/// Layer facts recorded at import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Sum of file sizes.
    pub size: u64,
    /// Number of regular file entries.
    pub files: u64,
}

/// A content-addressed store rooted at one directory. Cheap to clone; safe to use from
/// several processes at once.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Holds a `flock` on `<dir>/lock` until dropped.
pub(crate) struct Lock(#[allow(dead_code)] File);

const SUBDIRS: [&str; 6] = ["objects", "trees", "layers", "pool", "checkouts", "tmp"];

impl Store {
    /// Opens (creating if needed) the store at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).ctx(|| format!("creating store directory {}", dir.display()))?;
        let dir = fs::canonicalize(dir).ctx(|| format!("resolving {}", dir.display()))?;
        for sub in SUBDIRS {
            let p = dir.join(sub);
            fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        let lock = dir.join("lock");
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock)
            .ctx(|| format!("creating {}", lock.display()))?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fanout(&self, sub: &str, h: &Hash) -> PathBuf {
        let hex = h.to_hex();
        self.dir.join(sub).join(&hex[..2]).join(hex)
    }

    /// Where the content object `h` lives.
    pub fn object_path(&self, h: &Hash) -> PathBuf {
        self.fanout("objects", h)
    }

    pub(crate) fn tree_path(&self, h: &Hash) -> PathBuf {
        self.fanout("trees", h)
    }

    pub(crate) fn layer_path(&self, root: &Hash) -> PathBuf {
        self.dir.join("layers").join(root.to_hex())
    }

    pub(crate) fn sub(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn lock(&self, op: FlockOperation) -> Result<Lock> {
        let path = self.dir.join("lock");
        let f = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        rustix::fs::flock(&f, op).ctx(|| format!("locking {}", path.display()))?;
        Ok(Lock(f))
    }

    pub(crate) fn lock_shared(&self) -> Result<Lock> {
        self.lock(FlockOperation::LockShared)
    }

    pub(crate) fn lock_exclusive(&self) -> Result<Lock> {
        self.lock(FlockOperation::LockExclusive)
    }

    /// A fresh, unique path under tmp/.
    pub(crate) fn tmp_path(&self, prefix: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.dir
            .join("tmp")
            .join(format!("{prefix}.{}.{n}.{nanos}", std::process::id()))
    }

    /// Renames `tmp` to `dest` unless `dest` exists (then `tmp` is removed). Returns whether
    /// `dest` is new. Content-addressed names make "exists" mean "same content".
    pub(crate) fn publish(&self, tmp: &Path, dest: &Path) -> Result<bool> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        }
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp,
            rustix::fs::CWD,
            dest,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => {
                let _ = fs::remove_file(tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_file(tmp);
                Err(e).ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))
            }
        }
    }

    /// Writes `bytes` atomically to `dest` (replacing it), fsyncing the file.
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("w");
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.ctx(|| format!("writing {}", dest.display()))
    }

    /// Streams `reader` into a new object. Returns (hash, bytes read, newly stored).
    pub(crate) fn write_object(&self, reader: &mut dyn Read) -> io::Result<(Hash, u64, bool)> {
        let tmp = self.tmp_path("obj");
        let res = (|| {
            let mut out = File::create(&tmp)?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                total += n as u64;
            }
            out.sync_all()?;
            Ok((Hash::from(hasher.finalize()), total))
        })();
        let (hash, size) = match res {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let dest = self.object_path(&hash);
        let new = self.publish(&tmp, &dest).map_err(io::Error::other)?;
        Ok((hash, size, new))
    }

    /// Stores a regular file: hashes it first, copies only if the object is new.
    pub(crate) fn write_object_from_file(&self, file: &mut File) -> io::Result<(Hash, u64, bool)> {
        let mut hasher = blake3::Hasher::new();
        let size = io::copy(file, &mut hasher)?;
        let hash = Hash::from(hasher.finalize());
        if self.object_path(&hash).exists() {
            return Ok((hash, size, false));
        }
        file.rewind()?;
        // Hash what we actually copy: the file may have changed since the first pass.
        self.write_object(file)
    }

    pub fn has_object(&self, h: &Hash) -> bool {
        self.object_path(h).exists()
    }

    /// Writes a tree object; returns its hash.
    pub(crate) fn write_tree(&self, entries: &[Entry]) -> Result<Hash> {
        let bytes = tree::encode(entries);
        let hash = Hash::of(&bytes);
        let dest = self.tree_path(&hash);
        if dest.exists() {
            return Ok(hash);
        }
        let tmp = self.tmp_path("tree");
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.ctx(|| format!("writing tree {hash}"))?;
        self.publish(&tmp, &dest)?;
        Ok(hash)
    }

    /// Reads and decodes a tree, checking that its bytes hash to `h`.
    pub fn read_tree(&self, h: &Hash) -> Result<Vec<Entry>> {
        let path = self.tree_path(h);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    what: "tree",
                    hash: *h,
                });
            }
            Err(e) => return Err(e).ctx(|| format!("reading tree {}", path.display())),
        };
        let actual = Hash::of(&bytes);
        if actual != *h {
            return Err(StoreError::Corrupt {
                what: "tree",
                hash: *h,
                detail: format!("its bytes hash to {actual}"),
            });
        }
        tree::decode(&bytes).map_err(|detail| StoreError::Corrupt {
            what: "tree",
            hash: *h,
            detail,
        })
    }

    /// Whether the layer `root` was fully imported.
    pub fn has(&self, root: &Hash) -> bool {
        self.layer_path(root).exists()
    }

    pub(crate) fn write_layer_record(&self, root: &Hash, info: LayerInfo) -> Result<()> {
        let text = format!("verse-layer 1\nsize {}\nfiles {}\n", info.size, info.files);
        self.write_atomic(&self.layer_path(root), text.as_bytes())?;
        let layers = self.sub("layers");
        File::open(&layers)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("syncing {}", layers.display()))
    }

    /// Size and file count of an imported layer.
    pub fn layer_info(&self, root: &Hash) -> Result<LayerInfo> {
        let path = self.layer_path(root);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    what: "layer",
                    hash: *root,
                });
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
        };
        match (
            text.starts_with("verse-layer 1\n"),
            field("size"),
            field("files"),
        ) {
            (true, Some(size), Some(files)) => Ok(LayerInfo { size, files }),
            _ => Err(StoreError::Corrupt {
                what: "layer record",
                hash: *root,
                detail: format!("{} is malformed", path.display()),
            }),
        }
    }

    /// Lists every imported layer.
    pub fn layers(&self) -> Result<Vec<Hash>> {
        let dir = self.sub("layers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            if let Some(h) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                out.push(h);
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Store {
    /// The root directory's metadata and listing of layer `root`.
    pub(crate) fn layer_root(&self, root: &Hash) -> Result<(Meta, Hash)> {
        let entries = self.read_tree(root)?;
        match entries.as_slice() {
            [
                Entry {
                    name,
                    meta,
                    kind: EntryKind::Dir(inner),
                    ..
                },
            ] if name == tree::LAYER_ROOT_NAME => Ok((*meta, *inner)),
            _ => Err(StoreError::Corrupt {
                what: "layer root",
                hash: *root,
                detail: "not a one-entry tree naming the root directory".into(),
            }),
        }
    }

    /// Visits every entry of layer `root` in pre-order, children sorted by name. `rel` is the
    /// path inside the layer without a leading slash ("" for the root, "bin/sh").
    pub(crate) fn walk_layer(
        &self,
        root: &Hash,
        visit: &mut dyn FnMut(&[u8], &Entry) -> Result<()>,
    ) -> Result<()> {
        let (meta, inner) = self.layer_root(root)?;
        let top = Entry {
            name: Vec::new(),
            meta,
            size: 0,
            kind: EntryKind::Dir(inner),
        };
        let mut rel = Vec::new();
        self.walk_rec(&top, &mut rel, visit)
    }

    fn walk_rec(
        &self,
        entry: &Entry,
        rel: &mut Vec<u8>,
        visit: &mut dyn FnMut(&[u8], &Entry) -> Result<()>,
    ) -> Result<()> {
        visit(rel, entry)?;
        if let EntryKind::Dir(h) = &entry.kind {
            for child in self.read_tree(h)? {
                let len = rel.len();
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(&child.name);
                self.walk_rec(&child, rel, visit)?;
                rel.truncate(len);
            }
        }
        Ok(())
    }
}

/// "/bin/sh" for rel "bin/sh", "/" for the root.
pub(crate) fn layer_path_display(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}
