//! Builds the env's filesystem view inside its private mount namespace (runs in the
//! spawned child as root of the env's user namespace, which owns that mount namespace).
//!
//! Host paths (layers, upper and work dirs, the mountpoint, volume sources) are opened by
//! the parent before the child exists ([`HostFds`]) and reached only through those
//! descriptors: inside its user namespace the child could not even search a host
//! directory that only host root may enter.
//!
//! Every path inside the env is resolved with openat2(RESOLVE_IN_ROOT) against the merged
//! root and mounted through `/proc/self/fd/N`. This prevents a rootfs that contains
//! symlinks such as `proc -> /etc` from redirecting our mounts onto host paths.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
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

/// O_PATH descriptors to every host path the env's filesystem is built from, opened in
/// the env's own mount namespace (so the mounts they point at are the env's copies, which
/// overlay and bind mounts require) by a helper of the parent that is still host root.
pub(crate) struct HostFds {
    /// upper, work, mountpoint, then the lowers, then one per volume.
    fds: Vec<OwnedFd>,
    lowers: usize,
}

const LAYER: &str = "image layer";

/// The paths [`HostFds`] holds, in its order, each with what it is (for errors).
fn host_paths<'a>(rootfs: &'a Rootfs, volumes: &'a [BindMount]) -> Vec<(&'a Path, &'static str)> {
    let mut v = vec![
        (rootfs.upper.as_path(), "upper dir"),
        (rootfs.work.as_path(), "overlay work dir"),
        (rootfs.mountpoint.as_path(), "rootfs mountpoint"),
    ];
    v.extend(rootfs.lowers.iter().map(|p| (p.as_path(), LAYER)));
    v.extend(
        volumes
            .iter()
            .map(|b| (b.source.as_path(), "volume source")),
    );
    v
}

impl HostFds {
    fn upper(&self) -> &OwnedFd {
        &self.fds[0]
    }
    fn work(&self) -> &OwnedFd {
        &self.fds[1]
    }
    fn mountpoint(&self) -> &OwnedFd {
        &self.fds[2]
    }
    fn lowers(&self) -> &[OwnedFd] {
        &self.fds[3..3 + self.lowers]
    }
    fn volumes(&self) -> &[OwnedFd] {
        &self.fds[3 + self.lowers..]
    }

    /// Helper side (host root, forked by the parent): joins the mount namespace of the env
    /// child `pid`, opens every path there and sends the descriptors to the child over
    /// `to_child`. Joining only the mount namespace gives nothing to the env: the helper
    /// exits right after.
    ///
    /// With `layer_ns` (see [`Rootfs::lower_idmap`]) each layer is sent as a detached
    /// idmapped clone of its mount instead. Made here, inside the env's mount namespace,
    /// the clone's anonymous namespace is owned by the env's user namespace: the env's
    /// root may use it as an overlay layer (overlayfs refuses a layer whose mount
    /// namespace it has no CAP_SYS_ADMIN over, EPERM), yet it never appears in the env's
    /// mount tree and cannot be re-mapped from inside (only host root may idmap).
    pub(crate) fn open_and_send(
        pid: nix::unistd::Pid,
        rootfs: &Rootfs,
        volumes: &[BindMount],
        layer_ns: Option<&OwnedFd>,
        to_child: &OwnedFd,
    ) -> StepResult<()> {
        let ns_path = format!("/proc/{pid}/ns/mnt");
        let ns = nix::fcntl::open(
            ns_path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .step(|| format!("open {ns_path}"))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS)
            .step(|| format!("setns {ns_path}"))?;
        let fds = host_paths(rootfs, volumes)
            .into_iter()
            .map(|(p, what)| match layer_ns {
                Some(ns) if what == LAYER => crate::idmap::idmapped_tree(p, ns)
                    .step(|| format!("idmap {what} {}", p.display())),
                _ => nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                    .step(|| format!("open {what} {}", p.display())),
            })
            .collect::<StepResult<Vec<OwnedFd>>>()?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let iov = [std::io::IoSlice::new(b"F")];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        sendmsg::<()>(
            to_child.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .step(|| "send layer descriptors to the env child".into())?;
        Ok(())
    }

    /// Child side: receives what [`HostFds::open_and_send`] sent.
    pub(crate) fn recv(
        from_helper: &OwnedFd,
        rootfs: &Rootfs,
        volumes: &[BindMount],
    ) -> StepResult<HostFds> {
        let want = host_paths(rootfs, volumes).len();
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE((want * std::mem::size_of::<RawFd>()) as u32) };
        let mut cmsg_buf = vec![0u8; space as usize];
        let msg = recvmsg::<()>(
            from_helper.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .step(|| "receive layer descriptors".into())?;
        let mut fds = Vec::with_capacity(want);
        for c in msg.cmsgs().step(|| "receive layer descriptors".into())? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: descriptors just received with SCM_RIGHTS are new and ours.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if fds.len() != want {
            return Err(StepError::new(
                format!("received {} layer descriptors, expected {want}", fds.len()),
                libc::EPROTO,
            ));
        }
        Ok(HostFds {
            fds,
            lowers: rootfs.lowers.len(),
        })
    }
}

// The new mount API (fsopen/fsconfig/fsmount/move_mount), not in libc's constants.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

fn cstr(s: &str) -> StepResult<CString> {
    CString::new(s).map_err(|_| StepError::new(format!("NUL byte in {s:?}"), libc::EINVAL))
}

/// Mounts the overlay on the mountpoint and returns a descriptor to its root.
///
/// The layers are named as `/proc/self/fd/N` (the kernel follows those links to the
/// descriptors opened by the parent). `userxattr`: overlay's own markers (opaque
/// directories) are `user.overlay.*` xattrs, the only kind a user namespace's root may
/// write; redirect_dir and metacopy stay off, as they must in that mode. nodev: device
/// nodes shipped in an image are never usable. nosuid: setuid binaries in images are inert
/// (no_new_privs makes them inert too; this is a second wall).
///
/// The new mount API is used because it hands back the mount's root: the mountpoint is
/// only reachable through a descriptor opened before the mount, and that descriptor keeps
/// pointing at the empty directory underneath.
fn mount_overlay(host: &HostFds) -> StepResult<OwnedFd> {
    let lowers: Vec<String> = host.lowers().iter().map(fd_path).collect();
    let what = "mount overlay";
    // SAFETY: fsopen with a valid NUL-terminated fs name; returns a new fd or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    step_io(fs as libc::c_int, || format!("{what}: fsopen"))?;
    // SAFETY: fsopen returned a descriptor we now own.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    let set = |cmd: libc::c_uint, key: Option<&str>, value: Option<&str>| -> StepResult<()> {
        let key_c = key.map(cstr).transpose()?;
        let value_c = value.map(cstr).transpose()?;
        // SAFETY: fsconfig on our fs-context fd; key/value are NUL-terminated strings (or
        // NULL where the command takes none) that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key_c.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
                value_c.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            )
        };
        step_io(rc as libc::c_int, || {
            format!(
                "{what}: {} {}",
                key.unwrap_or("create"),
                value.unwrap_or("")
            )
        })
    };
    // One `lowerdir+` per layer (Linux 6.8+): each value is capped at 256
    // bytes by fsconfig(2), which a joined `lowerdir` of about 15 layers
    // already exceeds. Older kernels refuse the key before any layer is set,
    // and get the joined list.
    let mut layers = lowers.iter();
    match layers
        .next()
        .map(|first| set(FSCONFIG_SET_STRING, Some("lowerdir+"), Some(first)))
    {
        Some(Err(e)) if e.errno == libc::EINVAL => {
            set(
                FSCONFIG_SET_STRING,
                Some("lowerdir"),
                Some(&lowers.join(":")),
            )?;
        }
        Some(result) => {
            result?;
            for layer in layers {
                set(FSCONFIG_SET_STRING, Some("lowerdir+"), Some(layer))?;
            }
        }
        None => return Err(StepError::new(format!("{what}: no layers"), libc::EINVAL)),
    }
    set(
        FSCONFIG_SET_STRING,
        Some("upperdir"),
        Some(&fd_path(host.upper())),
    )?;
    set(
        FSCONFIG_SET_STRING,
        Some("workdir"),
        Some(&fd_path(host.work())),
    )?;
    set(FSCONFIG_SET_FLAG, Some("userxattr"), None)?;
    set(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount on the created context; returns a new mount fd or -1.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    };
    step_io(mnt as libc::c_int, || format!("{what}: fsmount"))?;
    // SAFETY: fsmount returned a descriptor we now own.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as i32) };
    // SAFETY: move_mount between two descriptors we hold, with empty paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            host.mountpoint().as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    step_io(rc as libc::c_int, || {
        format!("{what}: attach on the mountpoint")
    })?;
    Ok(mnt)
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
    host: &HostFds,
    volumes: &[BindMount],
    gid_map: &IdMap,
    share_host_network: bool,
    shm_size: u64,
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

    let root = mount_overlay(host)?;

    // Volumes first, so the kernel filesystems below are always on top.
    for (v, fd) in volumes.iter().zip(host.volumes()) {
        let src = fd_path(fd);
        let is_dir = nix::sys::stat::fstat(fd)
            .step(|| format!("stat volume source {}", v.source.display()))?
            .st_mode
            & libc::S_IFMT
            == libc::S_IFDIR;
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
        bind(&root, &src, &v.target, flags)?;
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

    setup_dev(&root, gid_map, shm_size)?;

    // sysfs read-only: shows the env's net namespace devices, no writable host tunables.
    let sys_fd = mkdir_in_root(&root, Path::new("/sys"))?;
    if share_host_network {
        // The host's network namespace is not ours to mount a sysfs for: bind the host's,
        // read-only (image build steps only; see ContainerConfig::share_host_network).
        bind(&root, "/sys", Path::new("/sys"), nsx | MsFlags::MS_RDONLY)?;
    } else {
        mount_fd(
            Some("sysfs"),
            &sys_fd,
            Some("sysfs"),
            nsx | MsFlags::MS_RDONLY,
            None,
            "mount sysfs on /sys",
        )?;
    }

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
    nix::unistd::fchdir(&root).step(|| "chdir into the env's root".into())?;
    pivot_root(".", ".").step(|| "pivot_root into the env's root".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach old root".into())?;
    chdir("/").step(|| "chdir /".into())?;
    Ok(())
}

/// A minimal /dev: tmpfs with a few pseudo-devices bound from the host, a private devpts
/// instance (no access to host terminals), /dev/shm, and the usual symlinks. No block
/// devices, no /dev/mem, no /dev/kmsg.
fn setup_dev(root: &OwnedFd, gid_map: &IdMap, shm_size: u64) -> StepResult<()> {
    let dev = Path::new("/dev");
    // Owned by the env's root (ids as seen in the env's user namespace, where we mount).
    let owner = "uid=0,gid=0";
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

    // gid 5 ("tty") owns new ptys when it is mapped; the option takes a gid of the
    // mounter's user namespace, the env's.
    let pts = mkdir_in_root(root, &dev.join("pts"))?;
    let mut opts = "newinstance,ptmxmode=0666,mode=0620".to_owned();
    if gid_map.size > 5 && gid_map.container_id == 0 {
        opts.push_str(",gid=5");
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
    // Its pages count against the env's memory cgroup like any other tmpfs page.
    let opts = format!("mode=1777,size={shm_size},{owner}");
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
