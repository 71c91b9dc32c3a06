//! The Verse web UI, as a library the daemon mounts on its local TCP listener:
//! the built front end embedded in the binary ([`assets`]), the check that
//! lets only local pages holding the daemon's secret in ([`guard`]), and the
//! WebSocket bridges to an env's terminal and desktop ([`bridge`]).

#![forbid(unsafe_code)]

pub mod assets;
pub mod bridge;
pub mod guard;
pub mod rfb;

pub use guard::{Guard, Verdict};
