//! Wire types and the client of Verse's HTTP API.
//!
//! The daemon serves this API on a unix socket (`$VERSE_ROOT/run/verse/verse.sock`);
//! the CLI, and later the web UI and control filesystem, are its clients.
//! Interactive streams (exec, run) upgrade the HTTP connection to a raw byte
//! stream carrying [`frame`]s.

#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;
pub mod frame;
pub mod guard;
pub mod images;
pub mod paths;
pub mod quarantine;
#[cfg(feature = "tls")]
mod remote;
pub mod time;
pub mod types;
pub mod words;

#[cfg(feature = "client")]
pub use client::{Client, ClientError};
pub use images::*;
pub use paths::Paths;
pub use types::*;
pub use words::UnknownWord;
