//! The vm and gvisor backends' part of `verse doctor`: what they need on this host, and the
//! accelerator the vm backend decided on (cached in `var/lib/verse/vm/accel.json`).

use std::path::{Path, PathBuf};
use verse_api::Paths;
use verse_doctor::{Check, Status, check};
use verse_vm::accel::{self, Accel, AccelChoice, AccelDecision};

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

/// The checks of the vm and gvisor backends. With `probe_vm`, times the tiny KVM guest now
/// (up to [`accel::PROBE_TIMEOUT`]) and caches the decision, as the first vm env would.
pub fn checks(paths: &Paths, exe: &Path, probe_vm: bool) -> Vec<Check> {
    let vm_cost = "no vm envs (backend = \"vm\")";
    let mut out = Vec::new();
    let qemu = verse_vm::find_qemu();
    out.push(match &qemu {
        Some(q) => check("vm:qemu", Status::Ok, q.display().to_string(), ""),
        None => check(
            "vm:qemu",
            Status::Missing,
            format!(
                "{} not found (apt-get install qemu-system-x86)",
                verse_vm::qemu::QEMU
            ),
            vm_cost,
        ),
    });
    let kernel = verse_vm::kernel::Kernel::find();
    out.push(match &kernel {
        Ok(k) => check(
            "vm:kernel",
            Status::Ok,
            format!("guest kernel {} ({})", k.release, k.vmlinuz.display()),
            "",
        ),
        Err(e) => check("vm:kernel", Status::Missing, e.to_string(), vm_cost),
    });
    let agent = verse_vm::initramfs::find_agent(exe);
    out.push(match &agent {
        Some(a) => check("vm:agent", Status::Ok, a.display().to_string(), ""),
        None => check(
            "vm:agent",
            Status::Missing,
            "no static verse-agent (scripts/build-agent.sh builds it; or set VERSE_AGENT)",
            vm_cost,
        ),
    });
    out.push(match on_path("mkfs.erofs") {
        Some(p) => check("vm:mkfs.erofs", Status::Ok, p.display().to_string(), ""),
        None => check(
            "vm:mkfs.erofs",
            Status::Missing,
            "not found (apt-get install erofs-utils)",
            "vm envs cannot get their layer disks",
        ),
    });
    out.push(accel_check(
        paths,
        exe,
        probe_vm,
        qemu.as_deref(),
        kernel.ok(),
    ));
    out.push(match on_path("runsc") {
        Some(p) => check(
            "gvisor:runsc",
            Status::Ok,
            format!("{} (ptrace platform)", p.display()),
            "",
        ),
        None => check(
            "gvisor:runsc",
            Status::Missing,
            "runsc not found (apt-get install runsc)",
            "no gvisor envs (backend = \"gvisor\")",
        ),
    });
    out
}

fn decision_check(d: &AccelDecision, how: &str) -> Check {
    let status = match d.accel {
        Accel::Kvm => Status::Ok,
        Accel::Tcg => Status::Warn,
    };
    check(
        "vm:accel",
        status,
        format!("{} ({how}): {}", d.accel, d.reason),
        "vm envs run under software emulation: boots take seconds, guest code runs many times slower",
    )
}

fn accel_check(
    paths: &Paths,
    exe: &Path,
    probe_vm: bool,
    qemu: Option<&Path>,
    kernel: Option<verse_vm::kernel::Kernel>,
) -> Check {
    let cache = paths.accel_cache();
    let cached = std::fs::read(&cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<AccelDecision>(&b).ok());
    if !probe_vm
        && let Some(d) = &cached
        && kernel.as_ref().is_none_or(|k| k.release == d.kernel)
    {
        return decision_check(
            d,
            &format!("decided earlier, cached in {}", cache.display()),
        );
    }
    let kvm_usable = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    if let Err(e) = kvm_usable {
        return check(
            "vm:accel",
            Status::Warn,
            format!("tcg: /dev/kvm is not usable ({e})"),
            "vm envs run under software emulation: boots take seconds, guest code runs many times slower",
        );
    }
    let (Some(qemu), Some(kernel)) = (qemu, kernel) else {
        return check(
            "vm:accel",
            Status::Missing,
            "undecided: needs QEMU and a guest kernel to time a test guest",
            "no vm envs",
        );
    };
    if !probe_vm {
        return check(
            "vm:accel",
            Status::Warn,
            format!(
                "undecided: /dev/kvm opens, but whether guests run at speed under it is known only after timing a tiny guest (up to {} s), which the first vm env with accel = \"auto\" does; `verse doctor --probe-vm` does it now",
                accel::PROBE_TIMEOUT.as_secs()
            ),
            "the first vm env start takes up to that much longer",
        );
    }
    let cache_dir = cache.parent().unwrap_or(Path::new("."));
    let initramfs = match verse_vm::boot_files(exe, cache_dir) {
        Ok((_, initramfs)) => initramfs,
        Err(e) => {
            return check(
                "vm:accel",
                Status::Missing,
                format!("cannot time a test guest: {e}"),
                "no vm envs",
            );
        }
    };
    // A stale or absent decision is replaced by a fresh probe.
    let _ = std::fs::remove_file(&cache);
    let d = accel::decide(AccelChoice::Auto, &cache, qemu, &kernel, &initramfs);
    decision_check(&d, "probed now")
}
