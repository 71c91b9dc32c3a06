//! `verse-agent`: PID 1 of a Verse microVM.
//!
//! Boot: mount /proc, /sys and /dev; load the kernel modules the initramfs
//! carries (virtio transport, block, console, erofs, overlay, ext4); open the
//! control and log virtio-serial ports; say Ready and receive the [`BootSpec`];
//! mount the read-only layer disks and the writable disk, an overlay of them
//! as the new root, move into it; set the hostname; start the main command.
//! Then serve exec, stdio, resize, signals and exit codes over the control
//! port until the main command ends or the shim asks for a shutdown, and
//! power off after unmounting the writable disk cleanly.

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use verse_agent::proto::{self, BootSpec, Control, Decoder, ExecSpec, Message};
use verse_api::frame::{Frame, Kind};

mod files;

/// The agent queues no more than this for the host before reading further
/// from files it sends (the guest may have little memory).
const READ_QUEUE: usize = 1 << 20;

const MODULE_LIST: &str = "/verse/modules";
const NEW_ROOT: &str = "/verse/root";

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "verse-agent is the init of a Verse microVM and runs only as PID 1 inside one; Verse starts it"
        );
        std::process::exit(2);
    }
    if let Err(e) = boot_and_serve() {
        console(&format!("verse-agent: {e}"));
    }
    power_off();
}

/// Writes to the kernel console (the VM's serial port, the env's kernel.log).
fn console(line: &str) {
    if let Ok(mut c) = File::options().write(true).open("/dev/console") {
        let _ = writeln!(c, "{line}");
    } else {
        eprintln!("{line}");
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    // QEMU runs with -no-reboot, so a reboot ends the VM: this works on
    // microvm whether or not the guest can reach an ACPI power-off.
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("creating {target}: {e}"))?;
    mount(Some(source), target, Some(fstype), flags, data)
        .map_err(|e| format!("mounting {fstype} {source} on {target}: {e}"))
}

fn boot_and_serve() -> Result<(), String> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_fs("proc", "/proc", "proc", nosuid, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid, None)?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )?;
    // The OOM killer must pick the env's processes, never the agent.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");

    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == proto::PROBE_FLAG) {
        console(proto::PROBE_MARKER);
        return Ok(());
    }
    load_modules()?;
    let ctl = open_port(proto::CONTROL_PORT)?;
    let log = open_port(proto::LOG_PORT)?;
    let mut agent = Agent::new(ctl, log)?;
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    agent.send(Message::control(proto::MAIN, Control::Ready { kernel }));
    let boot = agent.wait_boot()?;
    files::drop_groups();
    let prepared = setup_root(&boot)
        .and_then(|()| setup_net(boot.net.as_ref()))
        .and_then(|()| match &boot.downloads {
            Some(dir) => files::make_downloads(dir, boot.main.uid, boot.main.gid),
            None => Ok(()),
        });
    if let Err(e) = prepared {
        agent.send(Message::control(
            proto::MAIN,
            Control::Failed { error: e.clone() },
        ));
        agent.flush_blocking();
        return Err(e);
    }
    match agent.start(proto::MAIN, &boot.main, true) {
        Ok(pid) => agent.send(Message::control(proto::MAIN, Control::Started { pid })),
        Err(e) => {
            agent.send(Message::control(
                proto::MAIN,
                Control::Failed { error: e.clone() },
            ));
            agent.flush_blocking();
            return Err(e);
        }
    }
    agent.serve();
    agent.flush_blocking();
    shutdown_filesystems();
    Ok(())
}

/// Loads the modules listed (in dependency order) in the initramfs.
fn load_modules() -> Result<(), String> {
    let Ok(list) = std::fs::read_to_string(MODULE_LIST) else {
        return Ok(());
    };
    for name in list.lines().filter(|l| !l.is_empty()) {
        let path = format!("/verse/{name}.ko");
        let file = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        let params = CString::default();
        match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(format!("loading kernel module {name}: {e}")),
        }
    }
    Ok(())
}

/// Opens the virtio-serial port named `name` (its name is in sysfs; there is
/// no udev to make /dev/virtio-ports links).
fn open_port(name: &str) -> Result<File, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let port_name =
                    std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if port_name.trim() == name {
                    let dev = Path::new("/dev").join(entry.file_name());
                    return File::options()
                        .read(true)
                        .write(true)
                        .open(&dev)
                        .map_err(|e| format!("opening port {name} ({}): {e}", dev.display()));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no virtio-serial port named {name} appeared"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// /dev/vdX of the virtio-blk disk with this serial.
fn disk_by_serial(serial: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/block") {
            for entry in entries.flatten() {
                let found =
                    std::fs::read_to_string(entry.path().join("serial")).unwrap_or_default();
                if found.trim() == serial {
                    return Ok(format!("/dev/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no disk with serial {serial} appeared"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mounts the layers read-only and the writable disk, an overlay of them at
/// NEW_ROOT, moves /proc, /sys and /dev into it and makes it the root.
fn setup_root(boot: &BootSpec) -> Result<(), String> {
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    let mut lowers = Vec::new();
    for (index, serial) in boot.layers.iter().enumerate() {
        let dev = disk_by_serial(serial)?;
        let target = format!("/verse/layers/{index}");
        mount_fs(&dev, &target, "erofs", ro, None)?;
        lowers.push(target);
    }
    let data = disk_by_serial(&boot.data)?;
    mount_fs(&data, "/verse/data", "ext4", MsFlags::MS_NODEV, None)?;
    for dir in ["/verse/data/upper", "/verse/data/work"] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir}: {e}"))?;
    }
    let options = format!(
        "lowerdir={},upperdir=/verse/data/upper,workdir=/verse/data/work",
        lowers.join(":")
    );
    mount_fs(
        "overlay",
        NEW_ROOT,
        "overlay",
        MsFlags::empty(),
        Some(&options),
    )?;
    for (from, to) in [("/proc", "proc"), ("/sys", "sys"), ("/dev", "dev")] {
        let target = format!("{NEW_ROOT}/{to}");
        std::fs::create_dir_all(&target).map_err(|e| format!("creating {target}: {e}"))?;
        mount(
            Some(from),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| format!("moving {from} into the root: {e}"))?;
    }
    // The initramfs cannot be pivot_root'ed away: move the new root over /
    // and chroot into it (what switch_root does).
    std::env::set_current_dir(NEW_ROOT).map_err(|e| format!("entering {NEW_ROOT}: {e}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("moving the root over /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into the new root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("entering /: {e}"))?;
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("ptmxmode=0666,mode=0620"),
    )?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )?;
    nix::unistd::sethostname(&boot.hostname).map_err(|e| format!("setting the hostname: {e}"))?;
    Ok(())
}

/// Brings up lo and, for a networked env, `eth0`: the env's /32 address, an on-link route
/// to the gateway (the host's tap) and the default route through it, no IPv6 (the host drops
/// it anyway), and the resolv.conf the host gave. Done with ioctls: the image need not have
/// `ip`. This is convenience, not policy: the host filters the tap whatever the guest sets.
fn setup_net(net: Option<&proto::GuestNet>) -> Result<(), String> {
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!(
            "socket for interface setup: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned from here on.
    let sock: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
    set_up(&sock, "lo")?;
    let Some(net) = net else {
        return Ok(());
    };
    for key in ["all", "default", "eth0"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6"), "1");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new("/sys/class/net/eth0").exists() {
        if Instant::now() > deadline {
            return Err("the env has a network but no eth0 appeared in the guest".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ifr = ifreq("eth0");
    ifr.ifr_ifru.ifru_addr = sockaddr(net.address);
    ioctl(&sock, libc::SIOCSIFADDR, &mut ifr, "setting eth0's address")?;
    ifr.ifr_ifru.ifru_netmask = sockaddr(std::net::Ipv4Addr::BROADCAST);
    ioctl(
        &sock,
        libc::SIOCSIFNETMASK,
        &mut ifr,
        "setting eth0's netmask",
    )?;
    set_up(&sock, "eth0")?;
    let mut dev = *b"eth0\0";
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut host: libc::rtentry = unsafe { std::mem::zeroed() };
    host.rt_dst = sockaddr(net.gateway);
    host.rt_genmask = sockaddr(std::net::Ipv4Addr::BROADCAST);
    host.rt_flags = libc::RTF_UP | libc::RTF_HOST;
    host.rt_dev = dev.as_mut_ptr().cast();
    ioctl(
        &sock,
        libc::SIOCADDRT,
        &mut host,
        "adding the route to the gateway",
    )?;
    // SAFETY: as above.
    let mut default: libc::rtentry = unsafe { std::mem::zeroed() };
    default.rt_dst = sockaddr(std::net::Ipv4Addr::UNSPECIFIED);
    default.rt_genmask = sockaddr(std::net::Ipv4Addr::UNSPECIFIED);
    default.rt_gateway = sockaddr(net.gateway);
    default.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    default.rt_dev = dev.as_mut_ptr().cast();
    ioctl(
        &sock,
        libc::SIOCADDRT,
        &mut default,
        "adding the default route",
    )?;
    // A symlink (as some images ship) would send the write elsewhere: replace it.
    let _ = std::fs::remove_file("/etc/resolv.conf");
    let _ = std::fs::create_dir_all("/etc");
    std::fs::write("/etc/resolv.conf", &net.resolv_conf)
        .map_err(|e| format!("writing /etc/resolv.conf: {e}"))
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

fn sockaddr(addr: std::net::Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; the kernel reads the former
    // through the latter (that is what the ioctl ABI is).
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl<T>(sock: &OwnedFd, request: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), String> {
    // SAFETY: `arg` is the struct this request reads (ifreq or rtentry), alive for the call;
    // the socket is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request as _, arg as *mut T) } < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut ifr = ifreq(name);
    ioctl(
        sock,
        libc::SIOCGIFFLAGS,
        &mut ifr,
        &format!("reading {name}'s flags"),
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(
        sock,
        libc::SIOCSIFFLAGS,
        &mut ifr,
        &format!("bringing {name} up"),
    )
}

/// Makes the writable disk consistent before power-off.
fn shutdown_filesystems() {
    // Nothing but the agent is left; remounting read-only flushes the
    // journal, so the next boot finds a clean ext4.
    nix::unistd::sync();
    for target in ["/", "/verse/data"] {
        let _ = mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        );
    }
    nix::unistd::sync();
}

struct Proc {
    channel: u32,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    outputs: Vec<(Kind, File)>,
    pty: Option<File>,
    is_main: bool,
}

struct Agent {
    ctl: File,
    log: File,
    decoder: Decoder,
    outbuf: Vec<u8>,
    signals: SignalFd,
    procs: HashMap<i32, Proc>,
    main_pid: Option<Pid>,
    shutdown_deadline: Option<Instant>,
    done: bool,
    /// Files being sent to the host, by channel.
    readers: HashMap<u32, files::Reader>,
    /// Files being written from the host's data, by channel.
    writers: HashMap<u32, files::Writer>,
}

impl Agent {
    fn new(ctl: File, log: File) -> Result<Agent, String> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("creating a signalfd: {e}"))?;
        set_nonblocking(&ctl);
        Ok(Agent {
            ctl,
            log,
            decoder: Decoder::default(),
            outbuf: Vec::new(),
            signals,
            procs: HashMap::new(),
            main_pid: None,
            shutdown_deadline: None,
            done: false,
            readers: HashMap::new(),
            writers: HashMap::new(),
        })
    }

    fn send(&mut self, message: Message) {
        message.encode_into(&mut self.outbuf);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.outbuf.is_empty() {
            match self.ctl.write(&self.outbuf) {
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Sends everything queued, waiting up to two seconds for the host.
    fn flush_blocking(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.outbuf.is_empty() && Instant::now() < deadline {
            self.flush();
            let mut fds = [PollFd::new(self.ctl.as_fd(), PollFlags::POLLOUT)];
            let _ = poll(&mut fds, PollTimeout::from(100u16));
        }
    }

    fn read_ctl(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        match self.ctl.read(&mut buf) {
            // No host connected: the port reads as closed until one is.
            Ok(0) => std::thread::sleep(Duration::from_millis(10)),
            Ok(n) => self.decoder.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("reading the control port: {e}")),
        }
        Ok(())
    }

    fn wait_boot(&mut self) -> Result<BootSpec, String> {
        loop {
            let mut fds = [PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(1000u16));
            self.read_ctl()?;
            while let Some(message) = self.decoder.next_message().map_err(|e| e.to_string())? {
                if let Message::Control {
                    control: Control::Boot(boot),
                    ..
                } = message
                {
                    return Ok(boot);
                }
            }
        }
    }

    fn start(&mut self, channel: u32, spec: &ExecSpec, is_main: bool) -> Result<u32, String> {
        let Some(program) = spec.argv.first() else {
            return Err("no command given".into());
        };
        let mut command = Command::new(program);
        command
            .args(&spec.argv[1..])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .uid(spec.uid)
            .gid(spec.gid);
        // SAFETY: open(2), write(2) and close(2) are async-signal-safe; the
        // path and value are static. The agent shields itself from the OOM
        // killer (-1000); its children must not inherit that, or a memory
        // hog would leave the kernel nothing to kill.
        unsafe {
            command.pre_exec(|| {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let proc = if is_main {
            let out = self.log.try_clone().map_err(|e| e.to_string())?;
            let err = self.log.try_clone().map_err(|e| e.to_string())?;
            command
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err);
            // SAFETY: setsid is async-signal-safe and touches no memory.
            unsafe {
                command.pre_exec(|| {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            Proc {
                channel,
                stdin: None,
                stdin_buf: Vec::new(),
                stdin_eof: true,
                outputs: Vec::new(),
                pty: None,
                is_main,
            }
        } else if spec.tty {
            let size = nix::pty::Winsize {
                ws_row: spec.rows.max(1),
                ws_col: spec.cols.max(1),
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty =
                nix::pty::openpty(Some(&size), None).map_err(|e| format!("opening a pty: {e}"))?;
            let master = File::from(pty.master);
            set_nonblocking(&master);
            let slave = pty.slave;
            command
                .stdin(slave.try_clone().map_err(|e| e.to_string())?)
                .stdout(slave.try_clone().map_err(|e| e.to_string())?)
                .stderr(slave);
            // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe; the
            // ioctl takes an integer argument and touches no memory.
            unsafe {
                command.pre_exec(|| {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            Proc {
                channel,
                stdin: Some(master.try_clone().map_err(|e| e.to_string())?),
                stdin_buf: Vec::new(),
                stdin_eof: false,
                outputs: vec![(Kind::Stdout, master.try_clone().map_err(|e| e.to_string())?)],
                pty: Some(master),
                is_main,
            }
        } else {
            let (in_read, in_write) = std::io::pipe().map_err(|e| e.to_string())?;
            let (out_read, out_write) = std::io::pipe().map_err(|e| e.to_string())?;
            let (err_read, err_write) = std::io::pipe().map_err(|e| e.to_string())?;
            command.stdin(in_read).stdout(out_write).stderr(err_write);
            // SAFETY: setsid is async-signal-safe and touches no memory.
            unsafe {
                command.pre_exec(|| {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            let stdin = File::from(OwnedFd::from(in_write));
            let stdout = File::from(OwnedFd::from(out_read));
            let stderr = File::from(OwnedFd::from(err_read));
            for f in [&stdin, &stdout, &stderr] {
                set_nonblocking(f);
            }
            Proc {
                channel,
                stdin: Some(stdin),
                stdin_buf: Vec::new(),
                stdin_eof: false,
                outputs: vec![(Kind::Stdout, stdout), (Kind::Stderr, stderr)],
                pty: None,
                is_main,
            }
        };
        let child = command
            .spawn()
            .map_err(|e| format!("starting {program}: {e}"))?;
        // The child's pty/pipe ends live in `command`; drop them now so the
        // parent sees end of file when the child exits.
        drop(command);
        let pid = child.id();
        self.procs.insert(pid as i32, proc);
        if is_main {
            self.main_pid = Some(Pid::from_raw(pid as i32));
        }
        Ok(pid)
    }

    fn serve(&mut self) {
        while !self.done {
            self.pump_readers();
            let timeout = match self.shutdown_deadline {
                _ if !self.readers.is_empty() && self.outbuf.len() < READ_QUEUE => {
                    PollTimeout::ZERO
                }
                Some(d) => PollTimeout::from(
                    d.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(60_000) as u16,
                ),
                None => PollTimeout::NONE,
            };
            #[derive(Clone, Copy)]
            enum T {
                Ctl,
                Signals,
                Out(i32, usize),
                In(i32),
            }
            let mut tokens = vec![T::Ctl, T::Signals];
            let ctl_flags = if self.outbuf.is_empty() {
                PollFlags::POLLIN
            } else {
                PollFlags::POLLIN | PollFlags::POLLOUT
            };
            let mut fds = vec![
                PollFd::new(self.ctl.as_fd(), ctl_flags),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            ];
            for (pid, proc) in &self.procs {
                for (index, (_, file)) in proc.outputs.iter().enumerate() {
                    tokens.push(T::Out(*pid, index));
                    fds.push(PollFd::new(file.as_fd(), PollFlags::POLLIN));
                }
                if let Some(stdin) = &proc.stdin
                    && !proc.stdin_buf.is_empty()
                {
                    tokens.push(T::In(*pid));
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    console(&format!("verse-agent: poll: {e}"));
                    return;
                }
            }
            let ready: Vec<(T, PollFlags)> = tokens
                .into_iter()
                .zip(fds.iter())
                .filter_map(|(t, fd)| fd.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
                .collect();
            drop(fds);
            for (token, flags) in ready {
                match token {
                    T::Ctl => {
                        if flags.contains(PollFlags::POLLOUT) {
                            self.flush();
                        }
                        if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                            if let Err(e) = self.read_ctl() {
                                console(&format!("verse-agent: {e}"));
                            }
                            self.process_messages();
                        }
                    }
                    T::Signals => {
                        while let Ok(Some(_)) = self.signals.read_signal() {}
                        self.reap();
                    }
                    T::Out(pid, index) => self.on_output(pid, index),
                    T::In(pid) => self.flush_stdin(pid),
                }
            }
            if self.shutdown_deadline.is_some_and(|d| d <= Instant::now()) {
                // SIGKILL every process but the agent.
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                self.shutdown_deadline = Some(Instant::now() + Duration::from_secs(5));
                self.reap();
            }
        }
    }

    fn process_messages(&mut self) {
        loop {
            let message = match self.decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    console(&format!("verse-agent: bad message from the host: {e}"));
                    self.decoder = Decoder::default();
                    return;
                }
            };
            match message {
                Message::Control {
                    channel,
                    control: Control::Exec(spec),
                } => match self.start(channel, &spec, false) {
                    Ok(pid) => self.send(Message::control(channel, Control::Started { pid })),
                    Err(error) => self.send(Message::control(channel, Control::Failed { error })),
                },
                Message::Control {
                    control: Control::Shutdown { timeout_ms },
                    ..
                } => match self.main_pid {
                    Some(main) => {
                        let _ = kill(main, Signal::SIGTERM);
                        self.shutdown_deadline =
                            Some(Instant::now() + Duration::from_millis(timeout_ms));
                    }
                    None => self.done = true,
                },
                Message::Control {
                    channel,
                    control: Control::File(op),
                } => self.file_op(channel, op),
                Message::Control {
                    channel,
                    control: Control::Cancel,
                } => {
                    self.readers.remove(&channel);
                    if let Some(writer) = self.writers.remove(&channel) {
                        writer.abandon();
                    }
                }
                Message::Control { .. } => {}
                Message::Stream { channel, frame } if self.writers.contains_key(&channel) => {
                    self.on_write_frame(channel, frame)
                }
                Message::Stream { channel, frame } => self.on_frame(channel, frame),
            }
        }
    }

    fn file_op(&mut self, channel: u32, op: proto::FileOp) {
        use proto::FileOp;
        let reply = match op {
            FileOp::List { dir, uid, gid } => match files::list(&dir, uid, gid) {
                Ok(files) => Control::Listing { files },
                Err(error) => Control::Failed { error },
            },
            FileOp::Read {
                path,
                max_bytes,
                nofollow,
                uid,
                gid,
            } => match files::open_read(&path, max_bytes, nofollow, uid, gid) {
                Ok(reader) => {
                    // Sent by `pump_readers`, a piece at a time.
                    self.readers.insert(channel, reader);
                    return;
                }
                Err(error) => Control::Failed { error },
            },
            FileOp::Unlink {
                path,
                stamp,
                uid,
                gid,
            } => match files::unlink(&path, &stamp, uid, gid) {
                Ok(()) => Control::Done { bytes: 0 },
                Err(error) => Control::Failed { error },
            },
            FileOp::Write {
                dir,
                name,
                mode,
                uid,
                gid,
            } => match files::create(&dir, &name, mode, uid, gid) {
                Ok(files::Created::New(writer)) => {
                    self.writers.insert(channel, writer);
                    Control::Created { name }
                }
                Ok(files::Created::Exists) => Control::Exists,
                Err(error) => Control::Failed { error },
            },
        };
        self.send(Message::control(channel, reply));
    }

    /// Data of a file the host writes: stdin frames, then stdin eof.
    fn on_write_frame(&mut self, channel: u32, frame: Frame) {
        let reply = match frame.kind {
            Kind::Stdin => {
                let Some(writer) = self.writers.get_mut(&channel) else {
                    return;
                };
                match writer.write(&frame.payload) {
                    Ok(()) => return,
                    Err(error) => {
                        if let Some(writer) = self.writers.remove(&channel) {
                            writer.abandon();
                        }
                        Control::Failed { error }
                    }
                }
            }
            Kind::StdinEof => match self.writers.remove(&channel).map(files::Writer::finish) {
                Some(Ok(bytes)) => Control::Done { bytes },
                Some(Err(error)) => Control::Failed { error },
                None => return,
            },
            _ => return,
        };
        self.send(Message::control(channel, reply));
    }

    /// Sends pieces of the files being read while the host keeps up; a file
    /// that ends is checked against what it was when opened.
    fn pump_readers(&mut self) {
        let channels: Vec<u32> = self.readers.keys().copied().collect();
        let mut buf = vec![0u8; 64 * 1024];
        for channel in channels {
            while self.outbuf.len() < READ_QUEUE {
                let Some(reader) = self.readers.get_mut(&channel) else {
                    break;
                };
                let n = match reader.file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.readers.remove(&channel);
                        let error = format!("reading: {e}");
                        self.send(Message::control(channel, Control::Failed { error }));
                        break;
                    }
                };
                if n > 0 && reader.sent + (n as u64) <= reader.start.size {
                    reader.sent += n as u64;
                    proto::encode_data(channel, Kind::Stdout, &buf[..n], &mut self.outbuf);
                    continue;
                }
                let Some(reader) = self.readers.remove(&channel) else {
                    break;
                };
                let now = reader.file.metadata().map(|m| files::stamp_of(&m));
                let reply = match now {
                    Ok(stamp) if n == 0 && stamp == reader.start && reader.sent == stamp.size => {
                        Control::ReadDone { stamp }
                    }
                    _ => Control::Failed {
                        error: "the file changed while it was read".into(),
                    },
                };
                self.send(Message::control(channel, reply));
                break;
            }
        }
        self.flush();
    }

    fn on_frame(&mut self, channel: u32, frame: Frame) {
        let Some((&pid, proc)) = self.procs.iter_mut().find(|(_, p)| p.channel == channel) else {
            return;
        };
        match frame.kind {
            Kind::Stdin if proc.stdin.is_some() => proc.stdin_buf.extend_from_slice(&frame.payload),
            Kind::StdinEof => {
                proc.stdin_eof = true;
                if proc.stdin_buf.is_empty() {
                    close_stdin(proc);
                }
            }
            Kind::Resize => {
                if let (Some(pty), Some((rows, cols))) = (&proc.pty, frame.as_size()) {
                    let size = libc::winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ reads a winsize that lives on the
                    // stack for the call; the fd is an open pty master.
                    unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
                }
            }
            Kind::Signal => {
                if let Some(signal) = frame.as_i32().and_then(|s| Signal::try_from(s).ok()) {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
            _ => {}
        }
        if !proc.stdin_buf.is_empty() {
            self.flush_stdin(pid);
        }
    }

    fn flush_stdin(&mut self, pid: i32) {
        let Some(proc) = self.procs.get_mut(&pid) else {
            return;
        };
        let Some(stdin) = &mut proc.stdin else {
            proc.stdin_buf.clear();
            return;
        };
        while !proc.stdin_buf.is_empty() {
            match stdin.write(&proc.stdin_buf) {
                Ok(n) => {
                    proc.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    proc.stdin_buf.clear();
                    proc.stdin = None;
                    return;
                }
            }
        }
        if proc.stdin_eof {
            close_stdin(proc);
        }
    }

    fn on_output(&mut self, pid: i32, index: usize) {
        let Some(proc) = self.procs.get_mut(&pid) else {
            return;
        };
        let Some((kind, file)) = proc.outputs.get_mut(index) else {
            return;
        };
        let kind = *kind;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf) {
            Ok(n) if n > 0 => {
                proto::encode_data(proc.channel, kind, &buf[..n], &mut self.outbuf);
                self.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                proc.outputs.remove(index);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            // Orphans re-parented to PID 1 are reaped here too; only the
            // processes the agent started are reported.
            let Some(mut proc) = self.procs.remove(&pid.as_raw()) else {
                continue;
            };
            let mut buf = vec![0u8; 64 * 1024];
            for (kind, file) in &mut proc.outputs {
                while let Ok(n) = file.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    proto::encode_data(proc.channel, *kind, &buf[..n], &mut self.outbuf);
                }
            }
            self.send(Message::Stream {
                channel: proc.channel,
                frame: Frame::exit(code),
            });
            if proc.is_main {
                // The env ends with its main command: stop what is left.
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                self.done = true;
            }
        }
    }
}

fn close_stdin(proc: &mut Proc) {
    if proc.pty.is_some() {
        if let Some(stdin) = &mut proc.stdin {
            let _ = stdin.write_all(&[4]);
        }
    } else {
        proc.stdin = None;
    }
}

fn set_nonblocking(file: &impl AsFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(file.as_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(
            file.as_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}
