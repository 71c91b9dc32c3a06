//! Image manifests and their ed25519 signatures.
//!
//! ```text
//! <dir>/manifests/<hh>/<hash>             canonical JSON of a Manifest, named by its BLAKE3
//! <dir>/signatures/<manifest>/<key hex>   64-byte ed25519 signature of the manifest hash by key
//! ```
//!
//! A manifest lists an image's layers bottom first (as OCI does) with the run config and what
//! produced each layer. Its hash names the image: signing it covers every layer root, and each
//! layer root covers every byte below it, so one signature verifies the whole image.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Hash;
use crate::store::Store;
use crate::tree::EntryKind;

/// How an environment on the image runs unless its spec says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Prepended to the command (OCI `Entrypoint`).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default command (OCI `Cmd`).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment variables, in order.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// "root", a name, "UID" or "UID:GID"; `None`: root.
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory; `None`: `/`.
    #[serde(default)]
    pub workdir: Option<String>,
    /// OCI `Labels`, sorted by key. Left out of the JSON when empty, so manifests written
    /// before labels were kept serialise to the same bytes and keep their hashes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One layer of an image and what produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLayer {
    /// Root tree hash of the layer.
    pub root: Hash,
    /// What produced it, e.g. `debootstrap --variant=minbase bookworm`, `apt-get install hello`,
    /// `run: useradd -m writer`, `oci layer sha256:...`.
    pub input: String,
}

/// An image: ordered layers (bottom first) and run config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layers, bottom first; a layer may hide paths of those below it with whiteouts
    /// (character devices 0/0, as overlayfs writes them).
    pub layers: Vec<ManifestLayer>,
    /// Run config.
    pub config: RunConfig,
}

impl Manifest {
    /// The bytes that are hashed and signed: JSON with fields in declaration order and no
    /// whitespace (maps are lists or sorted `BTreeMap`s, so the encoding is deterministic).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Manifest always serialises")
    }

    /// The manifest's hash.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.canonical_bytes())
    }

    /// Layer roots, top-most first (the order overlayfs wants its lower dirs in).
    pub fn roots_top_first(&self) -> Vec<Hash> {
        self.layers.iter().rev().map(|l| l.root).collect()
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A signature found on a manifest, and whether it verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureInfo {
    /// `ed25519:` + hex of the public key.
    pub key: String,
    /// The signature checks out against the manifest hash.
    pub valid: bool,
}

/// `ed25519:` + lowercase hex of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    format!("ed25519:{}", hex(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses `ed25519:HEX` (as [`key_id`] writes it).
pub fn parse_key_id(id: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = unhex(id.strip_prefix("ed25519:")?)?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

impl Store {
    fn manifest_path(&self, h: &Hash) -> std::path::PathBuf {
        let hex = h.to_hex();
        self.sub("manifests").join(&hex[..2]).join(hex)
    }

    fn signature_dir(&self, h: &Hash) -> std::path::PathBuf {
        self.sub("signatures").join(h.to_hex())
    }

    /// Stores a manifest whose layers are all in the store; returns its hash.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<Hash> {
        for layer in &manifest.layers {
            if !self.has(&layer.root) {
                return Err(StoreError::NotFound {
                    what: "layer",
                    hash: layer.root,
                });
            }
        }
        let bytes = manifest.canonical_bytes();
        let hash = Hash::of(&bytes);
        let dest = self.manifest_path(&hash);
        if !dest.exists() {
            let parent = dest.parent().expect("fanout path has a parent");
            fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
            self.write_atomic(&dest, &bytes)?;
        }
        Ok(hash)
    }

    /// Reads a manifest, checking that its bytes hash to `h`.
    pub fn manifest(&self, h: &Hash) -> Result<Manifest> {
        let path = self.manifest_path(h);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    what: "manifest",
                    hash: *h,
                });
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "manifest",
            hash: *h,
            detail,
        };
        let actual = Hash::of(&bytes);
        if actual != *h {
            return Err(corrupt(format!("its bytes hash to {actual}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// Every stored manifest.
    pub fn manifests(&self) -> Result<Vec<Hash>> {
        let mut out = Vec::new();
        let dir = self.sub("manifests");
        for fan in read_dir_or_empty(&dir)? {
            for entry in read_dir_or_empty(&fan.path())? {
                if let Some(h) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                    out.push(h);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Signs manifest `h` with `key` and stores the signature.
    pub fn sign_manifest(&self, h: &Hash, key: &SigningKey) -> Result<String> {
        self.manifest(h)?;
        let signature = key.sign(&h.0);
        let dir = self.signature_dir(h);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let id = key_id(&key.verifying_key());
        let name = id.trim_start_matches("ed25519:");
        self.write_atomic(&dir.join(name), hex(&signature.to_bytes()).as_bytes())?;
        Ok(id)
    }

    /// Stores a signature made elsewhere (from an exported image) if it verifies.
    pub fn add_signature(&self, h: &Hash, key: &str, signature_hex: &str) -> Result<bool> {
        let ok = check_signature(h, key, signature_hex);
        if ok {
            let dir = self.signature_dir(h);
            fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
            let name = key.trim_start_matches("ed25519:");
            self.write_atomic(&dir.join(name), signature_hex.trim().as_bytes())?;
        }
        Ok(ok)
    }

    /// The signatures on manifest `h`, each checked, with their raw hex.
    pub fn signatures(&self, h: &Hash) -> Result<Vec<(SignatureInfo, String)>> {
        let mut out = Vec::new();
        for entry in read_dir_or_empty(&self.signature_dir(h))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = format!("ed25519:{name}");
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let valid = check_signature(h, &key, &text);
            out.push((SignatureInfo { key, valid }, text.trim().to_string()));
        }
        out.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(out)
    }

    /// File objects (hash -> size) reachable from `root`, for dedup accounting.
    pub fn layer_objects(&self, root: &Hash, out: &mut HashMap<Hash, u64>) -> Result<()> {
        self.walk_layer(root, &mut |_, entry| {
            if let EntryKind::File(h) = &entry.kind {
                out.insert(*h, entry.size);
            }
            Ok(())
        })
    }

    /// Removes manifests (and their signatures) not in `keep`; returns how many went.
    pub fn remove_manifests_except(&self, keep: &HashSet<Hash>) -> Result<u64> {
        let _lock = self.lock_exclusive()?;
        let mut removed = 0;
        for h in self.manifests()? {
            if keep.contains(&h) {
                continue;
            }
            let path = self.manifest_path(&h);
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            let sigs = self.signature_dir(&h);
            if sigs.exists() {
                fs::remove_dir_all(&sigs).ctx(|| format!("removing {}", sigs.display()))?;
            }
            removed += 1;
        }
        Ok(removed)
    }
}

/// Whether `signature_hex` is `key`'s ed25519 signature of the manifest hash `h`.
pub fn check_signature(h: &Hash, key: &str, signature_hex: &str) -> bool {
    let Some(key) = parse_key_id(key) else {
        return false;
    };
    let Some(bytes) = unhex(signature_hex.trim()).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    key.verify(&h.0, &Signature::from_bytes(&bytes)).is_ok()
}

/// Hex of a signing key's secret seed and its public key id, for key files.
pub fn encode_signing_key(key: &SigningKey) -> (String, String) {
    (hex(&key.to_bytes()), key_id(&key.verifying_key()))
}

/// Parses a signing key's secret seed from hex.
pub fn decode_signing_key(text: &str) -> Option<SigningKey> {
    let seed: [u8; 32] = unhex(text.trim())?.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

/// Makes a new signing key from the OS's random source.
pub fn generate_signing_key() -> io::Result<SigningKey> {
    let mut seed = [0u8; 32];
    let mut f = fs::File::open("/dev/urandom")?;
    io::Read::read_exact(&mut f, &mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_dir_or_empty(dir: &std::path::Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<io::Result<Vec<_>>>()
            .ctx(|| format!("listing {}", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).ctx(|| format!("listing {}", dir.display())),
    }
}

/// Turns a map into the ordered list a manifest holds.
pub fn env_list(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest as Verse wrote it before run configs had labels, and its hash then.
    const OLD: &str = concat!(
        r#"{"layers":[{"root":"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262","#,
        r#""input":"oci layer sha256:0123"}],"config":{"entrypoint":["/bin/sh","-c"],"#,
        r#""cmd":["echo hi"],"env":[["PATH","/bin"],["LANG","C"]],"user":"1000:1000","#,
        r#""workdir":"/srv"}}"#
    );
    const OLD_HASH: &str = "2429f8cedcb75e064add45a52307383cdd649ec538723e5e4292de18e3421c71";

    #[test]
    fn a_manifest_without_labels_keeps_its_bytes_and_hash() {
        let m: Manifest = serde_json::from_str(OLD).unwrap();
        assert!(m.config.labels.is_empty());
        assert_eq!(String::from_utf8(m.canonical_bytes()).unwrap(), OLD);
        assert_eq!(m.hash().to_hex(), OLD_HASH);
    }

    #[test]
    fn labels_are_kept_sorted_and_change_the_hash() {
        let mut m: Manifest = serde_json::from_str(OLD).unwrap();
        m.config.labels.insert("z.last".into(), "2".into());
        m.config.labels.insert("a".into(), "b".into());
        let bytes = String::from_utf8(m.canonical_bytes()).unwrap();
        assert!(
            bytes.ends_with(r#""workdir":"/srv","labels":{"a":"b","z.last":"2"}}}"#),
            "{bytes}"
        );
        assert_ne!(m.hash().to_hex(), OLD_HASH);
        let back: Manifest = serde_json::from_str(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.hash(), m.hash());
    }
}
