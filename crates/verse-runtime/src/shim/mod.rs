//! The shim process: one per running env, single-threaded by design.
//!
//! Single-threaded matters: starting the env and joining it for `exec` fork
//! and `setns` into a user namespace, which the kernel allows only for
//! single-threaded processes, and forking a multi-threaded process is unsafe.
//! So the shim is one `poll(2)` loop over its socket, its clients and the
//! pipes, ptys or sockets of what it started.
//!
//! That loop is written once ([`event_loop`]); each backend supplies what
//! differs ([`event_loop::ShimBackend`]): [`procs`] for envs that are a tree
//! of host processes, started the [`container`] way (namespaces) or the
//! [`gvisor`] way (runsc), and [`vm`] for a microVM under QEMU.

pub(crate) mod container;
pub(crate) mod event_loop;
pub(crate) mod gvisor;
pub(crate) mod procs;
pub(crate) mod vm;

use crate::config::{Launch, ShimConfig};
use event_loop::{fail_ready, serve};
use std::path::Path;

/// Entry point of `verse __shim CONFIG`. Never returns.
pub fn run_shim(config_path: &Path) -> ! {
    let config = match std::fs::read(config_path)
        .map_err(|e| format!("reading {}: {e}", config_path.display()))
        .and_then(|b| {
            serde_json::from_slice::<ShimConfig>(&b)
                .map_err(|e| format!("parsing {}: {e}", config_path.display()))
        }) {
        Ok(c) => c,
        Err(message) => fail_ready(message),
    };

    // Detach from the daemon: the parent returns at once and the child is
    // adopted by init, in a session of its own, so neither the daemon's death
    // nor signals to its process group reach the env.
    // SAFETY: the shim is single-threaded here (nothing has spawned a thread),
    // so the child may keep running arbitrary Rust code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => fail_ready(format!("forking the shim: {e}")),
    }
    let _ = nix::unistd::setsid();
    // Processes the env's execs leave behind are re-parented to the shim, not
    // to the host's init, so the shim can reap them.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    match config.launch.clone() {
        Launch::Container => serve(config, |core| {
            procs::Procs::start(core, container::Container)
        }),
        Launch::Gvisor(gvisor) => {
            if let Err(message) = gvisor::private_mounts() {
                fail_ready(message);
            }
            serve(config, |core| {
                procs::Procs::start(core, gvisor::Gvisor(gvisor))
            })
        }
        Launch::Vm(vm) => serve(config, |core| vm::Vm::start(core, vm)),
    }
}
