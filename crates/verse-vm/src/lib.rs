//! Verse's microVM backend: everything about a VM but the shim's loop.
//!
//! - [`kernel`]: find the guest kernel (Debian's linux-image) and its modules;
//! - [`initramfs`]: the guest's initramfs (cpio newc) with `verse-agent` as
//!   `/init` and the few modules it loads;
//! - [`disk`]: read-only erofs images of layers (built once per layer, cached)
//!   and the per-env writable ext4 disk;
//! - [`qemu`]: the `qemu-system-x86_64 -M microvm` command line;
//! - [`qmp`]: a small typed QMP client (JSON lines on a unix socket);
//! - [`accel`]: KVM or TCG, decided by timing a tiny guest, not by trusting
//!   that `/dev/kvm` exists.

#![forbid(unsafe_code)]

pub mod accel;
pub mod disk;
pub mod initramfs;
pub mod kernel;
pub mod qemu;
pub mod qmp;

pub use accel::{Accel, AccelChoice, AccelDecision};
pub use qemu::VmConfig;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(String),
    #[error("`{command}` failed: {detail}")]
    Tool { command: String, detail: String },
    #[error("QMP at {path}: {detail}")]
    Qmp { path: String, detail: String },
}

pub type Result<T> = std::result::Result<T, VmError>;

pub(crate) fn io_err(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> VmError {
    let path = path.display().to_string();
    move |source| VmError::Io { what, path, source }
}

/// Runs a host tool, turning a failure into an error that names it.
pub(crate) fn run_tool(command: &mut std::process::Command) -> Result<()> {
    let shown = format!("{command:?}").replace('"', "");
    let out = command.output().map_err(|e| VmError::Tool {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(VmError::Tool {
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The guest kernel and the initramfs (built into `cache_dir` if needed)
/// with the agent found next to `exe`.
pub fn boot_files(
    exe: &std::path::Path,
    cache_dir: &std::path::Path,
) -> Result<(kernel::Kernel, std::path::PathBuf)> {
    let kernel = kernel::Kernel::find()?;
    let agent = initramfs::find_agent(exe).ok_or_else(|| {
        VmError::Missing(format!(
            "no verse-agent binary next to {} (build it with scripts/build-agent.sh, or set VERSE_AGENT)",
            exe.display()
        ))
    })?;
    let initramfs = initramfs::build(&agent, &kernel, cache_dir)?;
    Ok((kernel, initramfs))
}

/// Where `qemu-system-x86_64` is, if installed.
pub fn find_qemu() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(qemu::QEMU))
            .find(|p| p.is_file())
    })
}
