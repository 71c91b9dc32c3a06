//! Probes that only ask the kernel: file systems, seccomp, landlock, KVM.

use std::io;

/// Names in /proc/filesystems.
pub(crate) fn filesystems() -> Vec<String> {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// The `Seccomp:` field of /proc/self/status.
pub(crate) fn seccomp_mode() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether seccomp filters can be installed, asked without installing one:
/// `SECCOMP_GET_ACTION_AVAIL` exists only with `CONFIG_SECCOMP_FILTER`.
pub(crate) fn seccomp_filter_supported() -> bool {
    // SAFETY: prctl(PR_GET_SECCOMP) takes no pointers; it returns the mode or fails with EINVAL.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
        return false;
    }
    [libc::SECCOMP_RET_ERRNO, libc::SECCOMP_RET_KILL_PROCESS]
        .iter()
        .all(|&action| {
            let action: u32 = action;
            // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 through the pointer, which
            // points at a live local for the duration of the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_GET_ACTION_AVAIL,
                    0,
                    &action as *const u32,
                )
            };
            rc == 0
        })
}

/// Landlock ABI version via `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub(crate) fn landlock_abi() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with this flag the kernel ignores the (null) attribute pointer and size, creates
    // nothing and returns the ABI version.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as u32)
    }
}

/// `KVM_GET_API_VERSION` on /dev/kvm.
pub(crate) fn kvm_api_version() -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00; // _IO(KVMIO, 0x00)
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")?;
    // SAFETY: KVM_GET_API_VERSION takes no argument; the fd is open for the whole call.
    let rc = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether this host is itself a guest (x86 `hypervisor` CPU flag).
pub(crate) fn running_under_hypervisor() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .take(1)
                .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
        })
        .unwrap_or(false)
}
