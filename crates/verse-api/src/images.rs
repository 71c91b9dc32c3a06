//! Wire types of image builds, inspection, signing and collection.

use std::collections::BTreeMap;

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
    /// The image config's labels (OCI `Labels`), sorted by key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
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

/// `POST /v1/images/{name}/export`: write the image to a file on the daemon's host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRequest {
    /// Absolute path of the archive to write (replaced atomically).
    pub path: String,
    /// `oci-archive` (the default) or `docker-archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReport {
    pub image: String,
    pub manifest: String,
    pub path: String,
    pub layers: usize,
    pub files: u64,
    /// Size of the archive.
    pub bytes: u64,
    /// Valid signatures carried along.
    pub signatures: usize,
    pub millis: u64,
    /// The format written and the reference the image carries in it (`podman load` names
    /// the image so).
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub reference: String,
}

/// One line of a streamed build or import (`?progress=true`): the response is
/// `application/x-ndjson`, one event per line, ending with `done` or `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A build step started, finished or printed a line; `step` of `steps` for `image`.
    Step {
        image: String,
        step: usize,
        steps: usize,
        text: String,
    },
    /// A progress line outside any step (an archive's layer, a signature kept).
    Line { text: String },
    /// Files and content bytes processed so far by the current import or layer.
    Count { files: u64, bytes: u64 },
    /// The operation's result: the body the non-streamed call would have returned.
    Done { result: serde_json::Value },
    /// The operation failed; what the non-streamed call would have returned as its error.
    Error { error: crate::ErrorBody },
}

impl ProgressEvent {
    /// Reads a builder line, `IMAGE [N/M] WHAT: STATE`, as a step event (else a plain line).
    pub fn from_line(line: &str) -> ProgressEvent {
        let step = (|| {
            let (image, rest) = line.split_once(" [")?;
            let (counts, text) = rest.split_once("] ")?;
            let (n, m) = counts.split_once('/')?;
            Some(ProgressEvent::Step {
                image: image.to_string(),
                step: n.parse().ok()?,
                steps: m.parse().ok()?,
                text: text.to_string(),
            })
        })();
        step.unwrap_or_else(|| ProgressEvent::Line {
            text: line.to_string(),
        })
    }
}
