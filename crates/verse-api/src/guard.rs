//! Bodies of the guard's routes: capability tokens (`/v1/tokens`) and the tamper-evident
//! audit log (`/v1/audit/*`). `verse-guard` keeps and checks these; the types live here so
//! the CLI, the daemon and any other client read one definition. The audit log's own file
//! format is [`Record`] and [`Checkpoint`] as serialised here, so a change to either is a
//! change to what is on disk too.

use serde::{Deserialize, Serialize};

/// `POST /v1/tokens`: mint a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintRequest {
    /// Rights, `KIND:NAME:OPS` separated by `;` or spaces.
    pub allow: String,
    /// How long it is valid, e.g. `1h` (default: until revoked).
    pub ttl: Option<String>,
}

/// A token as handed to its holder (the answer of `POST /v1/tokens`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Minted {
    /// Base64 (URL-safe) biscuit, sent as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// The revocation id of its authority block: revoking it revokes the
    /// token and every token attenuated from it.
    pub id: String,
    pub rights: Vec<String>,
    pub expires: Option<String>,
}

/// `POST /v1/tokens/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeRequest {
    pub id: String,
}

/// The answer of `POST /v1/tokens/revoke`: the id as the daemon stored it (lowercase hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: String,
}

/// `GET /v1/audit/log?env=NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditLogQuery {
    /// Only records about this env.
    pub env: Option<String>,
}

/// One act in the audit log, as stored (one JSON line) and as `GET /v1/audit/log` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Who did it: `local:uid=0`, `token:ID`, `daemon`.
    pub actor: String,
    /// What: `create`, `start`, `stop`, `exec`, `rm`, `apply`, ...
    pub action: String,
    pub env: Option<String>,
    pub detail: String,
    /// Hex BLAKE3 of the record before (all zeros for the first).
    pub prev: String,
    /// Hex BLAKE3 of this record's canonical bytes.
    pub hash: String,
}

/// A signed statement "record `seq` of this host's log has hash `hash`"
/// (`POST /v1/audit/checkpoint`, and what `--export` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub time: String,
    /// Hex ed25519 public key of the host that signed.
    pub key: String,
    /// Hex ed25519 signature over the checkpoint's message (see `verse_guard::audit`).
    pub signature: String,
}

/// The body of `POST /v1/audit/verify`: an exported checkpoint to check
/// the log against, besides the ones the daemon keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub checkpoint: Option<Checkpoint>,
}

/// What kind of tampering a problem shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record's content no longer matches its hash, or a line is not a record.
    Changed,
    /// Records are missing from the middle or the end of the chain.
    Removed,
    /// Records are present but out of order.
    Reordered,
    /// A record that was never appended by the daemon sits in the chain.
    Inserted,
    /// A checkpoint's signature is bad, or the chain disagrees with a signed checkpoint.
    Checkpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The record it is about (its seq as stored), when there is one.
    pub seq: Option<u64>,
    /// 1-based line of audit.log, when there is one.
    pub line: Option<usize>,
    pub message: String,
}

/// The answer of `POST /v1/audit/verify` (and of `verse audit verify --dir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Lines in audit.log.
    pub records: usize,
    /// Records whose chain was followed without a break from the first.
    pub verified: u64,
    /// Signed checkpoints that matched the chain (including an exported one).
    pub checkpoints: usize,
    pub head_hash: String,
    /// Empty when the log is intact; the first is the first break in the chain.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}
