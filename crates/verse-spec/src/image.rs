//! Image recipes (`[image.NAME]`) and the trust policy (`[trust]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Debian suites a `debian:SUITE` base may name.
pub const DEBIAN_SUITES: &[&str] = &[
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "sid",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

/// How an image is built (`[image.NAME]`), with every default filled in.
///
/// The builder turns it into layers: the base's layers, then one layer for the package list,
/// one for the files, and one per `run` step, each cached by the hash of its parent layer and
/// its own inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// What the image starts from.
    pub base: ImageBase,
    /// Debian packages installed with apt-get, in the order given (duplicates rejected).
    pub packages: Vec<String>,
    /// Files written into the image, sorted by path.
    pub files: Vec<ImageFile>,
    /// Build steps, each run with `/bin/sh -c` as root inside a build environment.
    pub run: Vec<String>,
    /// Default user of environments on this image: "root", a name looked up in the image's
    /// `/etc/passwd` at build time, "UID" or "UID:GID". `None` keeps the base's user.
    pub user: Option<String>,
    /// Default working directory (absolute, normalised); `None` keeps the base's.
    pub workdir: Option<String>,
    /// Environment variables set for environments on this image (merged over the base's).
    pub env: BTreeMap<String, String>,
}

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ImageBase {
    /// `debian:SUITE`: `debootstrap --variant=minbase SUITE`, cached as its own layer.
    Debian {
        /// One of [`DEBIAN_SUITES`].
        suite: String,
    },
    /// Another image: one declared in the same spec (images stack) or one in the store
    /// (imported); which one is decided when the spec is applied.
    Image {
        /// The image's name.
        name: String,
    },
}

impl ImageBase {
    /// The base as written in the spec (`debian:bookworm`, `writer`).
    pub fn as_written(&self) -> String {
        match self {
            ImageBase::Debian { suite } => format!("debian:{suite}"),
            ImageBase::Image { name } => name.clone(),
        }
    }
}

/// One file written into an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// Absolute, normalised path inside the image.
    pub path: String,
    /// Where the content comes from.
    pub source: FileSource,
}

/// The content of an [`ImageFile`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSource {
    /// The string itself is the file's content (mode 0644).
    Text(String),
    /// A file on the host, written `"./path"` or `"../path"` in the spec: relative to the
    /// directory holding the spec file. The builder reads it (and keeps its mode); the spec
    /// crate does no I/O.
    Host(String),
}

/// Which images environments may start on (`[trust]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Refuse images that carry no valid signature by one of `keys`.
    pub require_signed: bool,
    /// Trusted public keys, `ed25519:` followed by 64 lowercase hex digits (as printed by
    /// `verse key generate`), deduplicated and sorted.
    pub keys: Vec<String>,
}

impl TrustPolicy {
    /// True for the policy of a spec without `[trust]`.
    pub fn is_default(&self) -> bool {
        *self == TrustPolicy::default()
    }
}

/// Prefix of a public key in the spec.
pub const KEY_PREFIX: &str = "ed25519:";

/// Parse `ed25519:HEX` into the key's 32 bytes.
pub fn parse_public_key(key: &str) -> Option<[u8; 32]> {
    let hex = key.strip_prefix(KEY_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    hex.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some(out)
}
