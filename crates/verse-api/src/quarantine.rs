//! Bodies of the quarantine and copy routes (`/v1/quarantine/*`, `/v1/copy`). `verse-guard`
//! keeps quarantined files with an [`Item`] each (its `item.json` is an `Item` as serialised
//! here), and the spec's `[copy]` table speaks [`CopyPolicy`]; both read these definitions.

use serde::{Deserialize, Serialize};

/// Where a quarantined file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Held,
    Released,
    Rejected,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Held => "held",
            State::Released => "released",
            State::Rejected => "rejected",
        })
    }
}

crate::words! {
    /// Which check of the quarantine's scan found something.
    pub enum Check("scan check") {
        /// The content type does not match the name's extension.
        Type = "type",
        /// An archive past a limit (entries, expansion) or with a bad entry name.
        Archive = "archive",
        /// A YARA rule matched, or the YARA scan could not run.
        Yara = "yara",
    }
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub check: Check,
    pub message: String,
}

/// What the scan of one file found. `findings` empty means clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub size: u64,
    pub blake3: String,
    /// MIME type from the content, if it has a known signature.
    pub content_type: Option<String>,
    pub findings: Vec<Finding>,
}

impl ScanReport {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// The env it came from.
    pub env: String,
    /// Its file name in the env (a base name: directories are not kept).
    pub name: String,
    /// Unix seconds.
    pub received_at: i64,
    pub hold_until: i64,
    pub state: State,
    pub report: ScanReport,
    /// Where it went, once released.
    pub released_to: Option<String>,
    /// Released despite findings.
    pub forced: bool,
    /// Where it was sent (`verse copy` through quarantine), as `ENV[:PATH]`;
    /// `None`: where its env's `release_to` says, or wherever a person sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Item {
    pub fn flagged(&self) -> bool {
        !self.report.clean()
    }
}

/// `POST /v1/quarantine/{id}/release`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// `ENV[:PATH]`.
    pub to: String,
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/copy`: `from` is `ENV:PATH` (a file), `to` is `ENV[:DIR]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyRequest {
    pub from: String,
    pub to: String,
}

crate::words! {
    /// What the spec's `[copy]` table allows between two envs.
    #[derive(Default)]
    pub enum CopyPolicy("copy policy") {
        Allow = "allow",
        /// The default for every pair the spec does not name.
        #[default]
        Deny = "deny",
        /// The file goes through quarantine (scan and hold) on its way.
        Quarantine = "quarantine",
    }
}

/// What a copy did: `copied` to a path, or `quarantined` as an item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyReport {
    pub policy: CopyPolicy,
    #[serde(default)]
    pub copied_to: Option<String>,
    #[serde(default)]
    pub quarantined: Option<Item>,
}
