//! The QEMU command line of a Verse microVM.
//!
//! `-M microvm` with virtio-mmio devices only, no defaults, no user config,
//! no display, no NIC unless the env has a network (network = "none" means
//! the guest has no network device at all; otherwise a virtio-net NIC on a
//! tap the shim opens, see [`nic_args`]), `-no-reboot` so the guest's reboot ends the VM.

use crate::accel::Accel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use verse_agent::proto;

/// The default QEMU binary (Debian's qemu-system-x86).
pub const QEMU: &str = "qemu-system-x86_64";

/// Serial of the writable disk as the guest sees it.
pub const DATA_SERIAL: &str = "verse-data";

/// Everything the shim needs to start an env's VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmConfig {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// Read-only erofs images, top-most first.
    pub layers: Vec<PathBuf>,
    /// The env's writable ext4 disk.
    pub data_disk: PathBuf,
    pub accel: Accel,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// Host-side files of one running VM, in the env's directory.
#[derive(Debug, Clone)]
pub struct VmFiles {
    pub qmp: PathBuf,
    pub agent: PathBuf,
    /// Written by the shim from `console_socket` (the main command's output port).
    pub console_log: PathBuf,
    /// Written by the shim from `kernel_socket` (the guest kernel's serial console).
    pub kernel_log: PathBuf,
    pub console_socket: PathBuf,
    pub kernel_socket: PathBuf,
}

impl VmFiles {
    pub fn in_dir(env_dir: &Path, console_log: PathBuf) -> Self {
        VmFiles {
            qmp: env_dir.join("qmp.sock"),
            agent: env_dir.join("agent.sock"),
            console_log,
            kernel_log: env_dir.join("kernel.log"),
            console_socket: env_dir.join("console.sock"),
            kernel_socket: env_dir.join("kernel.sock"),
        }
    }
}

/// The guest's virtio-net NIC on the tap whose descriptor QEMU inherits as `tap_fd` (QEMU
/// asks the tap for its features: it is made without a vnet header).
pub fn nic_args(tap_fd: i32, mac: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("tap,id=net0,fd={tap_fd}"),
        "-device".into(),
        format!("virtio-net-device,netdev=net0,mac={mac}"),
    ]
}

/// Arguments that make QEMU load a VM saved by
/// [`crate::qmp::Qmp::migrate_to_file`] instead of booting: the same command
/// line plus these. None when the path cannot be quoted for the shell.
pub fn incoming_args(state: &Path) -> Option<Vec<String>> {
    let quoted = crate::qmp::shell_quote(state)?;
    Some(vec!["-incoming".into(), format!("exec:cat {quoted}")])
}

/// Layer serials as the guest sees them, top-most first.
pub fn layer_serials(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("verse-layer{i}")).collect()
}

/// Kernel arguments common to envs and the accelerator probe.
pub const KERNEL_ARGS: &str = "console=ttyS0 quiet panic=-1 reboot=t";

/// The kernel command line for `accel`. Under TCG the guest's TSC runs at the
/// host's rate, and on a loaded host the kernel's calibration of it against
/// the emulated PIT fails, after which boot hangs waiting for a timer; so the
/// host's TSC rate is passed in (`tsc_early_khz`).
pub fn kernel_args(accel: Accel) -> String {
    match (accel, host_tsc_khz()) {
        (Accel::Tcg, Some(khz)) => format!("{KERNEL_ARGS} tsc_early_khz={khz}"),
        _ => KERNEL_ARGS.to_string(),
    }
}

/// The host CPU's clock in kHz (what /proc/cpuinfo reports for cpu 0).
fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0).round() as u64)
}

pub fn accel_args(accel: Accel) -> Vec<String> {
    match accel {
        // QEMU 7.2 aborts on some hosts when `-cpu host` passes through
        // arch-capabilities the host KVM does not support.
        Accel::Kvm => ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
            .map(String::from)
            .to_vec(),
        Accel::Tcg => ["-accel", "tcg"].map(String::from).to_vec(),
    }
}

/// Arguments every Verse microVM starts with.
pub fn base_args(accel: Accel, vcpus: u32, memory_mib: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "-M",
        "microvm,x-option-roms=off,rtc=on",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
    ]
    .map(String::from)
    .to_vec();
    args.extend(accel_args(accel));
    args.extend([
        "-smp".into(),
        vcpus.max(1).to_string(),
        "-m".into(),
        format!("{}M", memory_mib.max(64)),
    ]);
    args
}

impl VmConfig {
    pub fn command(&self, files: &VmFiles) -> Command {
        let mut c = Command::new(&self.qemu);
        c.args(base_args(self.accel, self.vcpus, self.memory_mib));
        c.arg("-kernel").arg(&self.kernel);
        c.arg("-initrd").arg(&self.initramfs);
        c.arg("-append").arg(kernel_args(self.accel));
        // Both consoles go to sockets the shim reads into capped logs; QEMU
        // waits (`wait=on`) for the shim to connect to each before it runs
        // the guest, so nothing the guest prints is lost or left unbounded.
        c.arg("-chardev").arg(format!(
            "socket,id=kcon,path={},server=on,wait=on",
            files.kernel_socket.display()
        ));
        c.args(["-serial", "chardev:kcon"]);
        c.args(["-device", "virtio-serial-device"]);
        c.arg("-chardev").arg(format!(
            "socket,id=ctl,path={},server=on,wait=off",
            files.agent.display()
        ));
        c.arg("-device").arg(format!(
            "virtserialport,chardev=ctl,name={}",
            proto::CONTROL_PORT
        ));
        c.arg("-chardev").arg(format!(
            "socket,id=log,path={},server=on,wait=on",
            files.console_socket.display()
        ));
        c.arg("-device").arg(format!(
            "virtserialport,chardev=log,name={}",
            proto::LOG_PORT
        ));
        for (index, (layer, serial)) in self
            .layers
            .iter()
            .zip(layer_serials(self.layers.len()))
            .enumerate()
        {
            c.arg("-drive").arg(format!(
                "id=layer{index},file={},format=raw,if=none,readonly=on",
                layer.display()
            ));
            c.arg("-device").arg(format!(
                "virtio-blk-device,drive=layer{index},serial={serial}"
            ));
        }
        c.arg("-drive").arg(format!(
            "id=data,file={},format=raw,if=none,cache=writeback",
            self.data_disk.display()
        ));
        c.arg("-device")
            .arg(format!("virtio-blk-device,drive=data,serial={DATA_SERIAL}"));
        c.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", files.qmp.display()));
        c
    }
}
