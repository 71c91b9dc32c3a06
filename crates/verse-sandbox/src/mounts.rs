//! Builds the env's filesystem view inside its private mount namespace (runs in the
//! spawned child while it is still host root, before the user namespace).
//!
//! Every path inside the env is resolved with openat2(RESOLVE_IN_ROOT) against the merged
//! root and mounted through `/proc/self/fd/N`. This prevents a rootfs that contains
//! symlinks such as `proc -> /etc` from redirecting our mounts onto host paths.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, pivot_root};

use crate::child::{StepContext, StepError, StepResult, step_io};
use crate::{BindMount, IdMap, Rootfs};

/// struct open_how for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` (absolute inside the env) as an O_PATH fd, resolving every component,
/// symlinks included, as if `root` were `/`.
fn open_in_root(root: &OwnedFd, path: &Path) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        CString::new(".")
    } else {
        CString::new(rel.as_os_str().as_bytes())
    }
    .map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid NUL-terminated path and a properly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: openat2 returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `mkdir -p` inside the env; returns an O_PATH fd to the directory.
fn mkdir_in_root(root: &OwnedFd, path: &Path) -> StepResult<OwnedFd> {
    let mut cur = std::path::PathBuf::from("/");
    let mut fd = open_in_root(root, &cur).step(|| "open /".into())?;
    for comp in path.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        cur.push(name);
        fd = match open_in_root(root, &cur) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(StepError::new(format!("mkdir {}", cur.display()), e as i32));
                    }
                }
                open_in_root(root, &cur).step(|| format!("open {}", cur.display()))?
            }
            Err(e) => return Err(StepError::new(format!("open {}", cur.display()), e as i32)),
        };
    }
    Ok(fd)
}

/// Creates an empty regular file (a bind-mount target for a file) unless something exists.
fn touch_in_root(root: &OwnedFd, path: &Path) -> StepResult<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    let parent = mkdir_in_root(root, path.parent().unwrap_or(Path::new("/")))?;
    let name = path.file_name().unwrap_or_default();
    match nix::fcntl::openat(
        &parent,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(StepError::new(
                format!("create {}", path.display()),
                e as i32,
            ));
        }
    }
    open_in_root(root, path).step(|| format!("open {}", path.display()))
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// mount(2) onto the object `target` refers to; `what` names it in errors.
fn mount_fd(
    source: Option<&str>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> StepResult<()> {
    mount(source, fd_path(target).as_str(), fstype, flags, data).step(|| what.to_owned())
}

/// Bind-mounts `source` onto `target` inside the env, then remounts it with `flags` (a
/// bind mount ignores flags on creation; they must be applied by a remount of the new
/// mount, which we re-open to reach).
fn bind(root: &OwnedFd, source: &str, target: &Path, flags: MsFlags) -> StepResult<()> {
    let what = || format!("bind {source} on {}", target.display());
    let fd = open_in_root(root, target).step(what)?;
    mount_fd(
        Some(source),
        &fd,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &what(),
    )?;
    if !flags.is_empty() {
        let fd = open_in_root(root, target).step(what)?;
        let f = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags;
        mount_fd(
            None,
            &fd,
            None,
            f,
            None,
            &format!("remount {} ({f:?})", target.display()),
        )?;
    }
    Ok(())
}

fn overlay_options(rootfs: &Rootfs) -> StepResult<String> {
    let check = |p: &Path| -> StepResult<String> {
        match p.to_str() {
            Some(s) if !s.contains([',', ':', '\\']) && p.is_absolute() => Ok(s.to_owned()),
            _ => Err(StepError::new(
                format!(
                    "overlay path {} must be absolute, UTF-8, without ',' ':' '\\'",
                    p.display()
                ),
                libc::EINVAL,
            )),
        }
    };
    if rootfs.lowers.is_empty() {
        return Err(StepError::new("overlay: no lower directory", libc::EINVAL));
    }
    let lowers = rootfs
        .lowers
        .iter()
        .map(|p| check(p))
        .collect::<StepResult<Vec<_>>>()?;
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        check(&rootfs.upper)?,
        check(&rootfs.work)?
    ))
}

/// Volume targets that would shadow the kernel filesystems we set up are refused.
pub(crate) fn check_volume_target(target: &Path) -> Result<(), String> {
    if !target.is_absolute() {
        return Err(format!(
            "volume target {} must be absolute",
            target.display()
        ));
    }
    let first = target.components().find_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        _ => None,
    });
    match first.as_ref().and_then(|f| f.to_str()) {
        None | Some("proc" | "sys" | "dev") => Err(format!(
            "volume target {} is not allowed (/, /proc, /sys, /dev)",
            target.display()
        )),
        _ => Ok(()),
    }
}

/// Proc files hidden behind /dev/null (kernel memory, keyrings, timers, scheduler
/// internals: information leaks and, for kcore, a host memory image).
const MASKED_FILES: [&str; 5] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
];
/// Directories hidden behind an empty read-only tmpfs (ACPI and SCSI control, firmware
/// interfaces such as EFI variables).
const MASKED_DIRS: [&str; 3] = ["/proc/acpi", "/proc/scsi", "/sys/firmware"];
/// Proc paths made read-only (sysctls, sysrq, IRQ affinity, bus and fs tunables are global
/// to the host even when seen from the env).
const READONLY_PATHS: [&str; 5] = [
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];
/// Host device nodes bind-mounted into the env's /dev (harmless pseudo-devices only).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The whole filesystem setup, ending with pivot_root into the merged tree.
pub(crate) fn setup_rootfs(
    rootfs: &Rootfs,
    volumes: &[BindMount],
    uid_map: &IdMap,
    gid_map: &IdMap,
) -> StepResult<()> {
    // Prevents: our mounts propagating back to the host (or to other envs), and host
    // mount events propagating into the env.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(|| "make / rprivate".into())?;

    // nodev: device nodes shipped in an image are never usable. nosuid: setuid binaries
    // in images are inert (no_new_privs makes them inert too; this is a second wall).
    let opts = overlay_options(rootfs)?;
    let mp = &rootfs.mountpoint;
    mount(
        Some("overlay"),
        mp,
        Some("overlay"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .step(|| format!("mount overlay on {}", mp.display()))?;
    let root: OwnedFd = nix::fcntl::open(
        mp,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open {}", mp.display()))?;

    // Volumes first, so the kernel filesystems below are always on top.
    for v in volumes {
        let src = v.source.to_str().ok_or_else(|| {
            StepError::new(
                format!("volume source {} is not UTF-8", v.source.display()),
                libc::EINVAL,
            )
        })?;
        let is_dir = std::fs::metadata(&v.source)
            .step(|| format!("stat volume source {src}"))?
            .is_dir();
        if is_dir {
            mkdir_in_root(&root, &v.target)?;
        } else {
            touch_in_root(&root, &v.target)?;
        }
        // nosuid,nodev always: a host directory may hold setuid binaries or device nodes.
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if v.readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        bind(&root, src, &v.target, flags)?;
    }

    // A fresh procfs: shows only the env's pid namespace.
    let nsx = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_fd = mkdir_in_root(&root, Path::new("/proc"))?;
    mount_fd(
        Some("proc"),
        &proc_fd,
        Some("proc"),
        nsx,
        None,
        "mount proc on /proc",
    )?;

    setup_dev(&root, uid_map, gid_map)?;

    // sysfs read-only: shows the env's net namespace devices, no writable host tunables.
    let sys_fd = mkdir_in_root(&root, Path::new("/sys"))?;
    mount_fd(
        Some("sysfs"),
        &sys_fd,
        Some("sysfs"),
        nsx | MsFlags::MS_RDONLY,
        None,
        "mount sysfs on /sys",
    )?;

    for f in MASKED_FILES {
        if open_in_root(&root, Path::new(f)).is_ok() {
            bind(&root, "/dev/null", Path::new(f), MsFlags::empty())?;
        }
    }
    for d in MASKED_DIRS {
        if let Ok(fd) = open_in_root(&root, Path::new(d)) {
            let what = format!("mask {d} with tmpfs");
            mount_fd(
                Some("tmpfs"),
                &fd,
                Some("tmpfs"),
                nsx | MsFlags::MS_RDONLY,
                Some("size=0"),
                &what,
            )?;
        }
    }
    for p in READONLY_PATHS {
        if let Ok(fd) = open_in_root(&root, Path::new(p)) {
            bind(&root, &fd_path(&fd), Path::new(p), nsx | MsFlags::MS_RDONLY)?;
        }
    }

    // pivot_root + detach: the host's root is no longer reachable from this mount
    // namespace at all (unlike chroot, which can be escaped with a second chroot).
    chdir(mp).step(|| format!("chdir {}", mp.display()))?;
    pivot_root(".", ".").step(|| format!("pivot_root into {}", mp.display()))?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach old root".into())?;
    chdir("/").step(|| "chdir /".into())?;
    Ok(())
}

/// A minimal /dev: tmpfs with a few pseudo-devices bound from the host, a private devpts
/// instance (no access to host terminals), /dev/shm, and the usual symlinks. No block
/// devices, no /dev/mem, no /dev/kmsg.
fn setup_dev(root: &OwnedFd, uid_map: &IdMap, gid_map: &IdMap) -> StepResult<()> {
    let dev = Path::new("/dev");
    // Owned by the env's root (host ids are the mapped ones).
    let owner = format!("uid={},gid={}", uid_map.host_id, gid_map.host_id);
    let fd = mkdir_in_root(root, dev)?;
    let f = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let opts = format!("mode=755,size=4m,{owner}");
    mount_fd(
        Some("tmpfs"),
        &fd,
        Some("tmpfs"),
        f,
        Some(&opts),
        "mount tmpfs on /dev",
    )?;

    for d in DEVICES {
        let target = dev.join(d);
        touch_in_root(root, &target)?;
        bind(root, &format!("/dev/{d}"), &target, MsFlags::empty())?;
    }

    // gid 5 ("tty") owns new ptys when it is mapped; the option takes a host gid.
    let pts = mkdir_in_root(root, &dev.join("pts"))?;
    let mut opts = "newinstance,ptmxmode=0666,mode=0620".to_owned();
    if gid_map.size > 5 && gid_map.container_id == 0 {
        opts.push_str(&format!(",gid={}", gid_map.host_id + 5));
    }
    mount_fd(
        Some("devpts"),
        &pts,
        Some("devpts"),
        f,
        Some(&opts),
        "mount devpts on /dev/pts",
    )?;

    let shm = mkdir_in_root(root, &dev.join("shm"))?;
    let opts = format!("mode=1777,size=64m,{owner}");
    mount_fd(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        f | MsFlags::MS_NODEV,
        Some(&opts),
        "mount tmpfs on /dev/shm",
    )?;

    let devfd = open_in_root(root, dev).step(|| "open /dev".into())?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(to, &devfd, link).step(|| format!("symlink /dev/{link}"))?;
    }
    Ok(())
}

/// Brings `lo` up in the env's (otherwise empty) network namespace.
pub(crate) fn loopback_up() -> StepResult<()> {
    // SAFETY: plain socket(2) call; the fd is wrapped right away.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    step_io(s, || "socket for lo".into())?;
    // SAFETY: s is a new descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read/write the ifreq we pass, which lives for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    step_io(rc, || "SIOCGIFFLAGS lo".into())?;
    // SAFETY: ifru_flags is the member SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    step_io(rc, || "bring lo up".into())
}
