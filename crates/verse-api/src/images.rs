//! Wire types of image builds, inspection, signing and collection.

use serde::{Deserialize, Serialize};

use crate::ImageInfo;

/// `POST /v1/images/build`: build images a spec declares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequest {
    pub file_name: String,
    pub source: String,
    /// Absolute directory of the spec (for `"./path"` files).
    pub spec_dir: String,
    /// Images to build; empty: every image the spec declares.
    #[serde(default)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub images: Vec<ImageInfo>,
    /// Layers built now, and taken from the build cache.
    pub built_layers: usize,
    pub cached_layers: usize,
    /// The progress lines of the build, in order.
    pub log: Vec<String>,
    pub millis: u64,
}

/// One layer of an image as `verse image inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerDetail {
    pub root: String,
    pub input: String,
    pub size: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureDetail {
    pub key: String,
    pub valid: bool,
}

/// `GET /v1/images/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageDetail {
    pub info: ImageInfo,
    /// Bottom first.
    pub layers: Vec<LayerDetail>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub signatures: Vec<SignatureDetail>,
}

/// `POST /v1/images/{name}/signatures`: a signature made by the CLI with a local key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureRequest {
    /// `ed25519:HEX` public key.
    pub key: String,
    /// Hex of the 64-byte signature of the manifest hash.
    pub signature: String,
}

/// `POST /v1/images/gc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageGcReport {
    pub freed_bytes: u64,
    pub objects_removed: u64,
    pub trees_removed: u64,
    pub layers_removed: u64,
    pub manifests_removed: u64,
    pub checkouts_removed: u64,
}
