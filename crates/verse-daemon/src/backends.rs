//! What the vm and gvisor backends need before their shim starts: disks,
//! kernel, initramfs and accelerator for a VM; the runsc binary for gVisor.

use crate::Daemon;
use crate::db::EnvRow;
use crate::error::{ApiError, ApiResult};
use std::path::Path;
use verse_runtime::GvisorConfig;
use verse_vm::{AccelChoice, VmConfig};

const MIB: u64 = 1 << 20;
/// Guest RAM when the spec names no memory limit.
pub const DEFAULT_VM_MEMORY: u64 = 256 * MIB;

/// Cache of erofs layer images, initramfs and the accelerator decision.
pub fn vm_cache(daemon: &Daemon) -> std::path::PathBuf {
    daemon.paths.state_dir().join("vm")
}

pub fn prepare_vm(
    daemon: &Daemon,
    row: &EnvRow,
    root: &verse_store::Hash,
    checkout: &Path,
    env_dir: &Path,
) -> ApiResult<VmConfig> {
    let plan = &row.plan;
    let vm_err = |e: verse_vm::VmError| {
        ApiError::internal(format!("preparing the microVM of env `{}`: {e}", row.name))
            .hint("`verse doctor` tells what this host lacks for vm envs")
    };
    let qemu = verse_vm::find_qemu().ok_or_else(|| {
        ApiError::internal(format!(
            "env `{}` needs QEMU, and {} is not installed",
            row.name,
            verse_vm::qemu::QEMU
        ))
        .hint("install Debian's qemu-system-x86 (scripts/install-deps.sh does)")
    })?;
    let cache = vm_cache(daemon);
    let (kernel, initramfs) = verse_vm::boot_files(&daemon.exe, &cache).map_err(vm_err)?;
    let layer = verse_vm::disk::layer_image(checkout, &root.to_string(), &cache.join("layers"))
        .map_err(vm_err)?;
    let data_disk = env_dir.join("disk.ext4");
    verse_vm::disk::data_disk(&data_disk, plan.ephemeral).map_err(vm_err)?;
    let choice: AccelChoice = plan.accel.parse().unwrap_or_default();
    let decision = verse_vm::accel::decide(
        choice,
        &cache.join("accel.json"),
        &qemu,
        &kernel,
        &initramfs,
    );
    tracing::info!(env = %row.name, accel = %decision.accel, reason = %decision.reason, "vm accelerator");
    Ok(VmConfig {
        qemu,
        kernel: kernel.vmlinuz,
        initramfs,
        layers: vec![layer],
        data_disk,
        accel: decision.accel,
        vcpus: plan.cpu.map_or(1, |c| c.ceil().max(1.0) as u32),
        memory_mib: plan.memory.unwrap_or(DEFAULT_VM_MEMORY).div_ceil(MIB),
    })
}

pub fn prepare_gvisor() -> ApiResult<GvisorConfig> {
    let runsc = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("runsc"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            ApiError::internal("gvisor envs need runsc, which is not installed")
                .hint("install Debian's runsc (scripts/install-deps.sh does)")
        })?;
    Ok(GvisorConfig {
        runsc,
        // gVisor's kvm platform hangs on nested-KVM hosts; ptrace works anywhere.
        platform: "ptrace".into(),
    })
}
