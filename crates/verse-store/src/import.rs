//! Import of a directory or a tar archive into a layer.
//!
//! Both paths build the layer in memory (`Builder`), storing file contents as objects on the
//! way, and write tree objects and the layer record only once every entry was accepted. A
//! refused entry therefore leaves no tree or layer behind; objects already stored are harmless
//! (content-addressed) and go away at the next gc.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::progress::Progress;
use crate::store::{LayerInfo, Store};
use crate::tree::{Entry, EntryKind, MODE_MASK, Meta, bad_name_reason};

/// Refuse any single file larger than this (1 TiB): a declared size beyond it is hostile.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// The result of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Root tree hash: names and verifies the whole layer.
    pub root: Hash,
    /// Sum of file sizes.
    pub size: u64,
    /// Number of regular files.
    pub files: u64,
    /// Bytes of content actually stored new by this import.
    pub new_bytes: u64,
    /// Paths of the device nodes left out ([`ImportOptions::skip_devices`]), in archive order.
    pub devices_left_out: Vec<String>,
}

enum Node {
    Dir {
        meta: Meta,
        children: BTreeMap<Vec<u8>, Node>,
    },
    Leaf {
        meta: Meta,
        size: u64,
        kind: EntryKind,
    },
}

impl Node {
    fn empty_dir(meta: Meta) -> Node {
        Node::Dir {
            meta,
            children: BTreeMap::new(),
        }
    }
}

/// How an import reads its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Host ids `id_base..id_base+65536` become 0..65536 (an overlay upper dir written by an
    /// env whose root is `id_base`); any other owner becomes nobody. 0: ids kept as they are.
    pub id_base: u32,
    /// Translate whiteouts into the store's form (a character device 0/0 hides the same name
    /// below; one named [`OPAQUE_MARKER`] makes its directory opaque): in tars, OCI's
    /// `.wh.NAME` and `.wh..wh..opq`; in directories, overlayfs' opaque xattr (its 0/0
    /// character devices are already whiteouts).
    pub whiteouts: bool,
    /// Refuse character and block devices other than whiteouts (an untrusted image layer
    /// has no business shipping them). When false they are recorded as data and never
    /// created in a checkout.
    pub refuse_devices: bool,
    /// Leave character and block devices other than whiteouts out of the layer, naming each
    /// in [`Layer::devices_left_out`] (an image made by another tool: a debootstrap base
    /// carries /dev nodes, and every env gets a /dev of its own). Wins over `refuse_devices`.
    pub skip_devices: bool,
}

/// Most tar header data (headers, PAX records, GNU long names, skipped bodies) accepted
/// between two entries: real archives need a few KiB, a hostile one could ask for gigabytes
/// (the tar reader keeps them in memory).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// A compressed tar may expand to at most this many times its compressed size, or
/// [`MIN_BOMB_LIMIT`], whichever is larger: beyond that it is a decompression bomb.
pub const MAX_EXPANSION: u64 = 100;

/// Every compressed tar may expand to at least this many bytes.
pub const MIN_BOMB_LIMIT: u64 = 64 << 20;

/// Name of the entry that marks its directory opaque (hides everything below it).
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs sets on an opaque directory of its upper layer.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same, for an overlay mounted with `userxattr` (in a user namespace).
pub const OVERLAY_OPAQUE_USER_XATTR: &str = "user.overlay.opaque";

/// An in-memory layer under construction.
struct Builder<'a> {
    store: &'a Store,
    options: ImportOptions,
    root: Node,
    new_bytes: u64,
    files_done: u64,
    bytes_done: u64,
    devices_left_out: Vec<String>,
}

fn display(components: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for c in components {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    if s.is_empty() { "/".into() } else { s }
}

impl<'a> Builder<'a> {
    fn new(store: &'a Store, options: ImportOptions) -> Self {
        Builder {
            store,
            options,
            root: Node::empty_dir(Meta::ROOT_DIR),
            new_bytes: 0,
            files_done: 0,
            bytes_done: 0,
            devices_left_out: Vec::new(),
        }
    }

    /// Inserts `node` at `path` (components already validated). Missing parents are created
    /// as 0755 root:root directories; a parent that is not a directory is an error (this is
    /// what stops `a -> /etc` followed by `a/passwd`). A directory repeated keeps its
    /// children and takes the later metadata, as tar does; any other repeated name is
    /// refused, so what a layer holds never depends on which of two entries an extractor
    /// keeps.
    fn insert(&mut self, path: &[Vec<u8>], node: Node) -> std::result::Result<(), String> {
        let Some((last, parents)) = path.split_last() else {
            return match node {
                Node::Dir { meta, .. } => {
                    if let Node::Dir { meta: m, .. } = &mut self.root {
                        *m = meta;
                    }
                    Ok(())
                }
                Node::Leaf { .. } => Err("the root must be a directory".into()),
            };
        };
        let mut cur = &mut self.root;
        for (i, name) in parents.iter().enumerate() {
            let Node::Dir { children, .. } = cur else {
                unreachable!("walk only descends into directories")
            };
            let child = children
                .entry(name.clone())
                .or_insert_with(|| Node::empty_dir(Meta::ROOT_DIR));
            if let Node::Leaf { kind, .. } = child {
                return Err(format!(
                    "parent {} is a {}, not a directory",
                    display(&path[..=i]),
                    kind.name()
                ));
            }
            cur = child;
        }
        let Node::Dir { children, .. } = cur else {
            unreachable!("walk only descends into directories")
        };
        match (children.get_mut(last), node) {
            (Some(Node::Dir { meta, .. }), Node::Dir { meta: new, .. }) => *meta = new,
            (Some(_), _) => {
                return Err(format!(
                    "{} appears twice in the archive (only a directory may repeat)",
                    display(path)
                ));
            }
            (None, node) => {
                children.insert(last.clone(), node);
            }
        }
        Ok(())
    }

    /// Finds the regular file at `path` (for hard links).
    fn lookup_file(&self, path: &[Vec<u8>]) -> Option<(Meta, u64, Hash)> {
        let mut cur = &self.root;
        for name in path {
            match cur {
                Node::Dir { children, .. } => cur = children.get(name)?,
                Node::Leaf { .. } => return None,
            }
        }
        match cur {
            Node::Leaf {
                meta,
                size,
                kind: EntryKind::File(h),
            } => Some((*meta, *size, *h)),
            _ => None,
        }
    }

    fn file_stored(&mut self, size: u64, new: bool, progress: &mut dyn Progress) {
        if new {
            self.new_bytes += size;
        }
        self.files_done += 1;
        self.bytes_done += size;
        progress.update(self.files_done, self.bytes_done);
    }

    /// Writes all trees bottom-up and the layer record.
    fn finish(self) -> Result<Layer> {
        let store = self.store;
        fn write(store: &Store, node: &Node, totals: &mut LayerInfo) -> Result<Hash> {
            let Node::Dir { children, .. } = node else {
                unreachable!("only directories become trees")
            };
            let mut entries = Vec::with_capacity(children.len());
            for (name, child) in children {
                let entry = match child {
                    Node::Dir { meta, .. } => Entry {
                        name: name.clone(),
                        meta: *meta,
                        size: 0,
                        kind: EntryKind::Dir(write(store, child, totals)?),
                    },
                    Node::Leaf { meta, size, kind } => {
                        if matches!(kind, EntryKind::File(_)) {
                            totals.files += 1;
                            totals.size += size;
                        }
                        Entry {
                            name: name.clone(),
                            meta: *meta,
                            size: *size,
                            kind: kind.clone(),
                        }
                    }
                };
                entries.push(entry);
            }
            store.write_tree(&entries)
        }
        let mut info = LayerInfo { size: 0, files: 0 };
        let Node::Dir {
            meta: root_meta, ..
        } = &self.root
        else {
            unreachable!()
        };
        // The layer root is a one-entry tree naming the root directory, so the root's own
        // mode and owner are covered by the root hash too.
        let inner = write(store, &self.root, &mut info)?;
        let root = store.write_tree(&[Entry {
            name: crate::tree::LAYER_ROOT_NAME.to_vec(),
            meta: *root_meta,
            size: 0,
            kind: EntryKind::Dir(inner),
        }])?;
        store.write_layer_record(&root, info)?;
        Ok(Layer {
            root,
            size: info.size,
            files: info.files,
            new_bytes: self.new_bytes,
            devices_left_out: self.devices_left_out,
        })
    }
}

/// Splits a tar path into validated components. Leading "./" and "." components are
/// dropped; absolute paths, ".." and NUL bytes are refused.
fn tar_components(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if raw.starts_with(b"/") {
        return Err("absolute path (must be relative to the layer root)".into());
    }
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err("path contains '..' (would escape the layer)".into()),
            name => out.push(name.to_vec()),
        }
    }
    Ok(out)
}

fn id32(v: u64, what: &str) -> std::result::Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
}

/// Reads an archive entry's body to the end, refusing a short body.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "archive ends {} bytes before the declared size",
                    self.remaining
                ),
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Compression of a tar, detected from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl Store {
    /// Imports the directory tree at `path` (symlinks are recorded, never followed).
    pub fn import_dir(&self, path: impl AsRef<Path>, progress: &mut dyn Progress) -> Result<Layer> {
        self.import_dir_with(path, ImportOptions::default(), progress)
    }

    /// Imports an overlayfs upper directory (an env's writable layer) as a layer: owners
    /// shifted back out of the env's id range starting at `uid_base`, whiteouts (char
    /// devices 0/0) kept, opaque directories recorded with an [`OPAQUE_MARKER`] whiteout.
    /// [`Store::materialize_upper`] turns both back into what overlayfs reads.
    pub fn import_upper(
        &self,
        path: impl AsRef<Path>,
        uid_base: u32,
        progress: &mut dyn Progress,
    ) -> Result<Layer> {
        let options = ImportOptions {
            id_base: uid_base,
            whiteouts: true,
            refuse_devices: false,
            skip_devices: false,
        };
        self.import_dir_with(path, options, progress)
    }

    /// [`Store::import_dir`] with options (an overlay upper dir: shifted owners, whiteouts).
    pub fn import_dir_with(
        &self,
        path: impl AsRef<Path>,
        options: ImportOptions,
        progress: &mut dyn Progress,
    ) -> Result<Layer> {
        let path = path.as_ref();
        let _lock = self.lock_shared()?;
        let md = fs::symlink_metadata(path).ctx(|| format!("reading {}", path.display()))?;
        if !md.is_dir() {
            return Err(StoreError::Invalid {
                path: path.display().to_string(),
                detail: "not a directory".into(),
            });
        }
        let mut b = Builder::new(self, options);
        b.insert(&[], Node::empty_dir(meta_of(&md, options.id_base)))
            .map_err(|r| StoreError::refused(path, "/", r))?;
        let mut components = Vec::new();
        import_dir_rec(&mut b, path, path, &mut components, progress)?;
        b.finish()
    }

    /// Imports a tar archive, plain, gzip or zstd (detected from its magic bytes).
    pub fn import_tar(&self, path: impl AsRef<Path>, progress: &mut dyn Progress) -> Result<Layer> {
        self.import_tar_with(path, ImportOptions::default(), progress)
    }

    /// [`Store::import_tar`] with options (an OCI layer: whiteouts).
    pub fn import_tar_with(
        &self,
        path: impl AsRef<Path>,
        options: ImportOptions,
        progress: &mut dyn Progress,
    ) -> Result<Layer> {
        let path = path.as_ref();
        let mut file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        let size = file
            .metadata()
            .ctx(|| format!("reading {}", path.display()))?
            .len();
        self.import_tar_stream(&mut file, path, size, options, progress, &mut || Ok(()))
    }

    /// Imports a tar (plain, gzip or zstd) read from `source`: a layer blob inside an image
    /// archive, read in place. `name` names it in errors; `size` is what `source` holds
    /// (compressed), which bounds the decompressed size. The whole stream is read, then
    /// `check` runs before anything is recorded: an `Err(reason)` there (a digest that does
    /// not match) refuses the layer with that reason and records no tree or layer.
    pub fn import_tar_stream(
        &self,
        source: &mut dyn Read,
        name: &Path,
        size: u64,
        options: ImportOptions,
        progress: &mut dyn Progress,
        check: &mut dyn FnMut() -> std::result::Result<(), String>,
    ) -> Result<Layer> {
        let path = name;
        let _lock = self.lock_shared()?;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut &mut *source, &mut magic)
            .ctx(|| format!("reading {}", path.display()))?;
        let file = BufReader::with_capacity(
            256 * 1024,
            io::Cursor::new(magic[..n].to_vec()).chain(source),
        );
        let compression = Compression::detect(&magic[..n]);
        let compressed_size = size;
        let reader: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(file)
                    .ctx(|| format!("starting zstd decoder for {}", path.display()))?,
            ),
        };
        let limit = match compression {
            Compression::None => u64::MAX,
            _ => compressed_size
                .saturating_mul(MAX_EXPANSION)
                .max(MIN_BOMB_LIMIT),
        };
        let state = std::rc::Rc::new(GuardState::default());
        let guarded = Guarded {
            inner: reader,
            state: std::rc::Rc::clone(&state),
            limit,
        };
        let mut archive = tar::Archive::new(guarded);
        let mut b = Builder::new(self, options);
        let entries = archive
            .entries()
            .ctx(|| format!("reading tar {}", path.display()))?;
        for entry in entries {
            state.since_entry.set(0);
            let mut entry = entry.map_err(|e| match state.last.take() {
                _ if e.kind() != io::ErrorKind::InvalidData => StoreError::Io {
                    context: format!("reading the next entry of tar {}", path.display()),
                    source: e,
                },
                last => StoreError::refused(
                    path,
                    last.unwrap_or_else(|| "(before the first entry)".into()),
                    e.to_string(),
                ),
            })?;
            state.in_body.set(true);
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            import_tar_entry(&mut b, path, &mut entry, progress)?;
            // Drain what the entry did not read (a body on a non-file entry) as body data,
            // so only real header data counts against MAX_HEADER_BYTES.
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| StoreError::refused(path, name.clone(), e.to_string()))?;
            state.in_body.set(false);
            state.last.replace(Some(name));
        }
        // Read to the end (padding after the tar's end, the rest of a compressed stream), so
        // `check` sees every byte of the source; still under the bomb limit.
        state.in_body.set(true);
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| StoreError::Io {
            context: format!("reading the end of tar {}", path.display()),
            source: e,
        })?;
        check().map_err(|detail| StoreError::Invalid {
            path: path.display().to_string(),
            detail,
        })?;
        b.finish()
    }
}

/// What [`Guarded`] counts, shared with the import loop.
#[derive(Default)]
struct GuardState {
    /// Bytes read since the import loop last got an entry, outside entry bodies.
    since_entry: std::cell::Cell<u64>,
    /// Decompressed bytes read in all.
    total: std::cell::Cell<u64>,
    /// Whether the loop is reading an entry's body.
    in_body: std::cell::Cell<bool>,
    /// The last entry accepted, to name where a hostile header sits.
    last: std::cell::RefCell<Option<String>>,
}

/// Caps decompressed bytes (decompression bombs) and header bytes between entries
/// (enormous PAX records or GNU long names, which the tar reader would hold in memory).
struct Guarded<'r> {
    inner: Box<dyn Read + 'r>,
    state: std::rc::Rc<GuardState>,
    limit: u64,
}

impl Read for Guarded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let s = &self.state;
        s.total.set(s.total.get() + n as u64);
        if s.total.get() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the archive decompresses to more than {} bytes ({MAX_EXPANSION} times its compressed size, at least {MIN_BOMB_LIMIT}): a decompression bomb",
                    self.limit
                ),
            ));
        }
        if !s.in_body.get() {
            s.since_entry.set(s.since_entry.get() + n as u64);
            if s.since_entry.get() > MAX_HEADER_BYTES + 1024 {
                let after = match &*s.last.borrow() {
                    Some(last) => format!("after entry {last:?}"),
                    None => "at the start".into(),
                };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "more than {MAX_HEADER_BYTES} bytes of tar header data {after} (an enormous PAX record or long name)"
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn meta_of(md: &fs::Metadata, id_base: u32) -> Meta {
    let unshift = |id: u32| match id.checked_sub(id_base) {
        _ if id_base == 0 => id,
        Some(inner) if inner < 65536 => inner,
        _ => crate::NOBODY,
    };
    Meta {
        mode: md.mode() & MODE_MASK,
        uid: unshift(md.uid()),
        gid: unshift(md.gid()),
    }
}

/// Whether overlayfs marked directory `path` opaque (as root, or in a user namespace).
fn overlay_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            matches!(rustix::fs::lgetxattr(path, *name, &mut buf), Ok(n) if &buf[..n] == b"y")
        })
}

/// The store's whiteout: a character device 0/0.
fn whiteout_node() -> Node {
    Node::Leaf {
        meta: Meta {
            mode: 0,
            uid: 0,
            gid: 0,
        },
        size: 0,
        kind: EntryKind::CharDev { rdev: 0 },
    }
}

fn import_dir_rec(
    b: &mut Builder<'_>,
    top: &Path,
    dir: &Path,
    components: &mut Vec<Vec<u8>>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        components.push(name.as_bytes().to_vec());
        let shown = display(components);
        let refuse = |reason: String| StoreError::refused(top, shown.clone(), reason);
        if let Some(why) = bad_name_reason(name.as_bytes()) {
            return Err(refuse(why.into()));
        }
        let md = fs::symlink_metadata(&path).ctx(|| format!("reading {}", path.display()))?;
        let meta = meta_of(&md, b.options.id_base);
        let ft = md.file_type();
        let node = if ft.is_dir() {
            b.insert(components, Node::empty_dir(meta))
                .map_err(refuse)?;
            if b.options.whiteouts && overlay_opaque(&path) {
                components.push(OPAQUE_MARKER.to_vec());
                b.insert(components, whiteout_node()).map_err(refuse)?;
                components.pop();
            }
            import_dir_rec(b, top, &path, components, progress)?;
            components.pop();
            continue;
        } else if ft.is_file() {
            // O_NOFOLLOW: if the file was swapped for a symlink since lstat, fail, never follow.
            let fd = rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("opening {}", path.display()))?;
            let mut file = File::from(fd);
            let (hash, size, new) = b
                .store
                .write_object_from_file(&mut file)
                .ctx(|| format!("storing {}", path.display()))?;
            b.file_stored(size, new, progress);
            Node::Leaf {
                meta,
                size,
                kind: EntryKind::File(hash),
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).ctx(|| format!("reading link {}", path.display()))?;
            let target = target.as_os_str().as_bytes().to_vec();
            Node::Leaf {
                meta,
                size: 0,
                kind: EntryKind::Symlink(target),
            }
        } else if ft.is_char_device() && md.rdev() == 0 && b.options.whiteouts {
            // An overlayfs whiteout: the store's form, whoever created it.
            whiteout_node()
        } else if (ft.is_char_device() || ft.is_block_device()) && b.options.skip_devices {
            b.devices_left_out.push(shown);
            components.pop();
            continue;
        } else if ft.is_char_device() {
            Node::Leaf {
                meta,
                size: 0,
                kind: EntryKind::CharDev { rdev: md.rdev() },
            }
        } else if ft.is_block_device() {
            Node::Leaf {
                meta,
                size: 0,
                kind: EntryKind::BlockDev { rdev: md.rdev() },
            }
        } else if ft.is_fifo() {
            Node::Leaf {
                meta,
                size: 0,
                kind: EntryKind::Fifo,
            }
        } else {
            tracing::warn!(path = %path.display(), "skipping socket: a layer cannot hold one");
            components.pop();
            continue;
        };
        b.insert(components, node).map_err(refuse)?;
        components.pop();
    }
    Ok(())
}

fn import_tar_entry<R: Read>(
    b: &mut Builder<'_>,
    source: &Path,
    entry: &mut tar::Entry<'_, R>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let raw = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let refuse = |reason: String| StoreError::refused(source, shown.clone(), reason);
    let mut components = tar_components(&raw).map_err(refuse)?;
    if b.options.whiteouts
        && let Some(last) = components.last_mut()
        && let Some(hidden) = last.strip_prefix(b".wh.")
    {
        // OCI: `.wh..wh..opq` makes its directory opaque, `.wh.NAME` hides NAME below.
        if last.as_slice() != OPAQUE_MARKER {
            if hidden.is_empty() || bad_name_reason(hidden).is_some() {
                return Err(refuse("a whiteout must name an entry".into()));
            }
            *last = hidden.to_vec();
        }
        return b.insert(&components, whiteout_node()).map_err(refuse);
    }
    let header = entry.header();
    let mode = header
        .mode()
        .map_err(|e| refuse(format!("bad mode field: {e}")))?
        & MODE_MASK;
    let uid = id32(
        header
            .uid()
            .map_err(|e| refuse(format!("bad uid field: {e}")))?,
        "uid",
    )
    .map_err(refuse)?;
    let gid = id32(
        header
            .gid()
            .map_err(|e| refuse(format!("bad gid field: {e}")))?,
        "gid",
    )
    .map_err(refuse)?;
    let meta = Meta { mode, uid, gid };
    let size = header
        .size()
        .map_err(|e| refuse(format!("bad size field: {e}")))?;
    let rdev = || {
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
        rustix::fs::makedev(major, minor)
    };
    use tar::EntryType as T;
    let entry_type = header.entry_type();
    let node = match entry_type {
        T::Directory => Node::empty_dir(meta),
        T::Regular | T::Continuous => {
            if size > MAX_FILE_SIZE {
                return Err(refuse(format!(
                    "declared size {size} bytes exceeds the limit of {MAX_FILE_SIZE}"
                )));
            }
            let mut body = ExactReader {
                inner: &mut *entry,
                remaining: size,
            };
            let (hash, got, new) = b
                .store
                .write_object(&mut body)
                .map_err(|e| refuse(format!("reading its {size} bytes of content failed: {e}")))?;
            if got != size {
                return Err(refuse(format!(
                    "declared {size} bytes but the archive holds {got}"
                )));
            }
            b.file_stored(size, new, progress);
            Node::Leaf {
                meta,
                size,
                kind: EntryKind::File(hash),
            }
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("symlink without a target".into()))?
                .into_owned();
            if target.is_empty() || target.contains(&0) {
                return Err(refuse("symlink target is empty or contains NUL".into()));
            }
            Node::Leaf {
                meta,
                size: 0,
                kind: EntryKind::Symlink(target),
            }
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("hard link without a target".into()))?
                .into_owned();
            let target_components = tar_components(&target).map_err(|why| {
                refuse(format!(
                    "hard link target {:?}: {why}",
                    String::from_utf8_lossy(&target)
                ))
            })?;
            let (meta, size, hash) = b.lookup_file(&target_components).ok_or_else(|| {
                refuse(format!(
                    "hard link to {:?}, which is not a regular file seen earlier in the archive",
                    String::from_utf8_lossy(&target)
                ))
            })?;
            b.files_done += 1;
            Node::Leaf {
                meta,
                size,
                kind: EntryKind::File(hash),
            }
        }
        T::Char | T::Block if b.options.skip_devices => {
            b.devices_left_out.push(display(&components));
            return Ok(());
        }
        T::Char | T::Block if b.options.refuse_devices => {
            return Err(refuse(format!(
                "a {} device node; image layers may not hold devices",
                if entry_type == T::Char {
                    "character"
                } else {
                    "block"
                }
            )));
        }
        T::Char => Node::Leaf {
            meta,
            size: 0,
            kind: EntryKind::CharDev { rdev: rdev() },
        },
        T::Block => Node::Leaf {
            meta,
            size: 0,
            kind: EntryKind::BlockDev { rdev: rdev() },
        },
        T::Fifo => Node::Leaf {
            meta,
            size: 0,
            kind: EntryKind::Fifo,
        },
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return Ok(()),
        other => return Err(refuse(format!("unsupported tar entry type {other:?}"))),
    };
    if components.is_empty() && !matches!(node, Node::Dir { .. }) {
        return Err(refuse("the archive root must be a directory".into()));
    }
    b.insert(&components, node).map_err(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_paths_are_normalised_or_refused() {
        let ok = |p: &[u8]| tar_components(p).unwrap();
        assert_eq!(ok(b"./bin//sh"), vec![b"bin".to_vec(), b"sh".to_vec()]);
        assert!(ok(b"./").is_empty());
        assert!(
            tar_components(b"/etc/passwd")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(tar_components(b"a/../b").unwrap_err().contains(".."));
        assert!(tar_components(b"a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn compression_is_detected_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"bin/"), Compression::None);
    }
}
