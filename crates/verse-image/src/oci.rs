//! Import of an OCI image layout or a `docker save` / `podman save` archive.
//!
//! The outer archive is unpacked into a private temp dir accepting only plain files and
//! directories with safe relative paths; each layer blob must match its sha256 digest; layers
//! are imported in order (bottom first) with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`)
//! turned into the store's; the config's entrypoint, cmd, env, user and workdir are kept.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use verse_store::{Hash, ImportOptions, Manifest, ManifestLayer, RunConfig, Store};

use crate::ImageError;

/// Largest outer archive content accepted (sum of its files), against decompression bombs.
const MAX_TOTAL: u64 = 64 << 30;

fn invalid(file: &Path, what: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("{}: {what}", file.display()))
}

/// Imports the OCI layout or docker-save archive at `file`; returns the stored manifest.
/// `progress` gets a line per layer and per signature; `counts` the files and bytes of the
/// layer being imported.
pub fn import_archive(
    store: &Store,
    file: &Path,
    progress: &mut dyn FnMut(&str),
    counts: &mut dyn verse_store::Progress,
) -> Result<Hash, ImageError> {
    let dir = store
        .dir()
        .join("tmp")
        .join(format!("oci.{}.{}", std::process::id(), unique()));
    fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
    let result = (|| {
        unpack(file, &dir)?;
        import_unpacked(store, file, &dir, progress, counts)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

pub(crate) fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn unpack(file: &Path, dir: &Path) -> Result<(), ImageError> {
    let f = fs::File::open(file).map_err(|e| ImageError::io(file, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| ImageError::io(file, e))? {
        let mut entry = entry.map_err(|e| ImageError::io(file, e))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let mut rel = PathBuf::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(invalid(file, format!("entry {shown:?}: contains '..'"))),
                p if p.contains(&0) => {
                    return Err(invalid(file, format!("entry {shown:?}: contains NUL")));
                }
                p => rel.push(String::from_utf8_lossy(p).as_ref()),
            }
        }
        if raw.starts_with(b"/") {
            return Err(invalid(file, format!("entry {shown:?}: absolute path")));
        }
        let target = dir.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(|e| ImageError::io(&target, e))?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().unwrap_or(u64::MAX);
                total = total.saturating_add(size);
                if total > MAX_TOTAL {
                    return Err(invalid(
                        file,
                        format!("entry {shown:?}: the archive holds more than {MAX_TOTAL} bytes"),
                    ));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
                }
                if target.exists() {
                    return Err(invalid(file, format!("entry {shown:?}: appears twice")));
                }
                let mut out = fs::File::create(&target).map_err(|e| ImageError::io(&target, e))?;
                let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
                    .map_err(|e| ImageError::io(&target, e))?;
                if copied != size {
                    return Err(invalid(file, format!("entry {shown:?}: truncated")));
                }
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(invalid(
                    file,
                    format!(
                        "entry {shown:?}: a {other:?} entry; image archives hold only files and directories"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn read_json(file: &Path, path: &Path) -> Result<Value, ImageError> {
    let bytes = fs::read(path).map_err(|e| ImageError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(file, format!("{}: {e}", path.display())))
}

fn blob_path(file: &Path, dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| invalid(file, format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn check_digest(file: &Path, path: &Path, digest: &str) -> Result<(), ImageError> {
    let mut f = fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| ImageError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest.strip_prefix("sha256:") != Some(actual.as_str()) {
        return Err(invalid(
            file,
            format!("blob {digest} has sha256:{actual}; the archive is corrupt"),
        ));
    }
    Ok(())
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

fn import_unpacked(
    store: &Store,
    file: &Path,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
    counts: &mut dyn verse_store::Progress,
) -> Result<Hash, ImageError> {
    // (layer blob paths with their digests if known, config path)
    let (layers, config): (Vec<(PathBuf, Option<String>)>, PathBuf) = if dir
        .join("index.json")
        .is_file()
    {
        let mut manifest = read_json(file, &dir.join("index.json"))?;
        // An index may point at another index; follow at most a few levels.
        for _ in 0..4 {
            if manifest.get("layers").is_some() {
                break;
            }
            let digest = manifest["manifests"][0]["digest"]
                .as_str()
                .ok_or_else(|| invalid(file, "index.json names no manifest"))?
                .to_string();
            let path = blob_path(file, dir, &digest)?;
            check_digest(file, &path, &digest)?;
            manifest = read_json(file, &path)?;
        }
        let layers = manifest["layers"]
            .as_array()
            .ok_or_else(|| invalid(file, "the OCI manifest lists no layers"))?
            .iter()
            .map(|l| {
                let d = l["digest"]
                    .as_str()
                    .ok_or_else(|| invalid(file, "a layer without a digest"))?;
                Ok((blob_path(file, dir, d)?, Some(d.to_string())))
            })
            .collect::<Result<Vec<_>, ImageError>>()?;
        let cd = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| invalid(file, "the OCI manifest has no config"))?;
        let config = blob_path(file, dir, cd)?;
        check_digest(file, &config, cd)?;
        (layers, config)
    } else if dir.join("manifest.json").is_file() {
        let m = read_json(file, &dir.join("manifest.json"))?;
        let first = &m[0];
        let safe = |s: &str| -> Result<PathBuf, ImageError> {
            if s.starts_with('/') || s.split('/').any(|p| p == "..") {
                return Err(invalid(file, format!("manifest.json names {s:?}")));
            }
            Ok(dir.join(s))
        };
        let layers = strings(&first["Layers"])
            .iter()
            .map(|s| Ok((safe(s)?, None)))
            .collect::<Result<Vec<_>, ImageError>>()?;
        let config = safe(
            first["Config"]
                .as_str()
                .ok_or_else(|| invalid(file, "manifest.json has no Config"))?,
        )?;
        (layers, config)
    } else {
        return Err(invalid(
            file,
            "neither an OCI image layout (index.json) nor a docker/podman save archive (manifest.json)",
        ));
    };
    let verse_export = dir.join("verse/manifest.json").is_file();
    let cfg = read_json(file, &config)?;
    let c = &cfg["config"];
    let run = RunConfig {
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
    };
    let mut manifest = Manifest {
        layers: Vec::new(),
        config: run,
    };
    let total = layers.len();
    for (i, (path, digest)) in layers.iter().enumerate() {
        if let Some(d) = digest {
            check_digest(file, path, d)?;
        }
        let options = ImportOptions {
            id_base: 0,
            whiteouts: true,
            // A Verse export may carry a base system's /dev nodes; they are recorded as data
            // and never created in a checkout either way.
            refuse_devices: !verse_export,
        };
        let layer = store.import_tar_with(path, options, counts)?;
        let input = match digest {
            Some(d) => format!("oci layer {d}"),
            None => format!(
                "docker layer {}",
                path.strip_prefix(dir).unwrap_or(path).display()
            ),
        };
        progress(&format!(
            "layer {}/{total}: {} files, {} bytes, {} new",
            i + 1,
            layer.files,
            layer.size,
            layer.new_bytes
        ));
        manifest.layers.push(ManifestLayer {
            root: layer.root,
            input,
        });
    }
    if verse_export {
        return adopt_verse_manifest(store, file, dir, &manifest, progress);
    }
    Ok(store.put_manifest(&manifest)?)
}

/// A `verse image export` archive: the layers just imported must be exactly the ones its
/// manifest names (same roots, in order); then that manifest is stored as it was, so its
/// hash and signatures survive, and each signature is kept if it verifies.
fn adopt_verse_manifest(
    store: &Store,
    file: &Path,
    dir: &Path,
    imported: &Manifest,
    progress: &mut dyn FnMut(&str),
) -> Result<Hash, ImageError> {
    let path = dir.join("verse/manifest.json");
    let bytes = fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
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
    let sigs = dir.join("verse/signatures");
    for entry in fs::read_dir(&sigs).into_iter().flatten().flatten() {
        let key = format!("ed25519:{}", entry.file_name().to_string_lossy());
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
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

/// Whether `file` is an (uncompressed) tar holding an OCI layout or a docker/podman save
/// archive, rather than a plain rootfs tar.
pub fn is_image_archive(file: &Path) -> bool {
    let Ok(f) = fs::File::open(file) else {
        return false;
    };
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let Ok(entries) = archive.entries() else {
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
