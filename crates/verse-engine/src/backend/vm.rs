//! The vm backend: each env boots in its own QEMU microVM. Before its shim starts it needs
//! disks (one read-only erofs image per layer, a writable ext4 disk), the guest kernel, the
//! initramfs with the agent, and an accelerator decision. The guest has its own kernel and
//! filesystems, so the host mounts nothing into it: files, /downloads and resolv.conf go
//! through the agent.

use super::{EnvBackend, Files, HibernateWith, Launch, LaunchCtx};
use crate::Engine;
use crate::db::EnvRow;
use crate::error::{EngineError, EngineResult};
use std::path::Path;
use verse_spec::Backend;
use verse_vm::{AccelChoice, VmConfig};

const MIB: u64 = 1 << 20;
/// Guest RAM when the spec names no memory limit.
pub const DEFAULT_VM_MEMORY: u64 = 256 * MIB;

/// Cache of erofs layer images, initramfs and the accelerator decision.
pub fn vm_cache(daemon: &Engine) -> std::path::PathBuf {
    daemon.paths.vm_cache()
}

/// Layers a vm env's image may have: each is a virtio-mmio disk, and QEMU's microvm has 24
/// virtio-mmio slots, shared with the writable disk, the control ports, the NIC and volumes.
pub const MAX_VM_LAYERS: usize = 16;

/// Disks, kernel, initramfs and accelerator of a vm env whose image has the layers `roots`
/// (checked out at `checkouts`, top-most first): one read-only erofs disk per layer, built
/// once per layer hash and shared by every env, stacked by the agent as overlay lowers.
pub fn prepare_vm(
    daemon: &Engine,
    row: &EnvRow,
    roots: &[verse_store::Hash],
    checkouts: &[std::path::PathBuf],
    env_dir: &Path,
) -> EngineResult<VmConfig> {
    let plan = &row.plan;
    if roots.len() > MAX_VM_LAYERS {
        return Err(EngineError::invalid(format!(
            "env `{}`: image `{}` has {} layers, and the vm backend takes at most {MAX_VM_LAYERS} (one disk each)",
            row.name,
            plan.image,
            roots.len()
        ))
        .hint("build the image with fewer steps (e.g. merge its `run` commands)"));
    }
    let vm_err = |e: verse_vm::VmError| {
        EngineError::internal(format!("preparing the microVM of env `{}`: {e}", row.name))
            .hint("`verse doctor` tells what this host lacks for vm envs")
    };
    let qemu = verse_vm::find_qemu().ok_or_else(|| {
        EngineError::internal(format!(
            "env `{}` needs QEMU, and {} is not installed",
            row.name,
            verse_vm::qemu::QEMU
        ))
        .hint("install Debian's qemu-system-x86 (scripts/install-deps.sh does)")
    })?;
    let cache = vm_cache(daemon);
    let (kernel, initramfs) = verse_vm::boot_files(&daemon.exe, &cache).map_err(vm_err)?;
    let mut layers = Vec::new();
    for (root, checkout) in roots.iter().zip(checkouts) {
        layers.push(
            verse_vm::disk::layer_image(checkout, &root.to_string(), &cache.join("layers"))
                .map_err(vm_err)?,
        );
    }
    let data_disk = env_dir.join("disk.ext4");
    // `disk` sizes the data disk (made sparse: only what the guest writes takes room).
    let size = plan.disk.unwrap_or(verse_vm::disk::DATA_DISK_BYTES);
    verse_vm::disk::data_disk(&data_disk, plan.ephemeral, size).map_err(vm_err)?;
    verse_disk::resize_image(&data_disk, size)
        .map_err(|e| crate::disk::disk_error(&row.name, e))?;
    let choice: AccelChoice = plan.accel.parse().unwrap_or_default();
    let decision = verse_vm::accel::decide(
        choice,
        &daemon.paths.accel_cache(),
        &qemu,
        &kernel,
        &initramfs,
    );
    tracing::info!(env = %row.name, accel = %decision.accel, reason = %decision.reason, "vm accelerator");
    Ok(VmConfig {
        qemu,
        kernel: kernel.vmlinuz,
        initramfs,
        layers,
        data_disk,
        accel: decision.accel,
        vcpus: plan.cpu.map_or(1, |c| c.ceil().max(1.0) as u32),
        memory_mib: plan.memory.unwrap_or(DEFAULT_VM_MEMORY).div_ceil(MIB),
    })
}

/// A QEMU microVM per env.
pub struct Vm;

impl EnvBackend for Vm {
    fn kind(&self) -> Backend {
        Backend::Vm
    }
    fn host_mounts(&self) -> bool {
        false
    }
    fn files(&self) -> Files {
        Files::Guest
    }
    fn hibernate(&self) -> HibernateWith {
        HibernateWith::QemuMigration
    }
    fn launch(&self, ctx: &LaunchCtx<'_>) -> EngineResult<Launch> {
        prepare_vm(ctx.engine, ctx.row, ctx.roots, ctx.lowers, ctx.env_dir).map(Launch::Vm)
    }
}
