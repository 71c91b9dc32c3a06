//! The per-env shim and the daemon's side of talking to it.
//!
//! Every running environment has one small shim process. The shim owns the
//! env's init process, its ptys and its log file, and answers a line-JSON +
//! frame protocol on a unix socket. Shims run in their own session, so a
//! `kill -9` of the daemon leaves environments running; a restarted daemon
//! finds them again through their sockets.

pub mod client;
pub mod config;
mod conn;
pub mod console_log;
pub mod criu;
mod env_pty;
pub mod launch;
pub mod protocol;
pub mod record;
mod shim;
mod vm_console;

pub use client::{ShimClient, ShimClientError};
pub use config::{
    GvisorConfig, ID_BASE, ID_RANGE, Launch, MAX_ID_SLOT, ShimConfig, VolumeMount, id_base_of_slot,
};
pub use launch::{LaunchError, Launched, launch};
pub use protocol::{Refusal, ShimRequest, ShimResponse, ShimStatus};
pub use record::{ExitRecord, ShimRecord};
pub use shim::run_shim;
pub use shim::vm::VM_STATE;
/// The shim ⇄ agent protocol, for the daemon's guest file operations.
pub use verse_agent::proto as agent_proto;
pub use verse_agent::writers as open_files;
