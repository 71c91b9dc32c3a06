//! `verse image export`: an image as a tar other tools load (`podman load`, `docker load`,
//! `skopeo`), in one of two formats.
//!
//! `oci-archive` (the default) is an OCI image layout plus Verse's own manifest and
//! signatures under `verse/`, so importing it on another host gives the same manifest hash
//! (every layer root is recomputed from the content and compared) and the signatures still
//! verify:
//!
//! ```text
//! oci-layout, index.json, blobs/sha256/<digest>   the OCI image (uncompressed layers)
//! verse/manifest.json                             the manifest's canonical bytes
//! verse/signatures/<public key hex>               ed25519 signatures of its hash
//! ```
//!
//! `docker-archive` is what `docker save` writes, for tools that read only that:
//!
//! ```text
//! manifest.json                                   [{Config, RepoTags, Layers}]
//! <config digest>.json, <layer digest>.tar        the config and the uncompressed layers
//! ```
//!
//! Either way the image is tagged `localhost/NAME:latest` (or `localhost/NAME:TAG` when the
//! name has a tag), so `podman load` names it as `verse image ls` does.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};
use verse_store::{Hash, RunConfig, Store};

use crate::ImageError;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub layers: usize,
    pub files: u64,
    /// Size of the archive.
    pub bytes: u64,
    pub signatures: usize,
}

/// Writes into a file while hashing with sha256.
struct HashingFile {
    file: fs::File,
    hasher: Sha256,
    len: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The label (and manifest annotation) naming the Verse manifest an archive was exported from.
pub(crate) const MANIFEST_LABEL: &str = "org.verse.manifest";

/// The image's own labels plus [`MANIFEST_LABEL`], which is Verse's to write: an image label of
/// that name (imported from elsewhere) gives way to the manifest actually exported.
fn labels(c: &RunConfig, h: &Hash) -> BTreeMap<String, String> {
    let mut labels = c.labels.clone();
    labels.insert(MANIFEST_LABEL.to_string(), h.to_hex());
    labels
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The layout an export writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// An OCI image layout tar with Verse's manifest and signatures.
    #[default]
    OciArchive,
    /// A `docker save` archive.
    DockerArchive,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oci-archive" => Ok(ExportFormat::OciArchive),
            "docker-archive" => Ok(ExportFormat::DockerArchive),
            other => Err(format!(
                "unknown export format `{other}`: use oci-archive or docker-archive"
            )),
        }
    }
}

/// The reference an exported image carries: `localhost/NAME:latest`, or `localhost/NAME:TAG`.
pub fn export_reference(name: &str) -> String {
    if name.contains(':') {
        format!("localhost/{name}")
    } else {
        format!("localhost/{name}:latest")
    }
}

/// Exports image `name` (manifest `h`) to `file` in `format`, atomically (written to
/// `FILE.part` first).
pub fn export_archive(
    store: &Store,
    name: &str,
    h: &Hash,
    file: &Path,
    format: ExportFormat,
    progress: &mut dyn FnMut(&str),
) -> Result<Exported, ImageError> {
    let manifest = store.manifest(h)?;
    let dir = store.dir().join("tmp").join(format!(
        "export.{}.{}",
        std::process::id(),
        crate::oci::unique()
    ));
    fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
    let part = file.with_extension("part");
    let result = (|| {
        let mut blobs = Vec::new();
        let mut layers = Vec::new();
        let mut files = 0;
        let total = manifest.layers.len();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let path = dir.join(format!("layer{i}.tar"));
            let f = fs::File::create(&path).map_err(|e| ImageError::io(&path, e))?;
            let mut out = HashingFile {
                file: f,
                hasher: Sha256::new(),
                len: 0,
            };
            let (n, bytes) = store.export_layer_tar(&layer.root, &mut out)?;
            out.flush().map_err(|e| ImageError::io(&path, e))?;
            files += n;
            let digest = hex(&out.hasher.finalize());
            progress(&format!(
                "layer {}/{total}: {n} files, {bytes} bytes ({})",
                i + 1,
                layer.input
            ));
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{digest}"),
                "size": out.len,
                "annotations": {"org.verse.layer.root": layer.root.to_hex(),
                                "org.verse.layer.input": layer.input},
            }));
            blobs.push((digest, Blob::File(path)));
        }
        let diff_ids: Vec<_> = layers.iter().map(|l| l["digest"].clone()).collect();
        let c = &manifest.config;
        let history: Vec<_> = manifest
            .layers
            .iter()
            .map(|l| json!({"created": "1970-01-01T00:00:00Z", "created_by": l.input}))
            .collect();
        let config = serde_json::to_vec(&json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": crate::oci_arch(),
            "os": "linux",
            "config": {
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "Env": c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "User": c.user.clone().unwrap_or_default(),
                "WorkingDir": c.workdir.clone().unwrap_or_default(),
                "Labels": labels(c, h),
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .expect("json");
        let reference = export_reference(name);
        let config_digest = hex(&Sha256::digest(&config));
        let oci_manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{config_digest}"), "size": config.len()},
            "layers": layers,
            "annotations": {(MANIFEST_LABEL): h.to_hex()},
        }))
        .expect("json");
        let manifest_digest = hex(&Sha256::digest(&oci_manifest));
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": format!("sha256:{manifest_digest}"),
                           "size": oci_manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": reference}}],
        }))
        .expect("json");
        let signatures = store.signatures(h)?;
        let layer_names: Vec<String> = blobs.iter().map(|(d, _)| format!("{d}.tar")).collect();
        blobs.push((config_digest, Blob::Bytes(config)));
        blobs.push((manifest_digest, Blob::Bytes(oci_manifest)));

        let out = fs::File::create(&part).map_err(|e| ImageError::io(&part, e))?;
        let mut tar = tar::Builder::new(io::BufWriter::new(out));
        let io_err = |e| ImageError::io(&part, e);
        let add = append_bytes;
        let mut signed = 0;
        match format {
            ExportFormat::OciArchive => {
                add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
                    .map_err(io_err)?;
                add(&mut tar, "index.json", &index).map_err(io_err)?;
                for (digest, blob) in &blobs {
                    blob.append(&mut tar, &format!("blobs/sha256/{digest}"))
                        .map_err(io_err)?;
                }
                add(&mut tar, "verse/manifest.json", &manifest.canonical_bytes())
                    .map_err(io_err)?;
                for (info, sig) in &signatures {
                    if info.valid {
                        let key = info.key.trim_start_matches("ed25519:");
                        add(&mut tar, &format!("verse/signatures/{key}"), sig.as_bytes())
                            .map_err(io_err)?;
                        signed += 1;
                    }
                }
            }
            ExportFormat::DockerArchive => {
                let (config_digest, config) = &blobs[total];
                let config_name = format!("{config_digest}.json");
                config.append(&mut tar, &config_name).map_err(io_err)?;
                for ((_, blob), name) in blobs[..total].iter().zip(&layer_names) {
                    blob.append(&mut tar, name).map_err(io_err)?;
                }
                let docker = serde_json::to_vec(&json!([{
                    "Config": config_name,
                    "RepoTags": [reference],
                    "Layers": layer_names,
                }]))
                .expect("json");
                add(&mut tar, "manifest.json", &docker).map_err(io_err)?;
            }
        }
        let out = tar.into_inner().map_err(io_err)?;
        let out = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        out.sync_all().map_err(io_err)?;
        let bytes = out.metadata().map_err(io_err)?.len();
        fs::rename(&part, file).map_err(|e| ImageError::io(file, e))?;
        Ok(Exported {
            layers: total,
            files,
            bytes,
            signatures: signed,
        })
    })();
    let _ = fs::remove_dir_all(&dir);
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

enum Blob {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

impl Blob {
    fn append<W: Write>(&self, tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
        match self {
            Blob::Bytes(b) => append_bytes(tar, path, b),
            Blob::File(f) => {
                let mut src = fs::File::open(f)?;
                tar.append_file(path, &mut src)
            }
        }
    }
}

/// Adds `bytes` as a 0644 file with time 0 (the same image gives the same archive).
fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_labels_keep_the_image_s_and_add_the_manifest() {
        let h = Hash::of(b"manifest");
        let mut c = RunConfig::default();
        c.labels.insert("a".into(), "b".into());
        c.labels.insert(MANIFEST_LABEL.into(), "stale".into());
        let labels = labels(&c, &h);
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [
                ("a".to_string(), "b".to_string()),
                (MANIFEST_LABEL.to_string(), h.to_hex()),
            ]
        );
    }
}
