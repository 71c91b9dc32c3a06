//! Verse's guard: the tamper-evident audit log, capability tokens, the quarantine and the
//! checks run on what enters it. What it keeps and answers (records, checkpoints, items,
//! tokens) are wire types defined in `verse_api::{guard, quarantine}` and re-exported here.

pub mod audit;
pub mod quarantine;
pub mod scan;
pub mod token;
pub mod yara;

pub use audit::{
    AuditError, AuditLog, Checkpoint, CheckpointExt, Durability, Record, RecordExt, VerifyReport,
};
