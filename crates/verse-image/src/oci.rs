//! Import of the image formats other tools write: an OCI image layout (a tar, as `podman save
//! --format oci-archive` and `buildah push oci-archive:` write it, or a directory, as `skopeo
//! copy oci:DIR` writes it) and a `docker save` / `podman save` archive (one image or several,
//! `--multi-image-archive`).
//!
//! Nothing is unpacked: an archive is indexed once (each file's offset and size) and every
//! blob is read in place, so a 200 MiB image is read once, not copied first. The index
//! accepts only files, directories and links to another file of the same archive (podman
//! and docker write a repeated layer once and link it): a link is followed only to a regular
//! entry of the archive, never outside it, and a chain of links that loops is refused. Each
//! OCI blob must match its sha256 digest, checked while its layer is imported and before
//! anything is recorded; an uncompressed docker layer must match its config's diff_id. Layers
//! are imported in order with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) turned into the
//! store's, device nodes left out (every env gets its own /dev; how many, and which outside
//! /dev, is reported and kept in the layer's input), and the config's entrypoint, cmd, env,
//! user and workdir kept. When an archive holds several images, a tag picks one.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use verse_store::{Hash, ImportOptions, Manifest, ManifestLayer, RunConfig, Store};

use crate::ImageError;

/// Largest JSON document (index, manifest, config) read from an archive, against memory bombs.
const MAX_JSON: u64 = 16 << 20;
/// Longest chain of links followed inside an archive.
const MAX_LINK_HOPS: usize = 40;
/// Device nodes outside /dev named one by one in a layer's input; the rest are counted.
const MAX_NAMED_DEVICES: usize = 8;

fn invalid(file: &Path, what: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("{}: {what}", file.display()))
}

/// What an import of an image archive produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The stored manifest.
    pub manifest: Hash,
    /// The name the image had in the archive (its tag), when it had one.
    pub reference: Option<String>,
    /// Device nodes left out of the layers, by path, bottom layer first.
    pub devices_left_out: Vec<String>,
}

/// Imports the image archive or OCI layout directory at `file`; with several images in it,
/// `tag` picks one. `progress` gets a line per layer and per signature; `counts` the files
/// and bytes of the layer being imported.
pub fn import_archive(
    store: &Store,
    file: &Path,
    tag: Option<&str>,
    progress: &mut dyn FnMut(&str),
    counts: &mut dyn verse_store::Progress,
) -> Result<Imported, ImageError> {
    let source = Source::open(file)?;
    let image = select(&source, tag)?;
    import_image(store, &source, image, progress, counts)
}

pub(crate) fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Splits a path inside an archive into its components; `.` and empty ones dropped,
/// absolute paths, `..` and NUL refused.
fn components(file: &Path, raw: &[u8]) -> Result<Vec<String>, ImageError> {
    let shown = String::from_utf8_lossy(raw);
    if raw.starts_with(b"/") {
        return Err(invalid(file, format!("entry {shown:?}: absolute path")));
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(invalid(file, format!("entry {shown:?}: contains '..'"))),
            p if p.contains(&0) => {
                return Err(invalid(file, format!("entry {shown:?}: contains NUL")));
            }
            p => out.push(String::from_utf8_lossy(p).into_owned()),
        }
    }
    Ok(out)
}

/// Where an image's files are read from.
enum Source {
    /// An uncompressed tar, read in place: each regular entry (and each link, resolved to
    /// the entry it names) by offset and size.
    Tar {
        file: PathBuf,
        entries: BTreeMap<String, (u64, u64)>,
    },
    /// An OCI image layout directory.
    Dir { file: PathBuf, root: PathBuf },
}

impl Source {
    fn open(file: &Path) -> Result<Source, ImageError> {
        let md = fs::metadata(file).map_err(|e| ImageError::io(file, e))?;
        if md.is_dir() {
            let root = fs::canonicalize(file).map_err(|e| ImageError::io(file, e))?;
            return Ok(Source::Dir {
                file: file.to_path_buf(),
                root,
            });
        }
        Ok(Source::Tar {
            file: file.to_path_buf(),
            entries: index_tar(file)?,
        })
    }

    fn file(&self) -> &Path {
        match self {
            Source::Tar { file, .. } | Source::Dir { file, .. } => file,
        }
    }

    fn has(&self, rel: &str) -> bool {
        match self {
            Source::Tar { entries, .. } => entries.contains_key(rel),
            Source::Dir { root, .. } => root.join(rel).is_file(),
        }
    }

    /// Opens the file at `rel` (components already checked); returns it and its size.
    fn read(&self, rel: &str) -> Result<(Box<dyn Read>, u64), ImageError> {
        match self {
            Source::Tar { file, entries } => {
                let &(offset, size) = entries
                    .get(rel)
                    .ok_or_else(|| invalid(file, format!("the archive holds no {rel:?}")))?;
                let mut f = fs::File::open(file).map_err(|e| ImageError::io(file, e))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| ImageError::io(file, e))?;
                Ok((Box::new(f.take(size)), size))
            }
            Source::Dir { file, root } => {
                let path = root.join(rel);
                // Every component must stay inside the layout: no symlink out of it.
                let real = fs::canonicalize(&path).map_err(|e| ImageError::io(&path, e))?;
                if !real.starts_with(root) {
                    return Err(invalid(
                        file,
                        format!("{rel} leads outside the directory (to {})", real.display()),
                    ));
                }
                let f = fs::File::open(&real).map_err(|e| ImageError::io(&real, e))?;
                let md = f.metadata().map_err(|e| ImageError::io(&real, e))?;
                if !md.is_file() {
                    return Err(invalid(file, format!("{rel} is not a regular file")));
                }
                Ok((Box::new(f), md.len()))
            }
        }
    }

    fn read_json(&self, rel: &str, digest: Option<&str>) -> Result<Value, ImageError> {
        let file = self.file();
        let (reader, size) = self.read(rel)?;
        if size > MAX_JSON {
            return Err(invalid(
                file,
                format!("{rel} is {size} bytes; an image's JSON is at most {MAX_JSON}"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::io(file, e))?;
        if let Some(d) = digest {
            let actual = hex(&Sha256::digest(&bytes));
            if d.strip_prefix("sha256:") != Some(actual.as_str()) {
                return Err(invalid(
                    file,
                    format!("blob {d} has sha256:{actual}; the archive is corrupt"),
                ));
            }
        }
        serde_json::from_slice(&bytes).map_err(|e| invalid(file, format!("{rel}: {e}")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A link found while indexing: where it is, what it names, and whether it is a symlink
/// (relative to its own directory) or a hard link (relative to the archive root).
struct Link {
    at: Vec<String>,
    target: Vec<u8>,
    symlink: bool,
}

/// Reads every header of the tar at `file` (bodies are skipped by seeking) and returns its
/// regular files by path, links resolved.
fn index_tar(file: &Path) -> Result<BTreeMap<String, (u64, u64)>, ImageError> {
    let f = fs::File::open(file).map_err(|e| ImageError::io(file, e))?;
    let mut archive = tar::Archive::new(BufReader::new(f));
    let mut entries = BTreeMap::new();
    let mut links = Vec::new();
    let mut dirs = HashSet::new();
    for entry in archive
        .entries_with_seek()
        .map_err(|e| ImageError::io(file, e))?
    {
        let entry = entry.map_err(|e| ImageError::io(file, e))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let parts = components(file, &raw)?;
        let key = parts.join("/");
        let twice = || invalid(file, format!("entry {shown:?}: appears twice"));
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Directory => {
                dirs.insert(key);
            }
            T::Regular | T::Continuous => {
                let size = entry.header().size().map_err(|e| ImageError::io(file, e))?;
                if entries
                    .insert(key, (entry.raw_file_position(), size))
                    .is_some()
                {
                    return Err(twice());
                }
            }
            kind @ (T::Symlink | T::Link) => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(file, format!("entry {shown:?}: a link to nothing")))?
                    .into_owned();
                links.push(Link {
                    at: parts,
                    target,
                    symlink: kind == T::Symlink,
                });
            }
            T::XGlobalHeader | T::XHeader => {}
            other => {
                return Err(invalid(
                    file,
                    format!(
                        "entry {shown:?}: a {other:?} entry; image archives hold only files, directories and links to files of the same archive"
                    ),
                ));
            }
        }
    }
    let by_path: BTreeMap<String, &Link> = links.iter().map(|l| (l.at.join("/"), l)).collect();
    if by_path.len() != links.len() {
        let dup = links
            .iter()
            .find(|l| links.iter().filter(|o| o.at == l.at).count() > 1)
            .expect("a repeated link");
        return Err(invalid(
            file,
            format!("entry {:?}: appears twice", dup.at.join("/")),
        ));
    }
    let mut resolved = Vec::new();
    for (key, link) in &by_path {
        let target = resolve_link(file, key, link, &by_path, &entries)?;
        if entries.contains_key(key) || dirs.contains(key) {
            return Err(invalid(file, format!("entry {key:?}: appears twice")));
        }
        resolved.push((key.clone(), entries[&target]));
    }
    entries.extend(resolved);
    Ok(entries)
}

/// Follows `link` (and any link it names) to a regular entry of the archive.
fn resolve_link(
    file: &Path,
    key: &str,
    link: &Link,
    links: &BTreeMap<String, &Link>,
    entries: &BTreeMap<String, (u64, u64)>,
) -> Result<String, ImageError> {
    let refuse = |why: String| {
        invalid(
            file,
            format!("entry {key:?}: a {} {why}", kind_name(link.symlink)),
        )
    };
    let mut seen = HashSet::new();
    let mut cur = link;
    for _ in 0..MAX_LINK_HOPS {
        let shown = String::from_utf8_lossy(&cur.target).into_owned();
        if cur.target.starts_with(b"/") {
            return Err(refuse(format!(
                "to {shown:?}, outside the archive; only links to another file of the archive are followed"
            )));
        }
        let mut path: Vec<String> = if cur.symlink {
            cur.at[..cur.at.len() - 1].to_vec()
        } else {
            Vec::new()
        };
        for part in cur.target.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if path.pop().is_none() {
                        return Err(refuse(format!(
                            "to {shown:?}, outside the archive; only links to another file of the archive are followed"
                        )));
                    }
                }
                p if p.contains(&0) => return Err(refuse("whose target contains NUL".into())),
                p => path.push(String::from_utf8_lossy(p).into_owned()),
            }
        }
        let next = path.join("/");
        if entries.contains_key(&next) {
            return Ok(next);
        }
        if !seen.insert(next.clone()) {
            return Err(refuse(format!("in a loop of links (through {next:?})")));
        }
        cur = links.get(&next).ok_or_else(|| {
            refuse(format!(
                "to {shown:?}, which is not a file of the archive; only links to another file of the archive are followed"
            ))
        })?;
    }
    Err(refuse(format!(
        "at the start of a chain of more than {MAX_LINK_HOPS} links"
    )))
}

fn kind_name(symlink: bool) -> &'static str {
    if symlink { "symlink" } else { "hard link" }
}

/// One image of an archive, chosen.
struct Chosen {
    reference: Option<String>,
    /// Layer blobs bottom first: path in the source, OCI digest, docker diff_id.
    layers: Vec<(String, Option<String>)>,
    config: Value,
    /// The diff_ids of the config (checked against uncompressed docker layers).
    diff_ids: Vec<String>,
}

/// A reference as the tools write it, reduced for comparison: `docker.io/library/` and
/// `localhost/` dropped, `:latest` added when there is no tag.
fn normalize(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .or_else(|| reference.strip_prefix("localhost/"))
        .unwrap_or(reference);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

fn matches(reference: &str, wanted: &str) -> bool {
    reference == wanted || normalize(reference) == normalize(wanted)
}

/// The images of the source (each with the references it goes by), then the one asked for.
fn select(source: &Source, tag: Option<&str>) -> Result<Chosen, ImageError> {
    let file = source.file();
    // (references, how to load it)
    let mut candidates: Vec<(Vec<String>, Candidate)> = Vec::new();
    if source.has("index.json") {
        let index = source.read_json("index.json", None)?;
        collect_oci(source, &index, None, &mut candidates, 0)?;
    } else if source.has("manifest.json") {
        let m = source.read_json("manifest.json", None)?;
        let list = m
            .as_array()
            .ok_or_else(|| invalid(file, "manifest.json is not a list of images"))?;
        for (i, entry) in list.iter().enumerate() {
            candidates.push((strings(&entry["RepoTags"]), Candidate::Docker(i)));
        }
        if candidates.is_empty() {
            return Err(invalid(file, "manifest.json lists no image"));
        }
    } else {
        return Err(invalid(
            file,
            "neither an OCI image layout (index.json) nor a docker/podman save archive (manifest.json)",
        ));
    }
    let list = || {
        candidates
            .iter()
            .map(|(refs, _)| {
                if refs.is_empty() {
                    "(untagged)".to_string()
                } else {
                    refs.join(" = ")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (reference, candidate) = match tag {
        Some(t) => {
            let (refs, c) = candidates
                .iter()
                .find(|(refs, _)| refs.iter().any(|r| matches(r, t)))
                .ok_or_else(|| {
                    invalid(
                        file,
                        format!("no image tagged {t:?} in the archive; it holds: {}", list()),
                    )
                })?;
            let r = refs.iter().find(|r| matches(r, t)).cloned();
            (r, c)
        }
        None if candidates.len() == 1 => (candidates[0].0.first().cloned(), &candidates[0].1),
        None => {
            return Err(invalid(
                file,
                format!(
                    "the archive holds {} images: {}; pick one with FILE:TAG",
                    candidates.len(),
                    list()
                ),
            ));
        }
    };
    load(source, candidate, reference)
}

enum Candidate {
    /// An OCI manifest, by digest.
    Oci(String),
    /// The n-th entry of a docker manifest.json.
    Docker(usize),
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Walks an OCI index (and the indexes it names) for image manifests; a nested index
/// (several platforms) gives the manifest for this host's platform.
fn collect_oci(
    source: &Source,
    index: &Value,
    inherited: Option<&str>,
    out: &mut Vec<(Vec<String>, Candidate)>,
    depth: usize,
) -> Result<(), ImageError> {
    let file = source.file();
    if depth > 4 {
        return Err(invalid(file, "indexes nested more than 4 deep"));
    }
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| invalid(file, "an index lists no manifests"))?;
    let nested = depth > 0;
    let arch = crate::oci_arch();
    for m in manifests {
        let digest = m["digest"]
            .as_str()
            .ok_or_else(|| invalid(file, "an index entry without a digest"))?;
        if nested {
            let platform = &m["platform"];
            let fits = platform.is_null()
                || (platform["os"] == "linux" && platform["architecture"] == arch.as_str());
            if !fits {
                continue;
            }
        }
        let reference = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .or(inherited);
        let media = m["mediaType"].as_str().unwrap_or_default();
        if INDEX_TYPES.contains(&media) {
            let inner = source.read_json(&blob_rel(file, digest)?, Some(digest))?;
            collect_oci(source, &inner, reference, out, depth + 1)?;
            if nested {
                break;
            }
            continue;
        }
        out.push((
            reference.map(String::from).into_iter().collect(),
            Candidate::Oci(digest.to_string()),
        ));
        if nested {
            break;
        }
    }
    if depth == 0 && out.is_empty() {
        return Err(invalid(
            file,
            format!("index.json names no image for linux/{arch}"),
        ));
    }
    Ok(())
}

fn blob_rel(file: &Path, digest: &str) -> Result<String, ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| invalid(file, format!("unsupported digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn load(
    source: &Source,
    candidate: &Candidate,
    reference: Option<String>,
) -> Result<Chosen, ImageError> {
    let file = source.file();
    let (layers, config) = match candidate {
        Candidate::Oci(digest) => {
            let manifest = source.read_json(&blob_rel(file, digest)?, Some(digest))?;
            let layers = manifest["layers"]
                .as_array()
                .ok_or_else(|| invalid(file, "the OCI manifest lists no layers"))?
                .iter()
                .map(|l| {
                    let d = l["digest"]
                        .as_str()
                        .ok_or_else(|| invalid(file, "a layer without a digest"))?;
                    Ok((blob_rel(file, d)?, Some(d.to_string())))
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            let cd = manifest["config"]["digest"]
                .as_str()
                .ok_or_else(|| invalid(file, "the OCI manifest has no config"))?;
            (layers, source.read_json(&blob_rel(file, cd)?, Some(cd))?)
        }
        Candidate::Docker(i) => {
            let m = source.read_json("manifest.json", None)?;
            let entry = &m[*i];
            let rel = |s: &str| -> Result<String, ImageError> {
                Ok(components(file, s.as_bytes())
                    .map_err(|_| invalid(file, format!("manifest.json names {s:?}")))?
                    .join("/"))
            };
            let layers = strings(&entry["Layers"])
                .iter()
                .map(|s| Ok((rel(s)?, None)))
                .collect::<Result<Vec<_>, ImageError>>()?;
            let config = entry["Config"]
                .as_str()
                .ok_or_else(|| invalid(file, "manifest.json has no Config"))?;
            (layers, source.read_json(&rel(config)?, None)?)
        }
    };
    let diff_ids = strings(&config["rootfs"]["diff_ids"]);
    Ok(Chosen {
        reference,
        layers,
        config,
        diff_ids,
    })
}

/// What a layer's bytes were, seen while the store imported them.
#[derive(Default)]
struct Seen {
    hasher: Sha256,
    bytes: u64,
    magic: Vec<u8>,
}

/// Hashes what passes through, for the digest check after the store read it all.
struct Hashing<R> {
    inner: R,
    seen: Rc<RefCell<Seen>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.seen.borrow_mut();
        s.hasher.update(&buf[..n]);
        s.bytes += n as u64;
        if s.magic.len() < 4 {
            let want = (4 - s.magic.len()).min(n);
            s.magic.extend_from_slice(&buf[..want]);
        }
        Ok(n)
    }
}

fn run_config(c: &Value) -> RunConfig {
    RunConfig {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"])
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        user: c["User"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
        workdir: c["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
        labels: labels(&c["Labels"]),
    }
}

/// The config's `Labels` (string values only, as the OCI spec has them), without the
/// `org.verse.manifest` label an exported Verse image carries: that names the manifest it was
/// exported from, not the one this import makes, and export writes it afresh.
fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != crate::export::MANIFEST_LABEL)
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// How the device nodes left out of a layer are told: a count, and the paths outside /dev.
pub(crate) fn devices_note(paths: &[String]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    let outside: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with("/dev/"))
        .collect();
    let under = paths.len() - outside.len();
    let mut note = format!("left out {} device node(s)", paths.len());
    if under > 0 {
        note.push_str(&format!(": {under} under /dev"));
    }
    if !outside.is_empty() {
        note.push_str(if under > 0 { ", " } else { ": " });
        note.push_str(&outside[..outside.len().min(MAX_NAMED_DEVICES)].join(" "));
        if outside.len() > MAX_NAMED_DEVICES {
            note.push_str(&format!(
                " and {} more outside /dev",
                outside.len() - MAX_NAMED_DEVICES
            ));
        }
    }
    Some(note)
}

fn import_image(
    store: &Store,
    source: &Source,
    image: Chosen,
    progress: &mut dyn FnMut(&str),
    counts: &mut dyn verse_store::Progress,
) -> Result<Imported, ImageError> {
    let file = source.file();
    let verse_export = source.has("verse/manifest.json");
    let mut manifest = Manifest {
        layers: Vec::new(),
        config: run_config(&image.config["config"]),
    };
    let mut devices = Vec::new();
    let total = image.layers.len();
    for (i, (rel, digest)) in image.layers.iter().enumerate() {
        let (reader, size) = source.read(rel)?;
        let seen = Rc::new(RefCell::new(Seen::default()));
        let mut hashing = Hashing {
            inner: reader,
            seen: Rc::clone(&seen),
        };
        let diff_id = image.diff_ids.get(i).cloned();
        let mut check = || {
            let s = seen.borrow();
            if s.bytes != size {
                return Err(format!(
                    "the archive ends {} bytes into this {size}-byte layer",
                    s.bytes
                ));
            }
            let actual = format!("sha256:{}", hex(&s.hasher.clone().finalize()));
            let compressed =
                verse_store::Compression::detect(&s.magic) != verse_store::Compression::None;
            match (digest, &diff_id) {
                (Some(d), _) if *d != actual => {
                    Err(format!("blob {d} has {actual}; the archive is corrupt"))
                }
                (None, Some(id)) if !compressed && *id != actual => Err(format!(
                    "layer {} has {actual} but the config's diff_id is {id}; the archive is corrupt",
                    i + 1
                )),
                _ => Ok(()),
            }
        };
        let options = ImportOptions {
            id_base: 0,
            whiteouts: true,
            // A Verse export keeps what its layers hold (a base system's /dev nodes are data,
            // never created in a checkout), so every layer root comes out the same.
            refuse_devices: false,
            skip_devices: !verse_export,
        };
        let name = file.join(rel);
        let imported =
            store.import_tar_stream(&mut hashing, &name, size, options, counts, &mut check);
        let layer = match (imported, digest) {
            (Ok(layer), _) => layer,
            // A blob that fails to parse may simply be corrupt: say so when its digest
            // shows it, rather than what the corruption made of the tar.
            (Err(e), Some(d)) => {
                let _ = io::copy(&mut hashing, &mut io::sink());
                let actual = format!("sha256:{}", hex(&seen.borrow().hasher.clone().finalize()));
                if *d != actual {
                    return Err(invalid(
                        file,
                        format!("blob {d} has {actual}; the archive is corrupt"),
                    ));
                }
                return Err(e.into());
            }
            (Err(e), None) => return Err(e.into()),
        };
        let mut input = match digest {
            Some(d) => format!("oci layer {d}"),
            None => format!("docker layer {rel}"),
        };
        if let Some(note) = devices_note(&layer.devices_left_out) {
            input.push_str(&format!(" ({note})"));
        }
        progress(&format!(
            "layer {}/{total}: {} files, {} bytes, {} new{}",
            i + 1,
            layer.files,
            layer.size,
            layer.new_bytes,
            devices_note(&layer.devices_left_out)
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        ));
        devices.extend(layer.devices_left_out);
        manifest.layers.push(ManifestLayer {
            root: layer.root,
            input,
        });
    }
    let h = if verse_export {
        adopt_verse_manifest(store, source, &manifest, progress)?
    } else {
        store.put_manifest(&manifest)?
    };
    Ok(Imported {
        manifest: h,
        reference: image.reference,
        devices_left_out: devices,
    })
}

/// A `verse image export` archive: the layers just imported must be exactly the ones its
/// manifest names (same roots, in order); then that manifest is stored as it was, so its
/// hash and signatures survive, and each signature is kept if it verifies.
fn adopt_verse_manifest(
    store: &Store,
    source: &Source,
    imported: &Manifest,
    progress: &mut dyn FnMut(&str),
) -> Result<Hash, ImageError> {
    let file = source.file();
    let (mut reader, _) = source.read("verse/manifest.json")?;
    let mut bytes = Vec::new();
    (&mut reader)
        .take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io(file, e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(file, format!("verse/manifest.json: {e}")))?;
    if manifest.canonical_bytes() != bytes {
        return Err(invalid(
            file,
            "verse/manifest.json is not in canonical form",
        ));
    }
    if manifest.layers.len() != imported.layers.len() {
        return Err(invalid(
            file,
            format!(
                "verse/manifest.json names {} layers but the OCI manifest has {}",
                manifest.layers.len(),
                imported.layers.len()
            ),
        ));
    }
    for (i, (want, got)) in manifest.layers.iter().zip(&imported.layers).enumerate() {
        if want.root != got.root {
            return Err(invalid(
                file,
                format!(
                    "layer {} ({}): its content has root {} but verse/manifest.json names {}; the archive was altered",
                    i + 1,
                    want.input,
                    got.root,
                    want.root
                ),
            ));
        }
    }
    let h = store.put_manifest(&manifest)?;
    let sigs = signature_files(source);
    for (key_hex, rel) in sigs {
        let key = format!("ed25519:{key_hex}");
        let mut text = String::new();
        if let Ok((r, _)) = source.read(&rel) {
            let _ = r.take(4096).read_to_string(&mut text);
        }
        if store.add_signature(&h, &key, &text)? {
            progress(&format!("signature by {key}: valid, kept"));
        } else {
            progress(&format!(
                "signature by {key}: does not verify against manifest {h}; dropped"
            ));
        }
    }
    Ok(h)
}

/// The `verse/signatures/KEY` files of a source: (key hex, path).
fn signature_files(source: &Source) -> Vec<(String, String)> {
    let named = |k: &str| (k.to_string(), format!("verse/signatures/{k}"));
    match source {
        Source::Tar { entries, .. } => entries
            .keys()
            .filter_map(|k| k.strip_prefix("verse/signatures/"))
            .filter(|k| !k.contains('/'))
            .map(named)
            .collect(),
        Source::Dir { root, .. } => fs::read_dir(root.join("verse/signatures"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| named(&e.file_name().to_string_lossy()))
            .collect(),
    }
}

/// Whether `path` is an image archive (an uncompressed tar holding an OCI layout or a
/// docker/podman save archive) or an OCI image layout directory, rather than a rootfs.
pub fn is_image_archive(path: &Path) -> bool {
    if path.is_dir() {
        return path.join("oci-layout").is_file() && path.join("index.json").is_file();
    }
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    let mut archive = tar::Archive::new(BufReader::new(f));
    let Ok(entries) = archive.entries_with_seek() else {
        return false;
    };
    for entry in entries.take(4096) {
        let Ok(entry) = entry else { return false };
        let path = entry.path_bytes();
        let name = path.strip_prefix(b"./").unwrap_or(&path);
        if name == b"oci-layout" || name == b"index.json" || name == b"manifest.json" {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_match_as_the_tools_write_them() {
        assert!(matches("localhost/app:1", "app:1"));
        assert!(matches("docker.io/library/debian:latest", "debian"));
        assert!(matches("app", "app:latest"));
        assert!(!matches("localhost/app:1", "app:2"));
        assert!(!matches("localhost/other:1", "app:1"));
    }

    #[test]
    fn labels_come_from_the_config_without_verse_s_own() {
        let c = serde_json::json!({"Labels": {
            "a": "b",
            (crate::export::MANIFEST_LABEL): "af13",
            "not.a.string": 1,
        }});
        let config = run_config(&c);
        assert_eq!(
            config.labels.into_iter().collect::<Vec<_>>(),
            [("a".to_string(), "b".to_string())]
        );
        assert!(
            run_config(&serde_json::json!({"Labels": null}))
                .labels
                .is_empty()
        );
    }

    #[test]
    fn device_notes_count_dev_and_name_the_rest() {
        assert_eq!(devices_note(&[]), None);
        let paths = ["/dev/null", "/dev/full", "/opt/sda"].map(String::from);
        assert_eq!(
            devices_note(&paths).unwrap(),
            "left out 3 device node(s): 2 under /dev, /opt/sda"
        );
    }
}
