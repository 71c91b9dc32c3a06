//! The vm backend of the shim (`backend = "vm"`).
//!
//! Same socket protocol and event loop as every shim, so the daemon and the
//! CLI cannot tell the difference. Instead of forking the env's init, it
//! starts QEMU (the env's "init" as the host sees it, in the env's cgroup),
//! talks QMP to it and the agent protocol ([`verse_agent::proto`]) to
//! `verse-agent` inside the guest, over one virtio-serial port. Each exec is
//! a channel on that port; the shim relays frames between the channel and
//! the client's connection. Pause is QMP `stop`/`cont`, hibernate a QMP
//! migration to a file.

use super::event_loop::{
    BACKPRESSURE_BYTES, ChildExit, ConnState, Core, PollSet, Save, ShimBackend,
};
use super::procs::exec_env;
use crate::config::ShimConfig;
use crate::protocol::{Refusal, ShimRequest, ShimResponse};
use crate::record::now_unix;
use crate::vm_console::VmConsoles;
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
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
/// The saved VM of a hibernated vm env, in `checkpoint/`.
pub const VM_STATE: &str = "vm.state";

/// What a client's connection is attached to: a channel of the agent's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// Exec sent to the agent, waiting for Started or Failed.
    Starting(u32),
    Streaming(u32),
    /// A guest file operation on this channel: the agent's messages are
    /// relayed whole (see [`ShimRequest::GuestFile`]).
    Tunnel(u32),
}

impl Session {
    fn channel(self) -> u32 {
        match self {
            Session::Starting(c) | Session::Streaming(c) | Session::Tunnel(c) => c,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Agent,
    Console(usize),
}

pub(crate) struct Vm {
    vm: VmConfig,
    files: VmFiles,
    qemu: Pid,
    qmp: Option<Qmp>,
    agent: UnixStream,
    agent_decoder: proto::Decoder,
    agent_out: Vec<u8>,
    agent_eof: bool,
    channels: HashMap<u32, u64>,
    next_channel: u32,
    main_exit: Option<i32>,
    /// The guest's vCPUs are stopped (QMP `stop`, `verse pause`).
    paused: bool,
    /// The kernel console and the main command's output, into capped logs.
    consoles: VmConsoles,
}

impl Vm {
    /// Starts QEMU in the env's cgroup, connects its consoles, QMP and the
    /// agent's port, and boots the guest (or loads its saved state).
    pub fn start(core: &mut Core<Session>, vm: VmConfig) -> Result<Vm, String> {
        let config = &core.config;
        let cgroup = &core.cgroup;
        let files = VmFiles::in_dir(&config.env_dir, config.log_path());
        remove_sockets(&files);
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
        let started_at = now_unix();
        if let Err(e) = cgroup.add(qemu) {
            return Err(fail_start(
                qemu,
                &files,
                config,
                None,
                format!("moving QEMU into cgroup {}: {e}", config.cgroup),
            ));
        }
        // QEMU runs the guest only once both consoles have their reader.
        let mut consoles = match VmConsoles::connect(&files, qemu, config.log_max) {
            Ok(c) => c,
            Err(e) => return Err(fail_start(qemu, &files, config, None, e)),
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
                return Err(fail_start(qemu, &files, config, consoles, message));
            }
        };
        let mut shim = Vm {
            vm,
            files,
            qemu,
            qmp: Some(qmp),
            agent,
            agent_decoder: proto::Decoder::default(),
            agent_out: Vec::new(),
            agent_eof: false,
            channels: HashMap::new(),
            next_channel: 1,
            main_exit: None,
            paused: false,
            consoles,
        };
        let started = match &config.incoming {
            Some(state) => shim.load_saved(config, state),
            None => shim.boot(config),
        };
        if let Err(e) = started {
            let consoles = Some(&mut shim.consoles);
            return Err(fail_start(qemu, &shim.files, config, consoles, e));
        }
        if config.incoming.is_some() {
            // The guest runs again from its saved state: the save is spent.
            let _ = std::fs::remove_dir_all(crate::criu::checkpoint_dir(&config.env_dir));
        }
        shim.agent
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        core.record_started(qemu, started_at);
        Ok(shim)
    }

    /// Resume: waits until QEMU has loaded the saved VM, then lets it run
    /// (the save was taken stopped, so QEMU leaves it paused). The agent's
    /// port was connected before the load, so the guest never sees it close.
    fn load_saved(&mut self, config: &ShimConfig, state: &Path) -> Result<(), String> {
        let qmp = self.qmp.as_mut().expect("connected at start");
        let status = qmp
            .await_incoming(BOOT_TIMEOUT)
            .map_err(|e| format!("loading {}: {e}", state.display()))?;
        if !status.running {
            qmp.cont()
                .map_err(|e| format!("running the loaded VM (it was {}): {e}", status.status))?;
        }
        tracing::info!(env = %config.name, "guest resumed from {}", state.display());
        Ok(())
    }

    /// Waits for the agent's Ready, sends the boot spec, waits for the main
    /// command to start. Blocking, with a deadline; QEMU's death ends it early.
    fn boot(&mut self, config: &ShimConfig) -> Result<(), String> {
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
                    self.vm.accel
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
                        tracing::info!(env = %config.name, %kernel, "guest agent ready");
                        ready = true;
                        let boot = boot_spec(config, self.vm.layers.len());
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

    fn exec(&mut self, core: &mut Core<Session>, id: u64, request: verse_api::ExecRequest) {
        let refusal = self
            .busy(core)
            .or_else(|| request.argv.is_empty().then_some("no command given"));
        if let Some(reason) = refusal {
            core.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let config = &core.config;
        let spec = ExecSpec {
            env: exec_env(&config.env, request.tty, request.env),
            argv: request.argv,
            cwd: request
                .cwd
                .unwrap_or_else(|| config.cwd.display().to_string()),
            uid: config.uid,
            gid: config.gid,
            tty: request.tty,
            rows: request.rows,
            cols: request.cols,
        };
        let channel = self.open_channel(core, id, Session::Starting);
        Message::control(channel, Control::Exec(spec)).encode_into(&mut self.agent_out);
        self.flush_agent();
    }

    fn guest_file(&mut self, core: &mut Core<Session>, id: u64, mut op: proto::FileOp) {
        op.as_user(core.config.uid, core.config.gid);
        let refusal = self.busy(core);
        if let Some(reason) = refusal {
            core.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let channel = self.open_channel(core, id, Session::Tunnel);
        core.respond(id, ShimResponse::ok(), false);
        Message::control(channel, Control::File(op)).encode_into(&mut self.agent_out);
        self.flush_agent();
    }

    /// Why the guest cannot take a new exec or file operation now.
    fn busy(&self, core: &Core<Session>) -> Option<&'static str> {
        if core.stopping {
            Some("the env is stopping")
        } else if self.paused {
            Some("the env is paused (`verse unpause` it first)")
        } else {
            None
        }
    }

    /// A new channel of the agent's port for connection `id`.
    fn open_channel(
        &mut self,
        core: &mut Core<Session>,
        id: u64,
        session: fn(u32) -> Session,
    ) -> u32 {
        let channel = self.next_channel;
        self.next_channel += 1;
        self.channels.insert(channel, id);
        core.set_state(id, ConnState::Session(session(channel)));
        channel
    }

    fn on_qemu_exit(&mut self, core: &mut Core<Session>, how: ChildExit) -> ! {
        // Read what the agent sent last (the main command's exit code).
        self.agent.set_nonblocking(true).ok();
        self.on_agent_readable(core);
        if core.stopping || self.main_exit.is_some() {
            let code = self.main_exit;
            core.finish(self, code, None)
        } else {
            let message = format!(
                "QEMU {how} while the env was running (see {})",
                self.files.kernel_log.display()
            );
            core.finish(self, None, Some(message))
        }
    }

    fn flush_agent(&mut self) {
        // An agent port that failed is seen as QEMU's end.
        let _ = crate::conn::send_queued(self.agent.as_raw_fd(), &mut self.agent_out);
    }

    fn on_agent_readable(&mut self, core: &mut Core<Session>) {
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
            if core
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
            self.on_agent_message(core, message);
        }
    }

    fn on_agent_message(&mut self, core: &mut Core<Session>, message: Message) {
        let channel = match &message {
            Message::Stream { channel, .. } | Message::Control { channel, .. } => *channel,
        };
        if let Some(&id) = self.channels.get(&channel)
            && let Some(conn) = core.conns.get_mut(&id)
            && matches!(conn.state, ConnState::Session(Session::Tunnel(_)))
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
            core.flush_conn(id);
            return;
        }
        match message {
            Message::Stream {
                channel: proto::MAIN,
                frame,
            } => {
                if frame.kind == Kind::Exit {
                    self.main_exit = frame.as_i32();
                    core.stopping = true;
                    if core.stop_deadline.is_none() {
                        core.stop_deadline = Some(Instant::now() + POWER_OFF_GRACE);
                    }
                }
            }
            Message::Stream { channel, frame } => {
                let Some(&id) = self.channels.get(&channel) else {
                    return;
                };
                let end = matches!(frame.kind, Kind::Exit | Kind::Error);
                if let Some(conn) = core.conns.get_mut(&id) {
                    frame.encode_into(&mut conn.outbuf);
                    if end {
                        conn.state = ConnState::Closing;
                    }
                }
                if end {
                    self.channels.remove(&channel);
                }
                core.flush_conn(id);
            }
            Message::Control { channel, control } => {
                let Some(&id) = self.channels.get(&channel) else {
                    return;
                };
                match control {
                    Control::Started { pid } => {
                        let response = ShimResponse {
                            pid: Some(pid),
                            ..ShimResponse::ok()
                        };
                        core.respond(id, response, false);
                        let session = Session::Streaming(channel);
                        core.set_state(id, ConnState::Session(session));
                        self.on_frames(core, id, session);
                    }
                    Control::Failed { error } => {
                        self.channels.remove(&channel);
                        core.respond(id, ShimResponse::error(error), true);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Ends QEMU (asked over QMP, else killed) and waits for it.
    fn end_qemu(&mut self, ask: bool) {
        if !ask || self.qmp.as_mut().is_none_or(|qmp| qmp.quit().is_err()) {
            let _ = kill(self.qemu, Signal::SIGKILL);
        }
        let _ = waitpid(self.qemu, None);
        self.qmp = None;
    }
}

impl ShimBackend for Vm {
    type Session = Session;
    type Token = Token;

    fn limits(config: &ShimConfig) -> sandbox::Limits {
        // cpu bounds QEMU's host time (its vCPU threads and emulation);
        // memory is the guest's RAM, enforced by the guest kernel.
        sandbox::Limits {
            cpu: config.cpu,
            memory: None,
            pids: None,
        }
    }

    fn init_pid(&self) -> Option<Pid> {
        Some(self.qemu)
    }

    fn paused(&self, _core: &Core<Session>) -> bool {
        self.paused
    }

    fn poll<'a>(&'a self, core: &'a Core<Session>, set: &mut PollSet<'a, Token>) {
        let backlog = core
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
            set.add(Token::Agent, self.agent.as_fd(), agent_flags);
        }
        for (index, fd) in self.consoles.fds() {
            set.add(Token::Console(index), fd, PollFlags::POLLIN);
        }
    }

    fn on_ready(&mut self, core: &mut Core<Session>, token: Token, flags: PollFlags) {
        match token {
            Token::Agent => {
                if flags.contains(PollFlags::POLLOUT) {
                    self.flush_agent();
                }
                if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.on_agent_readable(core);
                }
            }
            Token::Console(index) => self.consoles.on_readable(index),
        }
    }

    fn takes_input(&self) -> bool {
        self.agent_out.len() < BACKPRESSURE_BYTES
    }

    fn on_child_exit(&mut self, core: &mut Core<Session>, pid: Pid, how: ChildExit) {
        if pid == self.qemu {
            self.on_qemu_exit(core, how);
        }
    }

    fn on_request(&mut self, core: &mut Core<Session>, id: u64, request: ShimRequest) {
        match request {
            ShimRequest::Attach { .. } => core.respond(
                id,
                ShimResponse::error(
                    "attaching to a vm env's main command is not supported; use exec",
                ),
                true,
            ),
            ShimRequest::GuestFile(op) => self.guest_file(core, id, op),
            ShimRequest::Exec(request) => self.exec(core, id, request),
            other => {
                let refusal = ShimResponse::error(format!("unexpected request {other:?}"));
                core.respond(id, refusal, true)
            }
        }
    }

    /// Relays the client's frames of a streaming exec to its channel.
    fn on_frames(&mut self, core: &mut Core<Session>, id: u64, session: Session) {
        let channel = match session {
            Session::Streaming(channel) | Session::Tunnel(channel) => channel,
            Session::Starting(_) => return,
        };
        let tunnel = matches!(session, Session::Tunnel(_));
        while let Some(frame) = core.next_frame(id) {
            // A file operation takes a write's data and nothing else.
            if tunnel && !matches!(frame.kind, Kind::Stdin | Kind::StdinEof) {
                continue;
            }
            Message::Stream { channel, frame }.encode_into(&mut self.agent_out);
        }
        self.flush_agent();
    }

    fn on_client_gone(&mut self, _core: &mut Core<Session>, _id: u64, session: Session) {
        let channel = session.channel();
        match session {
            // The client gave up: the agent drops the operation (and a
            // half-written file).
            Session::Tunnel(_) => Message::control(channel, Control::Cancel),
            // Nobody will read the process' output: end it.
            Session::Streaming(_) | Session::Starting(_) => Message::Stream {
                channel,
                frame: Frame::signal(libc::SIGKILL),
            },
        }
        .encode_into(&mut self.agent_out);
        self.flush_agent();
        self.channels.remove(&channel);
    }

    /// QMP `stop` or `cont` for `verse pause` / `verse unpause`.
    fn pause(&mut self, core: &mut Core<Session>, pause: bool) -> ShimResponse {
        if core.stopping {
            return ShimResponse::error("the env is stopping");
        }
        match (pause, self.paused) {
            (true, true) => {
                return ShimResponse::refused(Refusal::AlreadyPaused, "the env is already paused");
            }
            (false, false) => {
                return ShimResponse::refused(Refusal::NotPaused, "the env is not paused");
            }
            _ => {}
        }
        let Some(qmp) = self.qmp.as_mut() else {
            return ShimResponse::error("no QMP connection");
        };
        match if pause { qmp.stop() } else { qmp.cont() } {
            Ok(()) => {
                self.paused = pause;
                ShimResponse::ok()
            }
            Err(e) => ShimResponse::error(e.to_string()),
        }
    }

    /// Saves the VM to `checkpoint/vm.state` (QMP migration to a file) and
    /// ends QEMU. On a refusal or a failed save the env runs on as it was.
    fn hibernate(&mut self, core: &mut Core<Session>, _save: &Save) -> Result<(), String> {
        if core.stopping {
            return Err("it is stopping".into());
        }
        if self.paused {
            return Err("it is paused; `verse unpause` it first".into());
        }
        if !self.channels.is_empty() {
            return Err("`verse exec` sessions run in it (their stdio leads to clients a resume could not reconnect); end them first".into());
        }
        let dir = crate::criu::checkpoint_dir(&core.config.env_dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let state = dir.join(VM_STATE);
        let Some(qmp) = self.qmp.as_mut() else {
            return Err("no QMP connection".into());
        };
        let saved = qmp
            .stop()
            .and_then(|()| qmp.migrate_to_file(&state, BOOT_TIMEOUT))
            .map_err(|e| e.to_string())
            // The marker goes last: only a complete save counts as a hibernated env.
            .and_then(|bytes| {
                File::create(dir.join("complete"))
                    .and_then(|f| f.sync_all())
                    .map(|()| bytes)
                    .map_err(|e| format!("marking {} complete: {e}", dir.display()))
            });
        let bytes = match saved {
            Ok(bytes) => bytes,
            Err(reason) => {
                let _ = qmp.cont();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(reason);
            }
        };
        tracing::info!(env = %core.config.name, bytes, "guest saved to {}", state.display());
        self.end_qemu(true);
        core.teardown_cgroup();
        for f in [&self.files.qmp, &self.files.agent] {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }

    fn stop(&mut self, _core: &mut Core<Session>, timeout: Duration) -> Option<Duration> {
        if self.paused
            && let Some(qmp) = &mut self.qmp
        {
            // A stopped guest cannot shut down: let it run first.
            if qmp.cont().is_ok() {
                self.paused = false;
            }
        }
        let timeout_ms = timeout.as_millis() as u64;
        Message::control(proto::MAIN, Control::Shutdown { timeout_ms })
            .encode_into(&mut self.agent_out);
        self.flush_agent();
        Some(POWER_OFF_GRACE)
    }

    /// The guest did not power off in time: end QEMU from outside.
    fn kill(&mut self, _core: &mut Core<Session>) {
        if let Some(qmp) = &mut self.qmp
            && qmp.quit().is_ok()
        {
            return;
        }
        let _ = kill(self.qemu, Signal::SIGKILL);
    }

    fn end(&mut self, core: &mut Core<Session>) {
        self.end_qemu(false);
        // What QEMU had sent stays readable after it is gone.
        self.consoles.drain();
        core.teardown_cgroup();
        remove_sockets(&self.files);
    }

    fn discard_writes(&self, _config: &ShimConfig) -> Vec<PathBuf> {
        // An ephemeral env's writes vanish with it; the next start makes a
        // fresh disk.
        let _ = std::fs::remove_file(&self.vm.data_disk);
        Vec::new()
    }

    fn farewell(
        &self,
        session: Session,
        _exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Option<Frame> {
        match session {
            Session::Streaming(_) | Session::Starting(_) => {
                let message = error.unwrap_or("the env stopped");
                Some(Frame::new(Kind::Error, message.as_bytes().to_vec()))
            }
            Session::Tunnel(_) => None,
        }
    }
}

/// What the agent needs to bring the guest up and start the env's command.
fn boot_spec(config: &ShimConfig, layers: usize) -> BootSpec {
    BootSpec {
        hostname: config.hostname.clone(),
        layers: layer_serials(layers),
        data: DATA_SERIAL.into(),
        downloads: config.guest_downloads.clone(),
        net: config.net.as_ref().map(|n| GuestNet {
            address: n.address,
            gateway: n.gateway,
            resolv_conf: std::fs::read_to_string(config.env_dir.join("resolv.conf"))
                .unwrap_or_else(|_| format!("nameserver {}\n", n.gateway)),
        }),
        main: ExecSpec {
            argv: config.argv.clone(),
            env: config.env.clone(),
            cwd: config.cwd.display().to_string(),
            uid: config.uid,
            gid: config.gid,
            tty: false,
            rows: 0,
            cols: 0,
        },
    }
}

/// Undoes a failed start (QEMU, sockets; the core removes the cgroup and
/// its own socket) and returns `message` with what QEMU and the guest
/// console said.
fn fail_start(
    qemu: Pid,
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
    remove_sockets(files);
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

/// The sockets QEMU serves (QMP, the agent's port, the consoles).
fn remove_sockets(files: &VmFiles) {
    for socket in [
        &files.qmp,
        &files.agent,
        &files.console_socket,
        &files.kernel_socket,
    ] {
        let _ = std::fs::remove_file(socket);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
