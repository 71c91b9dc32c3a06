//! The guest side of Verse's vm backend.
//!
//! The `verse-agent` binary is PID 1 of every Verse microVM (a static
//! executable in an initramfs Verse builds). This library holds the protocol it
//! speaks with the env's shim over one virtio-serial port, so both ends share
//! one definition.

pub mod proto;
pub mod writers;
