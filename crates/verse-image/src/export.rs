//! `verse image export`: an image as an OCI image layout tar that any OCI tool can read, plus
//! Verse's own manifest and signatures under `verse/`, so importing it on another host gives
//! the same manifest hash (every layer root is recomputed from the content and compared) and
//! the signatures still verify.
//!
//! ```text
//! oci-layout, index.json, blobs/sha256/<digest>   the OCI image (uncompressed layers)
//! verse/manifest.json                             the manifest's canonical bytes
//! verse/signatures/<public key hex>               ed25519 signatures of its hash
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};
use verse_store::{Hash, Store};

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exports image `name` (manifest `h`) to `file`, atomically (written to `FILE.part` first).
pub fn export_archive(
    store: &Store,
    name: &str,
    h: &Hash,
    file: &Path,
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
        let config = serde_json::to_vec(&json!({
            "architecture": crate::oci_arch(),
            "os": "linux",
            "config": {
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "Env": c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "User": c.user.clone().unwrap_or_default(),
                "WorkingDir": c.workdir.clone().unwrap_or_default(),
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("json");
        let config_digest = hex(&Sha256::digest(&config));
        let oci_manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{config_digest}"), "size": config.len()},
            "layers": layers,
            "annotations": {"org.verse.manifest": h.to_hex()},
        }))
        .expect("json");
        let manifest_digest = hex(&Sha256::digest(&oci_manifest));
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": format!("sha256:{manifest_digest}"),
                           "size": oci_manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": name}}],
        }))
        .expect("json");
        let signatures = store.signatures(h)?;
        blobs.push((config_digest, Blob::Bytes(config)));
        blobs.push((manifest_digest, Blob::Bytes(oci_manifest)));

        let out = fs::File::create(&part).map_err(|e| ImageError::io(&part, e))?;
        let mut tar = tar::Builder::new(io::BufWriter::new(out));
        let io_err = |e| ImageError::io(&part, e);
        let add = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(bytes.len() as u64);
            tar.append_data(&mut h, path, bytes)
        };
        add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err)?;
        add(&mut tar, "index.json", &index).map_err(io_err)?;
        for (digest, blob) in &blobs {
            let path = format!("blobs/sha256/{digest}");
            match blob {
                Blob::Bytes(b) => add(&mut tar, &path, b).map_err(io_err)?,
                Blob::File(f) => {
                    let mut src = fs::File::open(f).map_err(|e| ImageError::io(f, e))?;
                    tar.append_file(&path, &mut src).map_err(io_err)?;
                }
            }
        }
        add(&mut tar, "verse/manifest.json", &manifest.canonical_bytes()).map_err(io_err)?;
        let mut signed = 0;
        for (info, sig) in &signatures {
            if info.valid {
                let key = info.key.trim_start_matches("ed25519:");
                add(&mut tar, &format!("verse/signatures/{key}"), sig.as_bytes())
                    .map_err(io_err)?;
                signed += 1;
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
