//! `StoreError`: every failure names the path, hash or entry involved.

use std::io;
use std::path::Path;

use crate::hash::Hash;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("refusing entry {entry:?} of {source_name}: {reason}")]
    Refused {
        source_name: String,
        entry: String,
        reason: String,
    },
    #[error("{what} {hash} is not in the store")]
    NotFound { what: &'static str, hash: Hash },
    #[error("{what} {hash} is corrupt: {detail}")]
    Corrupt {
        what: &'static str,
        hash: Hash,
        detail: String,
    },
    #[error("invalid hash {0:?}: expected 64 hex digits")]
    BadHash(String),
    #[error("uid base {0} is too large: uid_base + 65535 must fit in 32 bits")]
    BadUidBase(u32),
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

impl StoreError {
    pub(crate) fn refused(
        source: &Path,
        entry: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Refused {
            source_name: source.display().to_string(),
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// Adds a human context ("writing /x/y") to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| StoreError::Io {
            context: what().into(),
            source: e.into(),
        })
    }
}
