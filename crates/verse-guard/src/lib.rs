//! Verse's guard: the tamper-evident audit log (and, as they land, capability
//! tokens, quarantine and the inter-env copy policy).

pub mod audit;
pub mod quarantine;
pub mod scan;
pub mod token;
pub mod yara;

pub use audit::{AuditError, AuditLog, Checkpoint, Durability, Record, VerifyReport};
