//! Checkouts: a layer materialised as a real directory tree for running, with owners shifted
//! into an environment's uid range, files hardlinked from a shared pool of inodes.
//!
//! Every checkout has a sidecar (`<name>.state`) recording the inode number and ctime of each
//! entry right after it was built. Any write, chmod, chown or replacement of an entry changes
//! its ctime or inode number, so `quick_check` detects tampering with stat calls alone.
//! Linking or unlinking a pool inode also changes its ctime; the store is the only one who
//! does that legitimately, and when it does it moves the recorded ctime forward in every
//! sidecar that still held the old, untampered value.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode};

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::store::{Store, layer_path_display};
use crate::tree::{Entry, EntryKind, Meta};
use crate::verify::{Change, ChangeKind};

/// Layer ids at or above this map to `NOBODY` inside the environment's range.
const ID_RANGE: u32 = 65536;
/// Where out-of-range ids land (relative to the uid base).
pub const NOBODY: u32 = 65534;

/// The host id of layer id `id` in an environment whose range starts at `base`.
pub fn host_id(base: u32, id: u32) -> u32 {
    base + if id >= ID_RANGE { NOBODY } else { id }
}

fn check_uid_base(base: u32) -> Result<()> {
    if base.checked_add(ID_RANGE - 1).is_none() {
        return Err(StoreError::BadUidBase(base));
    }
    Ok(())
}

/// A ctime, to the nanosecond.
type CTime = (i64, i64);

fn ctime_of(md: &fs::Metadata) -> CTime {
    (md.ctime(), md.ctime_nsec())
}

// The field types of `struct stat` differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn stat_ctime(st: &rustix::fs::Stat) -> CTime {
    (st.st_ctime as i64, st.st_ctime_nsec as i64)
}

/// One sidecar record: the entry's path in the layer, its inode and ctime after checkout,
/// and for files the pool entry it is a link of.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    rel: Vec<u8>,
    ino: u64,
    ctime: CTime,
    pool_key: Vec<u8>,
    /// For files: inode and ctime of the content object, which nothing legitimately changes.
    object: (u64, CTime),
}

const STATE_MAGIC: &[u8] = b"verse-checkout 1\n";

fn encode_state(records: &[Record]) -> Vec<u8> {
    let mut out = STATE_MAGIC.to_vec();
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for r in records {
        out.extend_from_slice(&(r.rel.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.rel);
        out.extend_from_slice(&r.ino.to_le_bytes());
        out.extend_from_slice(&r.ctime.0.to_le_bytes());
        out.extend_from_slice(&r.ctime.1.to_le_bytes());
        out.extend_from_slice(&(r.pool_key.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.pool_key);
        out.extend_from_slice(&r.object.0.to_le_bytes());
        out.extend_from_slice(&r.object.1.0.to_le_bytes());
        out.extend_from_slice(&r.object.1.1.to_le_bytes());
    }
    out
}

fn decode_state(bytes: &[u8]) -> Option<Vec<Record>> {
    let mut buf = bytes.strip_prefix(STATE_MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        buf = rest;
        Some(head)
    };
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let rel = take(len)?.to_vec();
        let ino = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let sec = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let nsec = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let klen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let pool_key = take(klen)?.to_vec();
        let obj_ino = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let obj_sec = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let obj_nsec = i64::from_le_bytes(take(8)?.try_into().ok()?);
        out.push(Record {
            rel,
            ino,
            ctime: (sec, nsec),
            pool_key,
            object: (obj_ino, (obj_sec, obj_nsec)),
        });
    }
    if !buf.is_empty() {
        return None;
    }
    Some(out)
}

/// Pool inodes whose link count the store is changing: inode -> (pool path, ctime before).
type Touched = HashMap<u64, (PathBuf, CTime)>;

/// What the store recorded about a pool inode right after it last verified it (by hashing,
/// or by creating it from a verified object) and after its own links and unlinks: inode,
/// ctime, size, and the inode and ctime of the content object behind it. A pool inode whose
/// stat still matches is trusted without re-reading it: any write, chmod, chown, link,
/// unlink or replacement by anyone else moves its ctime or inode number, and an object that
/// changed since makes the record stale too (so a damaged object is still refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolRecord {
    ino: u64,
    ctime: CTime,
    size: u64,
    object: (u64, CTime),
}

/// Pool key (file name under `pool/`) -> its record.
type PoolState = HashMap<Vec<u8>, PoolRecord>;

const POOL_STATE_MAGIC: &[u8] = b"verse-pool 1\n";

fn encode_pool_state(state: &PoolState) -> Vec<u8> {
    let mut out = POOL_STATE_MAGIC.to_vec();
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    for (key, r) in state {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&r.ino.to_le_bytes());
        out.extend_from_slice(&r.ctime.0.to_le_bytes());
        out.extend_from_slice(&r.ctime.1.to_le_bytes());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.object.0.to_le_bytes());
        out.extend_from_slice(&r.object.1.0.to_le_bytes());
        out.extend_from_slice(&r.object.1.1.to_le_bytes());
    }
    out
}

fn decode_pool_state(bytes: &[u8]) -> Option<PoolState> {
    let mut buf = bytes.strip_prefix(POOL_STATE_MAGIC)?;
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head)
    }
    fn word(buf: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(buf, 8)?.try_into().ok()?))
    }
    let count = word(&mut buf)?;
    let mut out = PoolState::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(&mut buf, 4)?.try_into().ok()?) as usize;
        let key = take(&mut buf, len)?.to_vec();
        let mut w = [0u64; 7];
        for x in &mut w {
            *x = word(&mut buf)?;
        }
        out.insert(
            key,
            PoolRecord {
                ino: w[0],
                ctime: (w[1] as i64, w[2] as i64),
                size: w[3],
                object: (w[4], (w[5] as i64, w[6] as i64)),
            },
        );
    }
    if !buf.is_empty() {
        return None;
    }
    Some(out)
}

impl Store {
    fn checkout_name(root: &Hash, uid_base: u32) -> String {
        format!("{root}-{uid_base}")
    }

    /// Where the checkout of `root` for `uid_base` lives (whether or not it exists).
    pub fn checkout_path(&self, root: &Hash, uid_base: u32) -> PathBuf {
        self.sub("checkouts")
            .join(Self::checkout_name(root, uid_base))
    }

    fn state_path(&self, root: &Hash, uid_base: u32) -> PathBuf {
        self.sub("checkouts")
            .join(format!("{}.state", Self::checkout_name(root, uid_base)))
    }

    fn pool_key(hash: &Hash, mode: u32, uid: u32, gid: u32) -> String {
        format!("{hash}.{mode:o}.{uid}.{gid}")
    }

    /// Materialises layer `root` with owners shifted by `uid_base`, and returns the
    /// directory. An existing checkout that passes `quick_check` is reused; one that fails
    /// it is rebuilt.
    pub fn checkout(&self, root: &Hash, uid_base: u32) -> Result<PathBuf> {
        check_uid_base(uid_base)?;
        let _lock = self.lock_exclusive()?;
        if !self.has(root) {
            return Err(StoreError::NotFound {
                what: "layer",
                hash: *root,
            });
        }
        let dest = self.checkout_path(root, uid_base);
        if fs::symlink_metadata(&dest).is_ok() {
            match self.quick_check_locked(root, uid_base) {
                Ok(()) => return Ok(dest),
                Err(changes) => {
                    tracing::warn!(
                        checkout = %dest.display(),
                        changes = changes.len(),
                        "checkout failed its check; rebuilding it"
                    );
                    self.remove_checkout_locked(root, uid_base)?;
                }
            }
        }
        let tmp = self.tmp_path("checkout");
        let mut touched = Touched::new();
        let pool_state = self.load_pool_state();
        let built = self.build_checkout(root, uid_base, &tmp, &pool_state, &mut touched);
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &dest)
            .ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        let records = self.collect_records(root, &dest)?;
        self.write_atomic(&self.state_path(root, uid_base), &encode_state(&records))?;
        self.advance_sidecars(&touched, Some(&self.state_path(root, uid_base)), true)?;
        Ok(dest)
    }

    fn build_checkout(
        &self,
        root: &Hash,
        uid_base: u32,
        tmp: &Path,
        pool_state: &PoolState,
        touched: &mut Touched,
    ) -> Result<()> {
        self.walk_layer(root, &mut |rel, entry| {
            let path = if rel.is_empty() { tmp.to_path_buf() } else { tmp.join(bytes_path(rel)) };
            let shown = layer_path_display(rel);
            let uid = host_id(uid_base, entry.meta.uid);
            let gid = host_id(uid_base, entry.meta.gid);
            let ctx = || format!("checking out {shown} to {}", path.display());
            match &entry.kind {
                EntryKind::Dir(_) => {
                    fs::create_dir(&path).ctx(ctx)?;
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).ctx(ctx)?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(entry.meta.mode)).ctx(ctx)?;
                }
                EntryKind::File(hash) => {
                    let pool = self.ensure_pool(hash, entry.size, entry.meta.mode, uid, gid, pool_state, touched)?;
                    fs::hard_link(&pool, &path).ctx(ctx)?;
                }
                EntryKind::Symlink(target) => {
                    std::os::unix::fs::symlink(bytes_path(target), &path).ctx(ctx)?;
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).ctx(ctx)?;
                }
                EntryKind::Fifo => {
                    rustix::fs::mknodat(rustix::fs::CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                        .ctx(ctx)?;
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).ctx(ctx)?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(entry.meta.mode)).ctx(ctx)?;
                }
                EntryKind::CharDev { rdev: 0 } if entry.name == crate::OPAQUE_MARKER => {
                    // Opaque directory: overlayfs hides everything below it in lower layers.
                    // Both names, as overlayfs reads trusted.* when mounted by host root and
                    // user.* when mounted in a user namespace (userxattr).
                    let dir = path.parent().unwrap_or(tmp);
                    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                        rustix::fs::lsetxattr(dir, name, b"y", rustix::fs::XattrFlags::empty())
                            .ctx(ctx)?;
                    }
                }
                EntryKind::CharDev { rdev: 0 } => {
                    // A whiteout: overlayfs hides this name in the layers below.
                    rustix::fs::mknodat(rustix::fs::CWD, &path, FileType::CharacterDevice, Mode::empty(), 0)
                        .ctx(ctx)?;
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).ctx(ctx)?;
                }
                EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } => {
                    tracing::warn!(path = %shown, kind = entry.kind.name(), "skipping device node in checkout");
                }
            }
            Ok(())
        })
    }

    fn pool_state_path(&self) -> PathBuf {
        self.sub("pool.state")
    }

    /// The pool records; missing or malformed means nothing is trusted without hashing.
    fn load_pool_state(&self) -> PoolState {
        fs::read(self.pool_state_path())
            .ok()
            .and_then(|b| decode_pool_state(&b))
            .unwrap_or_default()
    }

    /// Returns the pool inode for (content, mode, owner), creating it from the object if it
    /// is absent or does not match. An existing one is trusted without reading it when its
    /// stat and its object's still match what the store recorded after it last verified it
    /// (`PoolRecord`); otherwise it is re-hashed, with its object, before it is used.
    #[allow(clippy::too_many_arguments)]
    fn ensure_pool(
        &self,
        hash: &Hash,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        pool_state: &PoolState,
        touched: &mut Touched,
    ) -> Result<PathBuf> {
        let key = Self::pool_key(hash, mode, uid, gid);
        let path = self.sub("pool").join(&key);
        if let Ok(md) = fs::symlink_metadata(&path) {
            if touched.contains_key(&md.ino()) {
                return Ok(path);
            }
            let meta_ok = md.is_file()
                && md.mode() & 0o7777 == mode
                && md.uid() == uid
                && md.gid() == gid
                && md.len() == size;
            let recorded = meta_ok
                && pool_state.get(key.as_bytes()).is_some_and(|r| {
                    r.ino == md.ino()
                        && r.ctime == ctime_of(&md)
                        && r.size == md.len()
                        && object_stamp(&self.object_path(hash)) == Some(r.object)
                });
            if recorded {
                touched.insert(md.ino(), (path.clone(), ctime_of(&md)));
                return Ok(path);
            }
            if meta_ok && hash_file(&path).ok() == Some(*hash) {
                // The pool copy is good; refuse all the same if the object behind it is not,
                // so a checkout never records a damaged store as sound.
                self.check_object(hash)?;
                touched.insert(md.ino(), (path.clone(), ctime_of(&md)));
                return Ok(path);
            }
            tracing::warn!(pool = %path.display(), "pool entry does not match its name; replacing it");
        }
        let object = self.object_path(hash);
        let tmp = self.tmp_path("pool");
        let res = (|| -> Result<()> {
            let src = File::open(&object).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::NotFound {
                    what: "object",
                    hash: *hash,
                },
                _ => StoreError::Io {
                    context: format!("opening object {}", object.display()),
                    source: e,
                },
            })?;
            let mut dst = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            if rustix::fs::ioctl_ficlone(dst.as_fd(), src.as_fd()).is_err() {
                let mut src = src;
                io::copy(&mut src, &mut dst).ctx(|| format!("copying object {hash}"))?;
            }
            let actual = hash_file(&tmp).ctx(|| format!("hashing {}", tmp.display()))?;
            if actual != *hash {
                return Err(StoreError::Corrupt {
                    what: "object",
                    hash: *hash,
                    detail: format!("its content hashes to {actual}"),
                });
            }
            std::os::unix::fs::fchown(&dst, Some(uid), Some(gid))
                .ctx(|| format!("chown {}", tmp.display()))?;
            // After chown: chown clears setuid/setgid.
            dst.set_permissions(fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod {}", tmp.display()))?;
            dst.flush().ctx(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, &path)
                .ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        if let Ok(md) = fs::symlink_metadata(&path) {
            touched.insert(md.ino(), (path.clone(), ctime_of(&md)));
        }
        Ok(path)
    }

    fn check_object(&self, hash: &Hash) -> Result<()> {
        let object = self.object_path(hash);
        match hash_file(&object) {
            Ok(actual) if actual == *hash => Ok(()),
            Ok(actual) => Err(StoreError::Corrupt {
                what: "object",
                hash: *hash,
                detail: format!("its content hashes to {actual}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
                what: "object",
                hash: *hash,
            }),
            Err(e) => Err(e).ctx(|| format!("reading object {}", object.display())),
        }
    }

    /// Stats every non-device entry of a fresh checkout for its sidecar.
    fn collect_records(&self, root: &Hash, dest: &Path) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        self.walk_layer(root, &mut |rel, entry| {
            if entry.kind.is_device() {
                return Ok(());
            }
            let path = if rel.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(bytes_path(rel))
            };
            let md = fs::symlink_metadata(&path).ctx(|| format!("stat {}", path.display()))?;
            let (pool_key, object) = match &entry.kind {
                EntryKind::File(h) => {
                    let obj = self.object_path(h);
                    let omd =
                        fs::symlink_metadata(&obj).ctx(|| format!("stat {}", obj.display()))?;
                    let key = Self::pool_key(h, entry.meta.mode, md.uid(), md.gid());
                    (key.into_bytes(), (omd.ino(), ctime_of(&omd)))
                }
                _ => (Vec::new(), (0, (0, 0))),
            };
            records.push(Record {
                rel: rel.to_vec(),
                ino: md.ino(),
                ctime: ctime_of(&md),
                pool_key,
                object,
            });
            Ok(())
        })?;
        Ok(records)
    }

    /// After the store linked or unlinked pool inodes, moves their recorded ctime forward in
    /// every sidecar (and in the pool records) that still held the value from before (a
    /// different value means the inode was tampered with earlier: it stays flagged). With
    /// `verified`, every touched pool inode was just verified (hashed, created from a
    /// verified object, or trusted on a matching record) and gets a fresh pool record.
    fn advance_sidecars(
        &self,
        touched: &Touched,
        skip: Option<&Path>,
        verified: bool,
    ) -> Result<()> {
        let mut moved: HashMap<u64, (CTime, CTime)> = HashMap::new();
        let mut pool_state = self.load_pool_state();
        let mut pool_changed = false;
        for (ino, (path, before)) in touched {
            let Ok(md) = fs::symlink_metadata(path) else {
                continue;
            };
            if md.ino() != *ino {
                continue;
            }
            if ctime_of(&md) != *before {
                moved.insert(*ino, (*before, ctime_of(&md)));
            }
            let Some(key) = path.file_name().map(|n| n.as_encoded_bytes().to_vec()) else {
                continue;
            };
            let fresh = if verified {
                let object = key
                    .split(|b| *b == b'.')
                    .next()
                    .and_then(|h| std::str::from_utf8(h).ok()?.parse::<Hash>().ok())
                    .and_then(|h| object_stamp(&self.object_path(&h)));
                object.map(|object| PoolRecord {
                    ino: *ino,
                    ctime: ctime_of(&md),
                    size: md.len(),
                    object,
                })
            } else {
                pool_state
                    .get(&key)
                    .filter(|r| r.ino == *ino && r.ctime == *before)
                    .map(|r| PoolRecord {
                        ctime: ctime_of(&md),
                        ..*r
                    })
            };
            match fresh {
                Some(r) => {
                    if pool_state.insert(key, r) != Some(r) {
                        pool_changed = true;
                    }
                }
                None => pool_changed |= pool_state.remove(&key).is_some(),
            }
        }
        if pool_changed {
            self.write_atomic(&self.pool_state_path(), &encode_pool_state(&pool_state))?;
        }
        if moved.is_empty() {
            return Ok(());
        }
        let dir = self.sub("checkouts");
        for entry in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let path = entry.ctx(|| format!("listing {}", dir.display()))?.path();
            if path.extension().is_none_or(|e| e != "state") || Some(path.as_path()) == skip {
                continue;
            }
            let Some(mut records) = fs::read(&path).ok().and_then(|b| decode_state(&b)) else {
                continue;
            };
            let mut changed = false;
            for r in &mut records {
                if let Some((before, after)) = moved.get(&r.ino)
                    && !r.pool_key.is_empty()
                    && r.ctime == *before
                {
                    r.ctime = *after;
                    changed = true;
                }
            }
            if changed {
                self.write_atomic(&path, &encode_state(&records))?;
            }
        }
        Ok(())
    }

    /// Drops the pool records of pool entries that no longer exist (after gc).
    pub(crate) fn prune_pool_state(&self) -> Result<()> {
        let mut state = self.load_pool_state();
        let before = state.len();
        let pool = self.sub("pool");
        state.retain(|key, _| fs::symlink_metadata(pool.join(bytes_path(key))).is_ok());
        if state.len() != before {
            self.write_atomic(&self.pool_state_path(), &encode_pool_state(&state))?;
        }
        Ok(())
    }

    /// Removes the checkout of `root` for `uid_base`, if any.
    pub fn remove_checkout(&self, root: &Hash, uid_base: u32) -> Result<()> {
        let _lock = self.lock_exclusive()?;
        self.remove_checkout_locked(root, uid_base)
    }

    pub(crate) fn remove_checkout_locked(&self, root: &Hash, uid_base: u32) -> Result<()> {
        let dest = self.checkout_path(root, uid_base);
        let state = self.state_path(root, uid_base);
        self.remove_checkout_dir(&dest, &state)
    }

    /// Removes a checkout directory and its sidecar, keeping other sidecars in step.
    pub(crate) fn remove_checkout_dir(&self, dest: &Path, state: &Path) -> Result<()> {
        let mut touched = Touched::new();
        if let Some(records) = fs::read(state).ok().and_then(|b| decode_state(&b)) {
            for r in records.iter().filter(|r| !r.pool_key.is_empty()) {
                let pool = self.sub("pool").join(bytes_path(&r.pool_key));
                if let Ok(md) = fs::symlink_metadata(&pool) {
                    touched.entry(md.ino()).or_insert((pool, ctime_of(&md)));
                }
            }
        }
        // Drop the sidecar first: a checkout without one is never trusted.
        match fs::remove_file(state) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).ctx(|| format!("removing {}", state.display()));
            }
            _ => {}
        }
        if fs::symlink_metadata(dest).is_ok() {
            // Rename away first so a half-removed tree never sits under the checkout name.
            let doomed = self.tmp_path("doomed");
            fs::rename(dest, &doomed).ctx(|| format!("renaming {} away", dest.display()))?;
            fs::remove_dir_all(&doomed).ctx(|| format!("removing {}", doomed.display()))?;
        }
        self.advance_sidecars(&touched, None, false)
    }

    /// Fast pre-start check of a checkout: stat-only comparison of every entry with the
    /// layer's trees and with the inode numbers and ctimes recorded at checkout time.
    pub fn quick_check(&self, root: &Hash, uid_base: u32) -> std::result::Result<(), Vec<Change>> {
        let _lock = self.lock_shared().map_err(|e| vec![Change::error(&e)])?;
        self.quick_check_locked(root, uid_base)
    }

    fn quick_check_locked(
        &self,
        root: &Hash,
        uid_base: u32,
    ) -> std::result::Result<(), Vec<Change>> {
        if check_uid_base(uid_base).is_err() {
            return Err(vec![Change::error(&StoreError::BadUidBase(uid_base))]);
        }
        let dest = self.checkout_path(root, uid_base);
        let state = self.state_path(root, uid_base);
        let records = match fs::read(&state) {
            Ok(bytes) => decode_state(&bytes).ok_or_else(|| {
                vec![Change {
                    path: "/".into(),
                    kind: ChangeKind::Changed,
                    detail: format!("checkout state {} is malformed", state.display()),
                }]
            })?,
            Err(_) => {
                return Err(vec![Change {
                    path: "/".into(),
                    kind: ChangeKind::Missing,
                    detail: format!("no finished checkout of layer {root} for uid base {uid_base}"),
                }]);
            }
        };
        let dirfd = rustix::fs::open(
            &dest,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            vec![Change {
                path: "/".into(),
                kind: ChangeKind::Missing,
                detail: format!("cannot open checkout {}: {e}", dest.display()),
            }]
        })?;
        let mut changes = Vec::new();
        let mut next = records.iter();
        let walked = self.walk_layer(root, &mut |rel, entry| {
            if entry.kind.is_device() {
                return Ok(());
            }
            let path = layer_path_display(rel);
            let Some(record) = next.next().filter(|r| r.rel == rel) else {
                return Err(StoreError::Invalid {
                    path,
                    detail: "checkout state does not match the layer".into(),
                });
            };
            let target: &Path = if rel.is_empty() {
                Path::new(".")
            } else {
                bytes_path(rel)
            };
            if let EntryKind::File(h) = &entry.kind {
                let same = rustix::fs::stat(self.object_path(h))
                    .is_ok_and(|st| (st.st_ino, stat_ctime(&st)) == record.object);
                if !same {
                    changes.push(Change {
                        path: path.clone(),
                        kind: ChangeKind::Changed,
                        detail: format!(
                            "content object {h} was modified or replaced since checkout"
                        ),
                    });
                }
            }
            match rustix::fs::statat(&dirfd, target, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    if let Some(detail) = quick_compare(entry, uid_base, record, &st) {
                        changes.push(Change {
                            path,
                            kind: ChangeKind::Changed,
                            detail,
                        });
                    }
                }
                Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
                    changes.push(Change {
                        path,
                        kind: ChangeKind::Missing,
                        detail: "missing from the checkout".into(),
                    });
                }
                Err(e) => changes.push(Change {
                    path,
                    kind: ChangeKind::Changed,
                    detail: format!("stat failed: {e}"),
                }),
            }
            Ok(())
        });
        if let Err(e) = walked {
            changes.push(Change::error(&e));
        }
        if changes.is_empty() {
            Ok(())
        } else {
            Err(changes)
        }
    }
}

/// What differs between a checked-out entry and the layer plus sidecar, if anything.
fn quick_compare(
    entry: &Entry,
    uid_base: u32,
    record: &Record,
    st: &rustix::fs::Stat,
) -> Option<String> {
    let file_type = FileType::from_raw_mode(st.st_mode);
    let expected_type = match entry.kind {
        EntryKind::File(_) => FileType::RegularFile,
        EntryKind::Dir(_) => FileType::Directory,
        EntryKind::Symlink(_) => FileType::Symlink,
        EntryKind::Fifo => FileType::Fifo,
        EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } => return None,
    };
    let Meta { mode, uid, gid } = entry.meta;
    let (want_uid, want_gid) = (host_id(uid_base, uid), host_id(uid_base, gid));
    if file_type != expected_type {
        return Some(format!(
            "is a {file_type:?}, the layer has a {}",
            entry.kind.name()
        ));
    }
    if expected_type != FileType::Symlink && st.st_mode & 0o7777 != mode {
        return Some(format!(
            "mode is {:o}, the layer has {mode:o}",
            st.st_mode & 0o7777
        ));
    }
    if st.st_uid != want_uid || st.st_gid != want_gid {
        return Some(format!(
            "owner is {}:{}, expected {want_uid}:{want_gid}",
            st.st_uid, st.st_gid
        ));
    }
    if expected_type == FileType::RegularFile && st.st_size as u64 != entry.size {
        return Some(format!(
            "size is {}, the layer has {}",
            st.st_size, entry.size
        ));
    }
    if st.st_ino != record.ino {
        return Some("replaced (inode number changed since checkout)".into());
    }
    if stat_ctime(st) != record.ctime {
        return Some(if expected_type == FileType::Directory {
            "modified since checkout (ctime changed: an entry was added, removed or renamed, or its metadata changed)".into()
        } else {
            "modified since checkout (ctime changed: written, chmod'ed, chown'ed or relinked)"
                .into()
        });
    }
    None
}

/// Inode number and ctime of a content object, if it exists.
fn object_stamp(path: &Path) -> Option<(u64, CTime)> {
    rustix::fs::stat(path)
        .ok()
        .map(|st| (st.st_ino, stat_ctime(&st)))
}

pub(crate) fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// BLAKE3 of a file's content.
pub(crate) fn hash_file(path: &Path) -> io::Result<Hash> {
    let mut f = File::open(path)?;
    hash_reader(&mut f)
}

pub(crate) fn hash_reader(r: &mut dyn Read) -> io::Result<Hash> {
    let mut hasher = blake3::Hasher::new();
    io::copy(r, &mut hasher)?;
    Ok(Hash::from(hasher.finalize()))
}
