//! The shim of a VM env (`backend = "vm"`).
//!
//! Same socket protocol as the container shim, so the daemon and the CLI
//! cannot tell the difference. Instead of forking the env's init, it starts
//! QEMU (the env's "init" as the host sees it, in the env's cgroup), talks
//! QMP to it and the agent protocol ([`verse_agent::proto`]) to `verse-agent`
//! inside the guest, over one virtio-serial port. Each exec is a channel on
//! that port; the shim relays frames between the channel and the client's
//! connection. Single-threaded, one `poll(2)` loop, like the container shim.

use crate::config::ShimConfig;
use crate::conn::Received;
use crate::launch::ReadyLine;
use crate::protocol::{ShimRequest, ShimResponse, ShimStatus};
use crate::record::{self, ExitRecord, ShimRecord, now_unix};
use crate::shim::{install_signals, report_ready};
use crate::vm_console::VmConsoles;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use verse_agent::proto::{self, BootSpec, Control, ExecSpec, GuestNet, Message};
use verse_api::frame::{Frame, Kind};
use verse_sandbox as sandbox;
use verse_vm::VmConfig;
use verse_vm::qemu::{DATA_SERIAL, VmFiles, layer_serials};
use verse_vm::qmp::Qmp;

/// How long a guest may take from QEMU's start to the agent's Ready (TCG
/// boots in a few seconds here; a loaded host may take much longer).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time the guest gets, after the main command's stop timeout, to unmount
/// its disks and power off before QEMU is ended from outside.
const POWER_OFF_GRACE: Duration = Duration::from_secs(10);
const BACKPRESSURE_BYTES: usize = 1 << 20;
/// The saved VM of a hibernated vm env, in `checkpoint/`.
pub const VM_STATE: &str = "vm.state";

pub(crate) fn run(config: ShimConfig, vm: VmConfig) -> ! {
    let mut shim = match VmShim::start(config, vm) {
        Ok(shim) => shim,
        Err(message) => {
            report_ready(&ReadyLine {
                ok: false,
                shim_pid: std::process::id(),
                init_pid: None,
                error: Some(message),
            });
            std::process::exit(1);
        }
    };
    report_ready(&ReadyLine {
        ok: true,
        shim_pid: std::process::id(),
        init_pid: Some(shim.qemu.as_raw() as u32),
        error: None,
    });
    shim.run()
}

enum ConnState {
    Handshake,
    /// Exec sent to the agent, waiting for Started or Failed.
    Starting(u32),
    Streaming(u32),
    /// A guest file operation on this channel: the agent's messages are
    /// relayed whole (see [`ShimRequest::GuestFile`]).
    Tunnel(u32),
    AwaitingStop,
    Closing,
}

type Conn = crate::conn::Conn<ConnState>;

#[derive(Clone, Copy)]
enum Token {
    Signals,
    Listener,
    Agent,
    ConnRead(u64),
    ConnWrite(u64),
    Console(usize),
}

struct VmShim {
    config: ShimConfig,
    files: VmFiles,
    listener: UnixListener,
    signals: UnixStream,
    terminated: Arc<AtomicBool>,
    cgroup: sandbox::Cgroup,
    qemu: Pid,
    qmp: Option<Qmp>,
    agent: UnixStream,
    agent_decoder: proto::Decoder,
    agent_out: Vec<u8>,
    agent_eof: bool,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    channels: HashMap<u32, u64>,
    next_channel: u32,
    started_at: i64,
    main_exit: Option<i32>,
    stopping: bool,
    stop_deadline: Option<Instant>,
    /// The guest's vCPUs are stopped (QMP `stop`, `verse pause`).
    paused: bool,
    /// The kernel console and the main command's output, into capped logs.
    consoles: VmConsoles,
}

impl VmShim {
    fn start(config: ShimConfig, vm: VmConfig) -> Result<VmShim, String> {
        let (signals, terminated) = install_signals()?;
        if let Some(dir) = config.socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&config.socket);
        let listener = UnixListener::bind(&config.socket)
            .map_err(|e| format!("listening on {}: {e}", config.socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(ExitRecord::path(&config.env_dir));

        // cpu bounds QEMU's host time (its vCPU threads and emulation);
        // memory is the guest's RAM, enforced by the guest kernel.
        let limits = sandbox::Limits {
            cpu: config.cpu,
            memory: None,
            pids: None,
        };
        let cgroup = sandbox::Cgroup::create(&config.cgroup, &limits)
            .map_err(|e| format!("creating cgroup {}: {e}", config.cgroup))?;
        let files = VmFiles::in_dir(&config.env_dir, config.log_path());
        for stale in [
            &files.qmp,
            &files.agent,
            &files.console_socket,
            &files.kernel_socket,
        ] {
            let _ = std::fs::remove_file(stale);
        }
        let qemu_log = File::create(config.env_dir.join("qemu.log"))
            .map_err(|e| format!("creating qemu.log: {e}"))?;
        let qemu_err = qemu_log.try_clone().map_err(|e| e.to_string())?;
        let mut command = vm.command(&files);
        if let Some(state) = &config.incoming {
            // Resume: the same machine, loading its saved state instead of booting.
            let args = verse_vm::qemu::incoming_args(state)
                .ok_or_else(|| format!("cannot quote {} for QEMU", state.display()))?;
            command.args(args);
        }
        // A networked env's NIC: a tap configured like a container's host veth end, so the
        // rules the daemon installed for it apply. QEMU inherits the descriptor; the shim's
        // copy closes right after the spawn, so the tap lives exactly as long as QEMU.
        let tap = match &config.net {
            Some(net) if net.router => {
                return Err("router envs run on the container backend for now".into());
            }
            Some(net) => {
                let fd = verse_net::open_tap(net)
                    .map_err(|e| format!("creating the env's tap {}: {e}", net.host_ifname))?;
                command.args(verse_vm::qemu::nic_args(
                    fd.as_raw_fd(),
                    &verse_net::guest_mac(net),
                ));
                let raw = fd.as_raw_fd();
                // SAFETY: fcntl(2) is async-signal-safe; `raw` stays open in the parent until
                // after the spawn, so the child has it. Clearing FD_CLOEXEC lets QEMU keep it.
                unsafe {
                    command.pre_exec(move || {
                        if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                Some(fd)
            }
            None => None,
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(qemu_log)
            .stderr(qemu_err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", vm.qemu.display()))?;
        let qemu = Pid::from_raw(child.id() as i32);
        // The Child is dropped unwaited: the poll loop reaps QEMU by pid.
        drop(child);
        drop(tap);
        if let Err(e) = cgroup.add(qemu) {
            return Err(fail_start(
                qemu,
                &cgroup,
                &files,
                &config,
                None,
                format!("moving QEMU into cgroup {}: {e}", config.cgroup),
            ));
        }
        // QEMU runs the guest only once both consoles have their reader.
        let mut consoles = match VmConsoles::connect(&files, qemu, config.log_max) {
            Ok(c) => c,
            Err(e) => return Err(fail_start(qemu, &cgroup, &files, &config, None, e)),
        };
        let connected = Qmp::connect(&files.qmp, Duration::from_secs(30))
            .map_err(|e| e.to_string())
            .and_then(|qmp| {
                let agent = UnixStream::connect(&files.agent).map_err(|e| {
                    format!(
                        "connecting to the agent port {}: {e}",
                        files.agent.display()
                    )
                })?;
                Ok((qmp, agent))
            });
        let (qmp, agent) = match connected {
            Ok(both) => both,
            Err(message) => {
                let consoles = Some(&mut consoles);
                return Err(fail_start(
                    qemu, &cgroup, &files, &config, consoles, message,
                ));
            }
        };
        let mut shim = VmShim {
            config,
            files,
            listener,
            signals,
            terminated,
            cgroup,
            qemu,
            qmp: Some(qmp),
            agent,
            agent_decoder: proto::Decoder::default(),
            agent_out: Vec::new(),
            agent_eof: false,
            conns: HashMap::new(),
            next_conn: 0,
            channels: HashMap::new(),
            next_channel: 1,
            started_at: now_unix(),
            main_exit: None,
            stopping: false,
            stop_deadline: None,
            paused: false,
            consoles,
        };
        let started = match shim.config.incoming.clone() {
            Some(state) => shim.load_saved(&state),
            None => shim.boot(&vm),
        };
        if let Err(e) = started {
            return Err(fail_start(
                qemu,
                &shim.cgroup,
                &shim.files,
                &shim.config,
                Some(&mut shim.consoles),
                e,
            ));
        }
        if shim.config.incoming.is_some() {
            // The guest runs again from its saved state: the save is spent.
            let _ = std::fs::remove_dir_all(crate::criu::checkpoint_dir(&shim.config.env_dir));
        }
        shim.agent
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let record = ShimRecord {
            shim_pid: std::process::id(),
            init_pid: qemu.as_raw() as u32,
            started_at: shim.started_at,
        };
        let _ = record::store(&ShimRecord::path(&shim.config.env_dir), &record);
        Ok(shim)
    }

    /// Resume: waits until QEMU has loaded the saved VM, then lets it run
    /// (the save was taken stopped, so QEMU leaves it paused). The agent's
    /// port was connected before the load, so the guest never sees it close.
    fn load_saved(&mut self, state: &std::path::Path) -> Result<(), String> {
        let qmp = self.qmp.as_mut().expect("connected at start");
        let status = qmp
            .await_incoming(BOOT_TIMEOUT)
            .map_err(|e| format!("loading {}: {e}", state.display()))?;
        if !status.running {
            qmp.cont()
                .map_err(|e| format!("running the loaded VM (it was {}): {e}", status.status))?;
        }
        tracing::info!(env = %self.config.name, "guest resumed from {}", state.display());
        Ok(())
    }

    /// Saves the VM to `checkpoint/vm.state` and ends QEMU (see
    /// [`ShimRequest::HibernateVm`]); the shim exits. On a refusal or a failed
    /// save the env runs on as it was.
    fn hibernate(&mut self, id: u64) {
        let refusal = if self.stopping {
            Some("it is stopping".to_string())
        } else if self.paused {
            Some("it is paused; `verse unpause` it first".into())
        } else if !self.channels.is_empty() {
            Some(
                "`verse exec` sessions run in it (their stdio leads to clients a resume could not reconnect); end them first"
                    .into(),
            )
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let dir = crate::criu::checkpoint_dir(&self.config.env_dir);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            let reason = format!("creating {}: {e}", dir.display());
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let state = dir.join(VM_STATE);
        let Some(qmp) = self.qmp.as_mut() else {
            self.respond(id, ShimResponse::error("no QMP connection"), true);
            return;
        };
        let saved = qmp
            .stop()
            .and_then(|()| qmp.migrate_to_file(&state, BOOT_TIMEOUT));
        let bytes = match saved {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = qmp.cont();
                let _ = std::fs::remove_dir_all(&dir);
                self.respond(id, ShimResponse::error(e.to_string()), true);
                return;
            }
        };
        // The marker goes last: only a complete save counts as a hibernated env.
        if let Err(e) = File::create(dir.join("complete")).and_then(|f| f.sync_all()) {
            let _ = qmp.cont();
            let _ = std::fs::remove_dir_all(&dir);
            let reason = format!("marking {} complete: {e}", dir.display());
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        tracing::info!(env = %self.config.name, bytes, "guest saved to {}", state.display());
        if qmp.quit().is_err() {
            let _ = kill(self.qemu, Signal::SIGKILL);
        }
        let _ = waitpid(self.qemu, None);
        let _ = self.cgroup.kill_all();
        let _ = self.cgroup.clone().remove();
        self.qmp = None;
        for f in [&self.files.qmp, &self.files.agent] {
            let _ = std::fs::remove_file(f);
        }
        let env_dir = self.config.env_dir.clone();
        let _ = std::fs::remove_file(ShimRecord::path(&env_dir));
        let _ = std::fs::remove_file(ExitRecord::path(&env_dir));
        let _ = std::fs::remove_file(&self.config.socket);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.answer_ok_before_exit();
        }
        std::process::exit(0);
    }

    /// QMP `stop` or `cont` for `verse pause` / `verse unpause`.
    fn set_paused(&mut self, id: u64, pause: bool) {
        let refusal = if self.stopping {
            Some("the env is stopping".to_string())
        } else if self.paused == pause {
            Some(
                if pause {
                    "the env is already paused"
                } else {
                    "the env is not paused"
                }
                .into(),
            )
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let Some(qmp) = self.qmp.as_mut() else {
            self.respond(id, ShimResponse::error("no QMP connection"), true);
            return;
        };
        let done = if pause { qmp.stop() } else { qmp.cont() };
        match done {
            Ok(()) => {
                self.paused = pause;
                self.respond(id, ShimResponse::ok(), true);
            }
            Err(e) => self.respond(id, ShimResponse::error(e.to_string()), true),
        }
    }

    /// Waits for the agent's Ready, sends the boot spec, waits for the main
    /// command to start. Blocking, with a deadline; QEMU's death ends it early.
    fn boot(&mut self, vm: &VmConfig) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        self.agent
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut ready = false;
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "the guest did not {} within {} s (accelerator {})",
                    if ready { "start its command" } else { "boot" },
                    BOOT_TIMEOUT.as_secs(),
                    vm.accel
                ));
            }
            if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                waitpid(self.qemu, Some(WaitPidFlag::WNOHANG))
            {
                return Err("QEMU exited while the guest booted".into());
            }
            let mut buf = [0u8; 64 * 1024];
            match self.agent.read(&mut buf) {
                Ok(0) => return Err("the agent port closed while the guest booted".into()),
                Ok(n) => self.agent_decoder.feed(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("reading the agent port: {e}")),
            }
            while let Some(message) = self
                .agent_decoder
                .next_message()
                .map_err(|e| e.to_string())?
            {
                match message {
                    Message::Control {
                        control: Control::Ready { kernel },
                        ..
                    } => {
                        tracing::info!(env = %self.config.name, %kernel, "guest agent ready");
                        ready = true;
                        let boot = BootSpec {
                            hostname: self.config.hostname.clone(),
                            layers: layer_serials(vm.layers.len()),
                            data: DATA_SERIAL.into(),
                            downloads: self.config.guest_downloads.clone(),
                            net: self.config.net.as_ref().map(|n| GuestNet {
                                address: n.address,
                                gateway: n.gateway,
                                resolv_conf: std::fs::read_to_string(
                                    self.config.env_dir.join("resolv.conf"),
                                )
                                .unwrap_or_else(|_| format!("nameserver {}\n", n.gateway)),
                            }),
                            main: ExecSpec {
                                argv: self.config.argv.clone(),
                                env: self.config.env.clone(),
                                cwd: self.config.cwd.display().to_string(),
                                uid: self.config.uid,
                                gid: self.config.gid,
                                tty: false,
                                rows: 0,
                                cols: 0,
                            },
                        };
                        let mut out = Vec::new();
                        Message::control(proto::MAIN, Control::Boot(boot)).encode_into(&mut out);
                        self.agent
                            .write_all(&out)
                            .map_err(|e| format!("writing the boot spec to the agent: {e}"))?;
                    }
                    Message::Control {
                        control: Control::Started { .. },
                        ..
                    } => return Ok(()),
                    Message::Control {
                        control: Control::Failed { error },
                        ..
                    } => return Err(format!("the guest could not start the env: {error}")),
                    _ => {}
                }
            }
        }
    }

    fn run(&mut self) -> ! {
        loop {
            let timeout = match self.stop_deadline {
                Some(d) => PollTimeout::from(
                    d.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(60_000) as u16,
                ),
                None => PollTimeout::NONE,
            };
            let ready = match self.poll_once(timeout) {
                Ok(r) => r,
                Err(e) => self.finish(None, Some(format!("shim poll failed: {e}"))),
            };
            for (token, flags) in ready {
                match token {
                    Token::Signals => self.on_signals(),
                    Token::Listener => self.accept(),
                    Token::Agent => {
                        if flags.contains(PollFlags::POLLOUT) {
                            self.flush_agent();
                        }
                        if flags
                            .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                        {
                            self.on_agent_readable();
                        }
                    }
                    Token::ConnRead(id) => self.on_conn_readable(id),
                    Token::ConnWrite(id) => self.flush_conn(id),
                    Token::Console(index) => self.consoles.on_readable(index),
                }
            }
            if self.stop_deadline.is_some_and(|d| d <= Instant::now()) {
                // The guest did not power off in time: end QEMU from outside.
                self.stop_deadline = None;
                if let Some(qmp) = &mut self.qmp
                    && qmp.quit().is_ok()
                {
                    continue;
                }
                let _ = kill(self.qemu, Signal::SIGKILL);
            }
        }
    }

    fn poll_once(&self, timeout: PollTimeout) -> nix::Result<Vec<(Token, PollFlags)>> {
        let mut tokens = vec![Token::Signals, Token::Listener];
        let mut fds = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        let backlog = self
            .conns
            .values()
            .map(|c| c.outbuf.len())
            .max()
            .unwrap_or(0);
        let mut agent_flags = PollFlags::empty();
        if !self.agent_eof && backlog < BACKPRESSURE_BYTES {
            agent_flags |= PollFlags::POLLIN;
        }
        if !self.agent_out.is_empty() {
            agent_flags |= PollFlags::POLLOUT;
        }
        if !agent_flags.is_empty() {
            tokens.push(Token::Agent);
            fds.push(PollFd::new(self.agent.as_fd(), agent_flags));
        }
        for (index, fd) in self.consoles.fds() {
            tokens.push(Token::Console(index));
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        for (id, conn) in &self.conns {
            if !conn.eof && self.agent_out.len() < BACKPRESSURE_BYTES {
                tokens.push(Token::ConnRead(*id));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLIN));
            }
            if !conn.outbuf.is_empty() {
                tokens.push(Token::ConnWrite(*id));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLOUT));
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(tokens
            .into_iter()
            .zip(fds.iter())
            .filter_map(|(t, fd)| fd.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
            .collect())
    }

    fn on_signals(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.signals).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.qemu => {
                    self.on_qemu_exit(format!("exited with status {code}"))
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == self.qemu => {
                    self.on_qemu_exit(format!("was killed by {signal}"))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if self.terminated.load(Ordering::Relaxed) && !self.stopping {
            self.begin_stop(self.config.stop_timeout_ms);
        }
    }

    fn on_qemu_exit(&mut self, how: String) -> ! {
        // Read what the agent sent last (the main command's exit code).
        self.agent.set_nonblocking(true).ok();
        self.on_agent_readable_inner();
        if self.stopping || self.main_exit.is_some() {
            let code = self.main_exit;
            self.finish(code, None)
        } else {
            let message = format!(
                "QEMU {how} while the env was running (see {})",
                self.files.kernel_log.display()
            );
            self.finish(None, Some(message))
        }
    }

    fn begin_stop(&mut self, timeout_ms: u64) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        if self.paused
            && let Some(qmp) = &mut self.qmp
        {
            // A stopped guest cannot shut down: let it run first.
            if qmp.cont().is_ok() {
                self.paused = false;
            }
        }
        Message::control(proto::MAIN, Control::Shutdown { timeout_ms })
            .encode_into(&mut self.agent_out);
        self.flush_agent();
        self.stop_deadline =
            Some(Instant::now() + Duration::from_millis(timeout_ms) + POWER_OFF_GRACE);
    }

    fn flush_agent(&mut self) {
        while !self.agent_out.is_empty() {
            match send(
                self.agent.as_raw_fd(),
                &self.agent_out,
                MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => {
                    self.agent_out.drain(..n);
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    self.agent_out.clear();
                    return;
                }
            }
        }
    }

    fn on_agent_readable(&mut self) {
        self.on_agent_readable_inner();
    }

    fn on_agent_readable_inner(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match (&self.agent).read(&mut buf) {
                Ok(0) => {
                    self.agent_eof = true;
                    break;
                }
                Ok(n) => self.agent_decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.agent_eof = true;
                    break;
                }
            }
            if self
                .conns
                .values()
                .any(|c| c.outbuf.len() > BACKPRESSURE_BYTES)
            {
                break;
            }
        }
        loop {
            let message = match self.agent_decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("bad message from the agent: {e}");
                    self.agent_decoder = proto::Decoder::default();
                    break;
                }
            };
            self.on_agent_message(message);
        }
    }

    fn on_agent_message(&mut self, message: Message) {
        let channel = match &message {
            Message::Stream { channel, .. } | Message::Control { channel, .. } => *channel,
        };
        if let Some(&id) = self.channels.get(&channel)
            && let Some(conn) = self.conns.get_mut(&id)
            && matches!(conn.state, ConnState::Tunnel(_))
        {
            let last = matches!(
                &message,
                Message::Control {
                    control: Control::Listing { .. }
                        | Control::ReadDone { .. }
                        | Control::Done { .. }
                        | Control::Exists
                        | Control::Failed { .. },
                    ..
                }
            );
            message.encode_into(&mut conn.outbuf);
            if last {
                conn.state = ConnState::Closing;
                self.channels.remove(&channel);
            }
            self.flush_conn(id);
            return;
        }
        match message {
            Message::Stream {
                channel: proto::MAIN,
                frame,
            } => {
                if frame.kind == Kind::Exit {
                    self.main_exit = frame.as_i32();
                    self.stopping = true;
                    if self.stop_deadline.is_none() {
                        self.stop_deadline = Some(Instant::now() + POWER_OFF_GRACE);
                    }
                }
            }
            Message::Stream { channel, frame } => {
                let Some(&id) = self.channels.get(&channel) else {
                    return;
                };
                let end = matches!(frame.kind, Kind::Exit | Kind::Error);
                if let Some(conn) = self.conns.get_mut(&id) {
                    frame.encode_into(&mut conn.outbuf);
                    if end {
                        conn.state = ConnState::Closing;
                    }
                }
                if end {
                    self.channels.remove(&channel);
                }
                self.flush_conn(id);
            }
            Message::Control { channel, control } => {
                let Some(&id) = self.channels.get(&channel) else {
                    return;
                };
                match control {
                    Control::Started { pid } => {
                        self.respond(
                            id,
                            ShimResponse {
                                pid: Some(pid),
                                ..ShimResponse::ok()
                            },
                            false,
                        );
                        if let Some(conn) = self.conns.get_mut(&id) {
                            conn.state = ConnState::Streaming(channel);
                        }
                        self.process_frames(id);
                    }
                    Control::Failed { error } => {
                        self.channels.remove(&channel);
                        self.respond(id, ShimResponse::error(error), true);
                    }
                    _ => {}
                }
            }
        }
    }

    fn accept(&mut self) {
        crate::conn::accept_all(&self.listener, &mut self.conns, &mut self.next_conn, || {
            ConnState::Handshake
        });
    }

    fn on_conn_readable(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let handshake = matches!(conn.state, ConnState::Handshake);
        match conn.receive(handshake) {
            Received::WouldBlock => return,
            Received::Request(Ok(request)) => self.on_request(id, request),
            Received::Request(Err(error)) => {
                self.respond(id, ShimResponse::error(error), true);
            }
            Received::More => {}
        }
        self.process_frames(id);
        self.on_conn_eof_if_any(id);
    }

    fn on_conn_eof_if_any(&mut self, id: u64) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if !conn.eof {
            return;
        }
        match conn.state {
            ConnState::Tunnel(channel) => {
                // The client gave up: the agent drops the operation (and a
                // half-written file).
                Message::control(channel, Control::Cancel).encode_into(&mut self.agent_out);
                self.flush_agent();
                self.channels.remove(&channel);
                self.conns.remove(&id);
            }
            ConnState::Streaming(channel) | ConnState::Starting(channel) => {
                // Nobody will read the process' output: end it.
                Message::Stream {
                    channel,
                    frame: Frame::signal(libc::SIGKILL),
                }
                .encode_into(&mut self.agent_out);
                self.flush_agent();
                self.channels.remove(&channel);
                self.conns.remove(&id);
            }
            ConnState::AwaitingStop => {}
            _ if conn.outbuf.is_empty() => {
                self.conns.remove(&id);
            }
            _ => {}
        }
    }

    /// Relays the client's frames of a streaming exec to its channel.
    fn process_frames(&mut self, id: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            let (ConnState::Streaming(channel) | ConnState::Tunnel(channel)) = conn.state else {
                return;
            };
            let tunnel = matches!(conn.state, ConnState::Tunnel(_));
            match conn.decoder.next_frame() {
                // A file operation takes a write's data and nothing else.
                Ok(Some(frame))
                    if tunnel && !matches!(frame.kind, Kind::Stdin | Kind::StdinEof) => {}
                Ok(Some(frame)) => {
                    Message::Stream { channel, frame }.encode_into(&mut self.agent_out)
                }
                Ok(None) => break,
                Err(_) => {
                    conn.eof = true;
                    break;
                }
            }
        }
        self.flush_agent();
    }

    fn on_request(&mut self, id: u64, request: ShimRequest) {
        match request {
            ShimRequest::Status => {
                let stats = self.cgroup.stats();
                let status = ShimStatus {
                    init_pid: Some(self.qemu.as_raw() as u32),
                    started_at: Some(self.started_at),
                    cpu_usage_ns: Some(stats.cpu_usage_ns),
                    memory_bytes: Some(stats.memory_bytes),
                    pids: Some(stats.pids),
                    paused: self.paused,
                };
                self.respond(
                    id,
                    ShimResponse {
                        status: Some(status),
                        ..ShimResponse::ok()
                    },
                    true,
                );
            }
            ShimRequest::Stop { timeout_ms } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.state = ConnState::AwaitingStop;
                }
                self.begin_stop(timeout_ms);
            }
            ShimRequest::Attach { .. } => self.respond(
                id,
                ShimResponse::error(
                    "attaching to a vm env's main command is not supported; use exec",
                ),
                true,
            ),
            ShimRequest::Hibernate { .. } => self.respond(
                id,
                ShimResponse::error("vm envs hibernate through QMP migration, not CRIU"),
                true,
            ),
            ShimRequest::HibernateVm => self.hibernate(id),
            ShimRequest::GuestFile(mut op) => {
                op.as_user(self.config.uid, self.config.gid);
                let refusal = if self.stopping {
                    Some("the env is stopping")
                } else if self.paused {
                    Some("the env is paused (`verse unpause` it first)")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    self.respond(id, ShimResponse::error(reason), true);
                    return;
                }
                let channel = self.next_channel;
                self.next_channel += 1;
                self.channels.insert(channel, id);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.state = ConnState::Tunnel(channel);
                }
                self.respond(id, ShimResponse::ok(), false);
                Message::control(channel, Control::File(op)).encode_into(&mut self.agent_out);
                self.flush_agent();
            }
            ShimRequest::Pause => self.set_paused(id, true),
            ShimRequest::Unpause => self.set_paused(id, false),
            ShimRequest::Exec(request) => {
                if self.stopping {
                    self.respond(id, ShimResponse::error("the env is stopping"), true);
                    return;
                }
                if self.paused {
                    self.respond(
                        id,
                        ShimResponse::error("the env is paused (`verse unpause` it first)"),
                        true,
                    );
                    return;
                }
                if request.argv.is_empty() {
                    self.respond(id, ShimResponse::error("no command given"), true);
                    return;
                }
                let mut env = self.config.env.clone();
                if request.tty && !env.iter().any(|(k, _)| k == "TERM") {
                    env.push(("TERM".into(), "xterm-256color".into()));
                }
                for (key, value) in request.env {
                    env.retain(|(k, _)| *k != key);
                    env.push((key, value));
                }
                let spec = ExecSpec {
                    argv: request.argv,
                    env,
                    cwd: request
                        .cwd
                        .unwrap_or_else(|| self.config.cwd.display().to_string()),
                    uid: self.config.uid,
                    gid: self.config.gid,
                    tty: request.tty,
                    rows: request.rows,
                    cols: request.cols,
                };
                let channel = self.next_channel;
                self.next_channel += 1;
                self.channels.insert(channel, id);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.state = ConnState::Starting(channel);
                }
                Message::control(channel, Control::Exec(spec)).encode_into(&mut self.agent_out);
                self.flush_agent();
            }
        }
    }

    fn respond(&mut self, id: u64, response: ShimResponse, close: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.queue(&response);
        if close {
            conn.state = ConnState::Closing;
        }
        self.flush_conn(id);
    }

    fn flush_conn(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.flush() && matches!(conn.state, ConnState::Closing) {
            self.conns.remove(&id);
        }
    }

    /// The VM ended: clean up, record how, tell whoever waits, exit.
    fn finish(&mut self, exit_code: Option<i32>, error: Option<String>) -> ! {
        let _ = kill(self.qemu, Signal::SIGKILL);
        let _ = waitpid(self.qemu, None);
        // What QEMU had sent stays readable after it is gone.
        self.consoles.drain();
        if let Some(net) = &self.config.net {
            // Gone with QEMU's descriptor already; this covers a tap something else held.
            verse_net::detach(net);
        }
        let _ = self.cgroup.kill_all();
        let _ = self.cgroup.clone().remove();
        self.qmp = None;
        let env_dir = self.config.env_dir.clone();
        for f in [
            &self.files.qmp,
            &self.files.agent,
            &self.files.console_socket,
            &self.files.kernel_socket,
        ] {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(ShimRecord::path(&env_dir));
        if self.config.remove_on_exit {
            let _ = std::fs::remove_dir_all(&env_dir);
        } else {
            if self.config.ephemeral
                && let Some(vm) = &self.config.vm
            {
                // An ephemeral env's writes vanish with it; the next start
                // makes a fresh disk.
                let _ = std::fs::remove_file(&vm.data_disk);
            }
            let record = ExitRecord {
                exit_code,
                finished_at: now_unix(),
                error: error.clone(),
            };
            let _ = record::store(&ExitRecord::path(&env_dir), &record);
        }
        let _ = std::fs::remove_file(&self.config.socket);
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            match conn.state {
                ConnState::Streaming(_) | ConnState::Starting(_) => {
                    let message = error.clone().unwrap_or_else(|| "the env stopped".into());
                    Frame::new(Kind::Error, message.into_bytes()).encode_into(&mut conn.outbuf);
                }
                ConnState::AwaitingStop => {
                    let mut line = serde_json::to_vec(&ShimResponse {
                        exit_code,
                        ..ShimResponse::ok()
                    })
                    .expect("serialises");
                    line.push(b'\n');
                    conn.outbuf.extend_from_slice(&line);
                }
                _ => {}
            }
            let _ = conn.stream.set_nonblocking(false);
            let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = (&conn.stream).write_all(&conn.outbuf);
        }
        std::process::exit(0);
    }
}

/// Undoes a failed start (QEMU, cgroup, sockets) and returns `message` with
/// what QEMU and the guest console said.
fn fail_start(
    qemu: Pid,
    cgroup: &sandbox::Cgroup,
    files: &VmFiles,
    config: &ShimConfig,
    consoles: Option<&mut VmConsoles>,
    mut message: String,
) -> String {
    let _ = kill(qemu, Signal::SIGKILL);
    let _ = waitpid(qemu, None);
    if let Some(consoles) = consoles {
        consoles.drain();
    }
    if let Some(net) = &config.net {
        verse_net::detach(net);
    }
    let _ = cgroup.kill_all();
    let _ = cgroup.clone().remove();
    for f in [
        &files.qmp,
        &files.agent,
        &files.console_socket,
        &files.kernel_socket,
        &config.socket,
    ] {
        let _ = std::fs::remove_file(f);
    }
    let qemu_said = std::fs::read_to_string(config.env_dir.join("qemu.log")).unwrap_or_default();
    let kernel_said = tail(
        &std::fs::read_to_string(&files.kernel_log).unwrap_or_default(),
        15,
    );
    if !qemu_said.trim().is_empty() {
        message.push_str(&format!("; QEMU said: {}", qemu_said.trim()));
    }
    if !kernel_said.trim().is_empty() {
        message.push_str(&format!("; guest console:\n{kernel_said}"));
    }
    message
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
