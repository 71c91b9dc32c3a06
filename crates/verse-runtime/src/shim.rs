//! The shim process: one per running env, single-threaded by design.
//!
//! Single-threaded matters: starting the env and joining it for `exec` fork
//! and `setns` into a user namespace, which the kernel allows only for
//! single-threaded processes, and forking a multi-threaded process is unsafe.
//! So the shim is one `poll(2)` loop over its socket, its clients and the
//! pipes or ptys of the processes it started.

use crate::config::ShimConfig;
use crate::conn::Received;
use crate::console_log::ConsoleLog;
use crate::launch::ReadyLine;
use crate::protocol::{ShimRequest, ShimResponse, ShimStatus};
use crate::record::{self, ExitRecord, ShimRecord, now_unix};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use verse_api::frame::{Frame, Kind, encode_data};
use verse_sandbox as sandbox;

/// Stop reading a process' output while its client has this much unsent.
const BACKPRESSURE_BYTES: usize = 1 << 20;
/// How often a gvisor env's console.log is brought under its cap.
const LOG_CAP_TICK: Duration = Duration::from_millis(200);
/// How long an attach-mode shim waits for its client before giving up.
const ATTACH_WAIT: Duration = Duration::from_secs(30);

/// Entry point of `verse __shim CONFIG`. Never returns.
pub fn run_shim(config_path: &Path) -> ! {
    let config = match std::fs::read(config_path)
        .map_err(|e| format!("reading {}: {e}", config_path.display()))
        .and_then(|b| {
            serde_json::from_slice::<ShimConfig>(&b)
                .map_err(|e| format!("parsing {}: {e}", config_path.display()))
        }) {
        Ok(c) => c,
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

    // Detach from the daemon: the parent returns at once and the child is
    // adopted by init, in a session of its own, so neither the daemon's death
    // nor signals to its process group reach the env.
    // SAFETY: the shim is single-threaded here (nothing has spawned a thread),
    // so the child may keep running arbitrary Rust code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            report_ready(&ReadyLine {
                ok: false,
                shim_pid: std::process::id(),
                init_pid: None,
                error: Some(format!("forking the shim: {e}")),
            });
            std::process::exit(1);
        }
    }
    let _ = nix::unistd::setsid();
    // Processes the env's execs leave behind are re-parented to the shim, not
    // to the host's init, so the shim can reap them.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    if let Some(vm) = config.vm.clone() {
        crate::vm_shim::run(config, vm);
    }
    if config.gvisor.is_some()
        && let Err(message) = crate::gvisor_env::private_mounts()
    {
        report_ready(&ReadyLine {
            ok: false,
            shim_pid: std::process::id(),
            init_pid: None,
            error: Some(message),
        });
        std::process::exit(1);
    }

    let mut shim = match Shim::start(config) {
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
        init_pid: shim.init_pid().map(|p| p.as_raw() as u32),
        error: None,
    });
    shim.run()
}

/// A socket that becomes readable on SIGCHLD, SIGTERM, SIGINT and SIGHUP,
/// and a flag set by the last three (a request to stop the env).
pub(crate) fn install_signals() -> Result<(UnixStream, Arc<AtomicBool>), String> {
    let (signals, signal_writer) =
        UnixStream::pair().map_err(|e| format!("creating the signal pipe: {e}"))?;
    signals.set_nonblocking(true).map_err(|e| e.to_string())?;
    signal_writer
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    for signal in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let writer = signal_writer.try_clone().map_err(|e| e.to_string())?;
        signal_hook::low_level::pipe::register_raw(signal, OwnedFd::from(writer))
            .map_err(|e| format!("installing the handler for signal {signal}: {e}"))?;
    }
    let terminated = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&terminated))
            .map_err(|e| format!("installing the handler for signal {signal}: {e}"))?;
    }
    Ok((signals, terminated))
}

/// Writes the ready line on stdout (the launcher's pipe) and closes it.
pub(crate) fn report_ready(line: &ReadyLine) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}",
        serde_json::to_string(line).expect("ready line serialises")
    );
    let _ = stdout.flush();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        // Replacing fd 1 closes the pipe, which tells the launcher we are done.
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Token {
    Signals,
    Listener,
    ConnRead(u64),
    ConnWrite(u64),
    Output(i32, usize),
    Stdin(i32),
}

enum ConnState {
    Handshake,
    /// Frames flow between this connection and process `pid`.
    Streaming(Pid),
    /// Waiting for the env to stop, to send the stop response.
    AwaitingStop,
    /// Close once everything queued is sent.
    Closing,
}

type Conn = crate::conn::Conn<ConnState>;

struct Proc {
    is_init: bool,
    conn: Option<u64>,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    outputs: Vec<(Kind, File)>,
    pty_master: Option<File>,
}

struct Shim {
    config: ShimConfig,
    listener: UnixListener,
    signals: UnixStream,
    cgroup: sandbox::Cgroup,
    init: Option<Pid>,
    started_at: Option<i64>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    procs: HashMap<i32, Proc>,
    /// console.log, capped at the spec's `log_max`: PID 1's output is read
    /// from a pipe and written here by the shim, never by the env itself.
    log: ConsoleLog,
    stop_deadline: Option<Instant>,
    attach_deadline: Option<Instant>,
    terminated: Arc<AtomicBool>,
    /// The env's mount namespace, held open so that tearing it down (unmounting
    /// the overlay and the env's other mounts, which waits on RCU and took up to
    /// 50 ms) happens after the exit code has been sent, not before the kernel
    /// reports the env's PID 1 as exited.
    held_mount_ns: Option<File>,
    /// gvisor envs: when to next bring console.log under its cap (runsc
    /// writes the file itself; see [`ConsoleLog::cap_in_place`]).
    log_cap_due: Option<Instant>,
}

impl Shim {
    fn start(config: ShimConfig) -> Result<Shim, String> {
        let (signals, terminated) = install_signals()?;

        if let Some(dir) = config.socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&config.socket);
        let listener = UnixListener::bind(&config.socket)
            .map_err(|e| format!("listening on {}: {e}", config.socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;

        let log = ConsoleLog::open(&config.log_path(), config.log_max)
            .map_err(|e| format!("opening the log {}: {e}", config.log_path().display()))?;
        let limits = sandbox::Limits {
            cpu: config.cpu,
            // Under gVisor the limit is the sandbox kernel's; the host cgroup
            // also bounds the sentry and gofer around it.
            memory: match &config.gvisor {
                Some(_) => config
                    .memory
                    .map(|m| m + crate::gvisor_env::SANDBOX_OVERHEAD),
                None => config.memory,
            },
            pids: config.pids,
        };
        let cgroup = sandbox::Cgroup::create(&config.cgroup, &limits)
            .map_err(|e| format!("creating cgroup {}: {e}", config.cgroup))?;
        let _ = std::fs::remove_file(ExitRecord::path(&config.env_dir));

        let attach = config.attach;
        let mut shim = Shim {
            config,
            listener,
            signals,
            cgroup,
            init: None,
            started_at: None,
            conns: HashMap::new(),
            next_conn: 0,
            procs: HashMap::new(),
            log,
            stop_deadline: None,
            attach_deadline: None,
            terminated,
            held_mount_ns: None,
            log_cap_due: None,
        };
        if let Some(criu) = shim.config.restore.clone() {
            let (output, output_write) = console_pipe().map_err(|e| e.to_string())?;
            let restored = crate::criu::restore(
                &shim.config,
                &criu,
                &shim.cgroup,
                output_write,
                shim.log.file(),
            );
            match restored {
                Ok(pid) => {
                    // The processes are back: the checkpoint is spent.
                    let _ =
                        std::fs::remove_dir_all(crate::criu::checkpoint_dir(&shim.config.env_dir));
                    // CRIU restored the network namespace empty: the env's veth
                    // is wired again as at a start (the host's rules name it).
                    if let Some(net) = &shim.config.net
                        && let Err(e) = verse_net::attach(pid.as_raw(), net)
                    {
                        tracing::warn!("wiring {} after the restore: {e}", net.host_ifname);
                    }
                    shim.started(pid);
                    shim.procs.insert(pid.as_raw(), Proc::console(output));
                }
                Err(e) => {
                    shim.teardown_cgroup();
                    let _ = std::fs::remove_file(&shim.config.socket);
                    return Err(format!("resuming from its checkpoint: {e}"));
                }
            }
        } else if attach {
            shim.attach_deadline = Some(Instant::now() + ATTACH_WAIT);
        } else if shim.config.gvisor.is_some() {
            // runsc's sandbox fails writes to a full host pipe (EIO in this
            // gVisor), so it appends to console.log itself and the shim caps
            // the file on a timer.
            let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
            let out = shim.log.file().try_clone().map_err(|e| e.to_string())?;
            let err = shim.log.file().try_clone().map_err(|e| e.to_string())?;
            if let Err(e) = shim.start_init(stdin.into(), out.into(), err.into()) {
                shim.teardown_cgroup();
                let _ = std::fs::remove_file(&shim.config.socket);
                let log = std::fs::read_to_string(shim.config.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!("{e}: {}", tail.join(" | ")));
            }
            shim.log_cap_due = Some(Instant::now() + LOG_CAP_TICK);
        } else {
            // PID 1's stdout and stderr: one pipe (so their lines interleave as
            // written) that the shim drains into the capped console.log.
            let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
            let (mut output, output_write) = console_pipe().map_err(|e| e.to_string())?;
            let stderr = output_write.try_clone().map_err(|e| e.to_string())?;
            match shim.start_init(stdin.into(), output_write, stderr) {
                Ok(pid) => {
                    shim.procs.insert(pid.as_raw(), Proc::console(output));
                }
                Err(e) => {
                    // What the env (or runsc) said before failing explains the failure.
                    let mut said = Vec::new();
                    let _ = output.read_to_end(&mut said);
                    let _ = shim.log.write(&said);
                    let said = String::from_utf8_lossy(&said);
                    let tail: Vec<&str> = said.lines().rev().take(5).collect();
                    shim.teardown_cgroup();
                    let _ = std::fs::remove_file(&shim.config.socket);
                    if tail.is_empty() {
                        return Err(e);
                    }
                    return Err(format!("{e}: {}", tail.join(" | ")));
                }
            }
        }
        Ok(shim)
    }

    fn init_pid(&self) -> Option<Pid> {
        self.init
    }

    fn start_init(
        &mut self,
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<Pid, String> {
        let c = &self.config;
        if let Some(gvisor) = &c.gvisor {
            let pid = crate::gvisor_env::start(c, gvisor, &self.cgroup, [stdin, stdout, stderr])?;
            return Ok(self.started(pid));
        }
        let container = sandbox::ContainerConfig {
            rootfs: sandbox::Rootfs {
                lowers: c.lowers.clone(),
                lower_idmap: c.lower_idmap(),
                upper: c.upper(),
                work: c.work(),
                mountpoint: c.mountpoint(),
            },
            volumes: c
                .volumes
                .iter()
                .map(|v| sandbox::BindMount {
                    source: v.host.clone(),
                    target: v.path.clone(),
                    readonly: v.readonly,
                })
                .collect(),
            hostname: c.hostname.clone(),
            argv: c.argv.clone(),
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            uid: c.uid,
            gid: c.gid,
            uid_map: sandbox::IdMap {
                container_id: 0,
                host_id: c.id_base,
                size: 65536,
            },
            gid_map: sandbox::IdMap {
                container_id: 0,
                host_id: c.id_base,
                size: 65536,
            },
            cgroup: self.cgroup.clone(),
            stdin,
            stdout,
            stderr,
            share_host_network: false,
            shm_size: c.shm,
        };
        let net = c.net.clone();
        // The network is wired from outside between clone and the env's first step, so its
        // command never runs without the policy's interface in place.
        let pid = sandbox::spawn_with(container, |pid| match &net {
            Some(net) => verse_net::attach(pid.as_raw(), net)
                .map_err(|e| format!("connecting the env to its network: {e}")),
            None => Ok(()),
        })
        .map_err(|e| e.to_string())?;
        Ok(self.started(pid))
    }

    /// Records that the env's init `pid` runs.
    fn started(&mut self, pid: Pid) -> Pid {
        self.init = Some(pid);
        self.held_mount_ns = File::open(format!("/proc/{}/ns/mnt", pid.as_raw())).ok();
        let started_at = now_unix();
        self.started_at = Some(started_at);
        let record = ShimRecord {
            shim_pid: std::process::id(),
            init_pid: pid.as_raw() as u32,
            started_at,
        };
        let _ = record::store(&ShimRecord::path(&self.config.env_dir), &record);
        pid
    }

    fn run(&mut self) -> ! {
        loop {
            let timeout = self.poll_timeout();
            let ready = match self.poll_once(timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!("poll failed: {e}");
                    self.finish(None, Some(format!("shim poll failed: {e}")));
                }
            };
            for (token, flags) in ready {
                self.handle(token, flags);
            }
            self.check_deadlines();
        }
    }

    fn poll_timeout(&self) -> PollTimeout {
        let next = [self.stop_deadline, self.attach_deadline, self.log_cap_due]
            .into_iter()
            .flatten()
            .min();
        match next {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let ms = deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as u16;
                PollTimeout::from(ms)
            }
        }
    }

    fn poll_once(&self, timeout: PollTimeout) -> nix::Result<Vec<(Token, PollFlags)>> {
        let mut tokens = vec![Token::Signals, Token::Listener];
        let mut fds = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        for (id, conn) in &self.conns {
            if !conn.eof {
                tokens.push(Token::ConnRead(*id));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLIN));
            }
            if !conn.outbuf.is_empty() {
                tokens.push(Token::ConnWrite(*id));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLOUT));
            }
        }
        for (pid, proc) in &self.procs {
            let backlog = proc
                .conn
                .and_then(|id| self.conns.get(&id))
                .map_or(0, |c| c.outbuf.len());
            if backlog < BACKPRESSURE_BYTES {
                for (index, (_, file)) in proc.outputs.iter().enumerate() {
                    tokens.push(Token::Output(*pid, index));
                    fds.push(PollFd::new(file.as_fd(), PollFlags::POLLIN));
                }
            }
            if let Some(stdin) = &proc.stdin
                && !proc.stdin_buf.is_empty()
            {
                tokens.push(Token::Stdin(*pid));
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
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

    fn handle(&mut self, token: Token, flags: PollFlags) {
        match token {
            Token::Signals => self.on_signals(),
            Token::Listener => self.accept(),
            Token::ConnRead(id) => self.on_conn_readable(id),
            Token::ConnWrite(id) => self.flush_conn(id),
            Token::Output(pid, index) => self.on_output(pid, index, flags),
            Token::Stdin(pid) => self.flush_stdin(pid),
        }
    }

    fn on_signals(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.signals).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        // Whatever arrived, reap: SIGCHLD is the common case and the others
        // (TERM, INT, HUP to the shim) mean "stop the env gracefully".
        self.reap();
        if self.termination_requested() {
            self.begin_stop();
        }
    }

    /// TERM, INT or HUP sent to the shim itself asks for a graceful stop.
    fn termination_requested(&self) -> bool {
        self.terminated.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.on_exit(pid, code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => self.on_exit(pid, 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, code: i32) {
        let is_init = Some(pid) == self.init;
        if let Some(mut proc) = self.procs.remove(&pid.as_raw()) {
            self.drain_outputs(&mut proc);
            if let Some(id) = proc.conn
                && !is_init
                && let Some(conn) = self.conns.get_mut(&id)
            {
                Frame::exit(code).encode_into(&mut conn.outbuf);
                conn.state = ConnState::Closing;
                self.flush_conn(id);
            }
        }
        if is_init {
            self.finish(Some(code), None);
        }
    }

    /// Reads what a finished process left in its pipes, without blocking.
    fn drain_outputs(&mut self, proc: &mut Proc) {
        let mut buf = vec![0u8; 64 * 1024];
        for (kind, file) in &mut proc.outputs {
            set_nonblocking(file);
            loop {
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if proc.is_init {
                            let _ = self.log.write(&buf[..n]);
                        }
                        if let Some(conn) = proc.conn.and_then(|id| self.conns.get_mut(&id)) {
                            encode_data(*kind, &buf[..n], &mut conn.outbuf);
                        }
                    }
                }
            }
        }
        proc.outputs.clear();
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
            ConnState::Streaming(pid) => {
                // The client went away mid-stream: nobody will read the
                // process' output or send its input, so end it.
                if Some(pid) == self.init {
                    self.begin_stop();
                } else {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                if let Some(proc) = self.procs.get_mut(&pid.as_raw()) {
                    proc.conn = None;
                }
                self.conns.remove(&id);
            }
            ConnState::AwaitingStop => {}
            _ if conn.outbuf.is_empty() => {
                self.conns.remove(&id);
            }
            _ => {}
        }
    }

    fn process_frames(&mut self, id: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            let ConnState::Streaming(pid) = conn.state else {
                return;
            };
            let frame = match conn.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => {
                    conn.eof = true;
                    return;
                }
            };
            let Some(proc) = self.procs.get_mut(&pid.as_raw()) else {
                continue;
            };
            match frame.kind {
                Kind::Stdin if proc.stdin.is_some() => {
                    proc.stdin_buf.extend_from_slice(&frame.payload)
                }
                Kind::StdinEof => {
                    proc.stdin_eof = true;
                    if proc.stdin_buf.is_empty() {
                        close_stdin(proc);
                    }
                }
                Kind::Resize => {
                    if let (Some(master), Some((rows, cols))) = (&proc.pty_master, frame.as_size())
                    {
                        set_window_size(master, rows, cols);
                    }
                }
                Kind::Signal => {
                    if let Some(signal) = frame.as_i32().and_then(|s| Signal::try_from(s).ok()) {
                        let _ = kill(pid, signal);
                    }
                }
                _ => {}
            }
            if !proc.stdin_buf.is_empty() {
                self.flush_stdin(pid.as_raw());
            }
        }
    }

    fn on_request(&mut self, id: u64, request: ShimRequest) {
        match request {
            ShimRequest::Status => {
                let stats = self.cgroup.stats();
                let status = ShimStatus {
                    init_pid: self.init.map(|p| p.as_raw() as u32),
                    started_at: self.started_at,
                    cpu_usage_ns: Some(stats.cpu_usage_ns),
                    memory_bytes: Some(stats.memory_bytes),
                    pids: Some(stats.pids),
                    paused: false,
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
            ShimRequest::Hibernate { criu, timeout_ms } => {
                self.hibernate(id, &criu, timeout_ms.map(Duration::from_millis))
            }
            ShimRequest::Pause | ShimRequest::Unpause | ShimRequest::HibernateVm => self.respond(
                id,
                ShimResponse::error(
                    "container envs pause through their cgroup and hibernate through CRIU",
                ),
                true,
            ),
            ShimRequest::GuestFile(_) => self.respond(
                id,
                ShimResponse::error("guest file operations are for vm envs; the daemon reaches a container env's files itself"),
                true,
            ),
            ShimRequest::Stop { timeout_ms } => {
                if self.init.is_none() {
                    self.respond(id, ShimResponse::ok(), true);
                    self.finish(None, None);
                }
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.state = ConnState::AwaitingStop;
                }
                self.config.stop_timeout_ms = timeout_ms;
                self.begin_stop();
            }
            ShimRequest::Attach { tty, rows, cols } => {
                if self.init.is_some() || !self.config.attach {
                    self.respond(
                        id,
                        ShimResponse::error("this env is already running; use exec"),
                        true,
                    );
                    return;
                }
                self.attach_deadline = None;
                match Stdio::new(tty, rows, cols, None) {
                    Err(e) => self.respond(
                        id,
                        ShimResponse::error(format!("creating stdio: {e}")),
                        true,
                    ),
                    Ok(stdio) => {
                        let (child_in, child_out, child_err, proc) = stdio.split(true, id);
                        match self.start_init(child_in, child_out, child_err) {
                            Ok(pid) => self.stream(id, pid, proc),
                            Err(e) => {
                                self.respond(id, ShimResponse::error(e.clone()), true);
                                self.flush_conn(id);
                                self.finish(None, Some(e));
                            }
                        }
                    }
                }
            }
            ShimRequest::Exec(request) => {
                let Some(init) = self.init else {
                    self.respond(id, ShimResponse::error("the env is not running"), true);
                    return;
                };
                if request.argv.is_empty() {
                    self.respond(id, ShimResponse::error("no command given"), true);
                    return;
                }
                let env_pty = match &self.config.gvisor {
                    Some(_) => None,
                    None => Some(init),
                };
                let stdio = match Stdio::new(request.tty, request.rows, request.cols, env_pty) {
                    Ok(s) => s,
                    Err(e) => {
                        self.respond(
                            id,
                            ShimResponse::error(format!("creating stdio: {e}")),
                            true,
                        );
                        return;
                    }
                };
                let (stdin, stdout, stderr, proc) = stdio.split(false, id);
                let mut env = self.config.env.clone();
                if request.tty && !env.iter().any(|(k, _)| k == "TERM") {
                    env.push(("TERM".into(), "xterm-256color".into()));
                }
                for (key, value) in request.env {
                    env.retain(|(k, _)| *k != key);
                    env.push((key, value));
                }
                let exec = sandbox::ExecConfig {
                    argv: request.argv,
                    env,
                    cwd: request
                        .cwd
                        .map(Into::into)
                        .unwrap_or_else(|| self.config.cwd.clone()),
                    uid: self.config.uid,
                    gid: self.config.gid,
                    stdin,
                    stdout,
                    stderr,
                    tty: request.tty,
                };
                let started = match &self.config.gvisor {
                    Some(gvisor) => crate::gvisor_env::exec(&self.config, gvisor, exec),
                    None => sandbox::exec(init, &self.cgroup, exec).map_err(|e| e.to_string()),
                };
                match started {
                    Ok(pid) => self.stream(id, pid, proc),
                    Err(e) => self.respond(id, ShimResponse::error(e), true),
                }
            }
        }
    }

    /// Connects a started process to connection `id`: the response names its
    /// pid, then frames flow both ways until it exits.
    fn stream(&mut self, id: u64, pid: Pid, proc: Proc) {
        self.procs.insert(pid.as_raw(), proc);
        let response = ShimResponse {
            pid: Some(pid.as_raw() as u32),
            ..ShimResponse::ok()
        };
        self.respond(id, response, false);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.state = ConnState::Streaming(pid);
        }
        self.process_frames(id);
        // The process may have exited before it was registered.
        self.reap();
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

    fn on_output(&mut self, pid: i32, index: usize, flags: PollFlags) {
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
                if proc.is_init {
                    let _ = self.log.write(&buf[..n]);
                }
                if let Some(id) = proc.conn {
                    if let Some(conn) = self.conns.get_mut(&id) {
                        encode_data(kind, &buf[..n], &mut conn.outbuf);
                    }
                    self.flush_conn(id);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // End of file, or EIO from a pty whose last writer closed.
            _ => {
                if flags.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLIN) {
                    proc.outputs.remove(index);
                }
            }
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
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The process closed its stdin; drop what it will never read.
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

    /// A process of the env that is not under its PID 1 (left behind by a `verse
    /// exec`, re-parented to the shim): CRIU checkpoints one tree, and would
    /// leave such a process out of the env's pid namespace it must capture whole.
    fn outside_tree(&self, init: Pid) -> Option<String> {
        let parent = |pid: i32| -> Option<i32> {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
        };
        for pid in self.cgroup.procs() {
            let pid = pid.as_raw();
            let mut cur = pid;
            let mut under_init = false;
            for _ in 0..4096 {
                if cur == init.as_raw() {
                    under_init = true;
                    break;
                }
                match parent(cur) {
                    Some(p) if p > 1 => cur = p,
                    _ => break,
                }
            }
            if !under_init {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                return Some(format!(
                    "process {pid} ({}) was started by `verse exec`, outside the env's main process tree, and CRIU checkpoints one tree; end it first",
                    comm.trim()
                ));
            }
        }
        None
    }

    /// Checkpoints the env and exits, or refuses and keeps it running.
    fn hibernate(&mut self, id: u64, criu: &Path, freeze_timeout: Option<Duration>) {
        let refusal = match self.init {
            None => Some("it is not running".to_string()),
            Some(_) if self.config.vm.is_some() || self.config.gvisor.is_some() => {
                Some("only container envs hibernate through the shim".into())
            }
            Some(_) if self.config.attach => Some(
                "its command runs attached to a client (`verse run`), which a restore could not reconnect"
                    .into(),
            ),
            Some(_) if self.procs.values().any(|p| !p.is_init) => Some(
                "`verse exec` sessions run in it (their stdio leads to clients a restore could not reconnect); end them first"
                    .into(),
            ),
            Some(_) if self.stop_deadline.is_some() => Some("it is stopping".into()),
            Some(init) => self.outside_tree(init),
        };
        if let Some(reason) = refusal {
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        let init = self.init.expect("checked above");
        let Some(output) = self
            .procs
            .get(&init.as_raw())
            .and_then(|p| p.outputs.first())
        else {
            self.respond(
                id,
                ShimResponse::error("the env's output pipe is gone"),
                true,
            );
            return;
        };
        if let Err(reason) = crate::criu::dump(&self.config, criu, init, &output.1, freeze_timeout)
        {
            // CRIU resumed the tree: the env runs on untouched.
            self.respond(id, ShimResponse::error(reason), true);
            return;
        }
        // CRIU has killed the tree; its processes now live only in the checkpoint.
        let _ = waitpid(init, None);
        self.procs.clear();
        self.init = None;
        self.teardown_cgroup();
        self.reap_remaining();
        let env_dir = self.config.env_dir.clone();
        let _ = std::fs::remove_file(ShimRecord::path(&env_dir));
        let _ = std::fs::remove_file(ExitRecord::path(&env_dir));
        let _ = std::fs::remove_file(&self.config.socket);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.answer_ok_before_exit();
        }
        std::process::exit(0);
    }

    /// SIGTERM the env's init now; SIGKILL everything at the deadline.
    fn begin_stop(&mut self) {
        let Some(init) = self.init else {
            self.finish(None, None);
        };
        if self.stop_deadline.is_none() {
            let _ = kill(init, Signal::SIGTERM);
            self.stop_deadline =
                Some(Instant::now() + Duration::from_millis(self.config.stop_timeout_ms));
        }
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if self.log_cap_due.is_some_and(|d| d <= now) {
            if let Err(e) = self.log.cap_in_place() {
                tracing::warn!("capping {}: {e}", self.config.log_path().display());
            }
            self.log_cap_due = Some(now + LOG_CAP_TICK);
        }
        if self.stop_deadline.is_some_and(|d| d <= now) {
            self.stop_deadline = Some(now + Duration::from_secs(3600));
            let _ = self.cgroup.kill_all();
            self.reap();
        }
        if self.attach_deadline.is_some_and(|d| d <= now) {
            self.finish(None, Some("no client attached in time".into()));
        }
        if self.termination_requested() && self.init.is_none() {
            self.finish(None, None);
        }
    }

    fn teardown_cgroup(&mut self) {
        let _ = self.cgroup.kill_all();
        let _ = self.cgroup.clone().remove();
    }

    /// The env ended: clean up, record how, tell whoever waits, exit.
    fn finish(&mut self, exit_code: Option<i32>, error: Option<String>) -> ! {
        // Every process left in the env (execs, daemons the command started)
        // ends with it: pid namespace teardown kills them, the cgroup kill
        // catches anything that escaped the namespace's view.
        self.teardown_cgroup();
        self.reap_remaining();
        if let Some(net) = &self.config.net {
            // The namespace may outlive its processes a while (orphaned sockets hold it);
            // deleting the host end takes the pair, and the env's way out, at once.
            verse_net::detach(net);
        }
        if let Some(gvisor) = &self.config.gvisor {
            crate::gvisor_env::cleanup(&self.config, gvisor);
        }
        let env_dir = self.config.env_dir.clone();
        let _ = std::fs::remove_file(ShimRecord::path(&env_dir));
        // What must go is renamed out of the way at once and deleted after
        // the clients have their answer: deleting an overlay's upper and work
        // dirs costs milliseconds the user need not wait for.
        let mut trash = Vec::new();
        if self.config.remove_on_exit {
            trash.extend(move_to_trash(&env_dir));
        } else {
            if self.config.ephemeral {
                for dir in [self.config.upper(), self.config.work()] {
                    trash.extend(move_to_trash(&dir));
                    recreate_owned(&dir, self.config.id_base);
                }
            }
            let record = ExitRecord {
                exit_code,
                finished_at: now_unix(),
                error: error.clone(),
            };
            let _ = record::store(&ExitRecord::path(&env_dir), &record);
        }
        let _ = std::fs::remove_file(&self.config.socket);

        // Only now, with nothing left behind, tell the clients.
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            match conn.state {
                ConnState::Streaming(_) => match (&error, exit_code) {
                    (Some(message), _) => Frame::new(Kind::Error, message.as_bytes().to_vec())
                        .encode_into(&mut conn.outbuf),
                    (None, code) => Frame::exit(code.unwrap_or(137)).encode_into(&mut conn.outbuf),
                },
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
        self.conns.clear();
        // Now the env's mounts may go (see `held_mount_ns`).
        self.held_mount_ns = None;
        for dir in trash {
            // `verse run --rm` of an env with a disk: its filesystem is unmounted
            // (the loop device detaches with it) before its directory goes.
            if verse_disk::has_disk(&dir) {
                verse_disk::unmount_under(&dir);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(0);
    }

    fn reap_remaining(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => {}
                Err(_) => return,
                Ok(WaitStatus::Exited(pid, code)) => self.finish_exec(pid, code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    self.finish_exec(pid, 128 + signal as i32)
                }
                Ok(_) => {}
            }
        }
    }

    fn finish_exec(&mut self, pid: Pid, code: i32) {
        if let Some(mut proc) = self.procs.remove(&pid.as_raw()) {
            self.drain_outputs(&mut proc);
            if let Some(conn) = proc.conn.and_then(|id| self.conns.get_mut(&id))
                && !proc.is_init
            {
                Frame::exit(code).encode_into(&mut conn.outbuf);
                conn.state = ConnState::Closing;
            }
        }
    }
}

/// The stdio of a process the shim starts: pipes, or one pty.
struct Stdio {
    child: [OwnedFd; 3],
    parent_stdin: File,
    parent_outputs: Vec<(Kind, File)>,
    pty_master: Option<File>,
}

impl Stdio {
    /// `env_init`: a running container env's PID 1, whose own devpts gives the
    /// pty (see [`crate::env_pty`]); otherwise the host's devpts does.
    fn new(tty: bool, rows: u16, cols: u16, env_init: Option<Pid>) -> std::io::Result<Stdio> {
        if tty {
            let (master, slave) = match env_init {
                Some(init) => crate::env_pty::open(init, rows, cols)?,
                None => {
                    let size = nix::pty::Winsize {
                        ws_row: rows.max(1),
                        ws_col: cols.max(1),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let pty = nix::pty::openpty(Some(&size), None).map_err(std::io::Error::from)?;
                    (pty.master, pty.slave)
                }
            };
            let master = File::from(master);
            set_nonblocking(&master);
            let child = [slave.try_clone()?, slave.try_clone()?, slave];
            Ok(Stdio {
                child,
                parent_stdin: master.try_clone()?,
                parent_outputs: vec![(Kind::Stdout, master.try_clone()?)],
                pty_master: Some(master),
            })
        } else {
            let (in_read, in_write) = std::io::pipe()?;
            let (out_read, out_write) = std::io::pipe()?;
            let (err_read, err_write) = std::io::pipe()?;
            let stdin = File::from(OwnedFd::from(in_write));
            let stdout = File::from(OwnedFd::from(out_read));
            let stderr = File::from(OwnedFd::from(err_read));
            for f in [&stdin, &stdout, &stderr] {
                set_nonblocking(f);
            }
            Ok(Stdio {
                child: [in_read.into(), out_write.into(), err_write.into()],
                parent_stdin: stdin,
                parent_outputs: vec![(Kind::Stdout, stdout), (Kind::Stderr, stderr)],
                pty_master: None,
            })
        }
    }

    fn split(self, is_init: bool, conn: u64) -> (OwnedFd, OwnedFd, OwnedFd, Proc) {
        let [stdin, stdout, stderr] = self.child;
        let proc = Proc {
            is_init,
            conn: Some(conn),
            stdin: Some(self.parent_stdin),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            outputs: self.parent_outputs,
            pty_master: self.pty_master,
        };
        (stdin, stdout, stderr, proc)
    }
}

impl Proc {
    /// PID 1 of an env started without a client: its output (read end
    /// `output`) goes to the console log only.
    fn console(output: File) -> Proc {
        Proc {
            is_init: true,
            conn: None,
            stdin: None,
            stdin_buf: Vec::new(),
            stdin_eof: true,
            outputs: vec![(Kind::Stdout, output)],
            pty_master: None,
        }
    }
}

/// A pipe for an env's console output: the read end (non-blocking, for the
/// poll loop) and the write end the env's processes get.
fn console_pipe() -> std::io::Result<(File, OwnedFd)> {
    let (read, write) = std::io::pipe()?;
    let read = File::from(OwnedFd::from(read));
    set_nonblocking(&read);
    Ok((read, write.into()))
}

fn close_stdin(proc: &mut Proc) {
    if proc.pty_master.is_some() {
        // A pty has no separate stdin to close: send the terminal's EOF (^D).
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
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(file.as_fd(), FcntlArg::F_SETFL(flags));
    }
}

fn set_window_size(master: &File, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives on our stack for
    // the duration of the call; the fd is an open pty master.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// A fresh, empty writable-layer directory owned by the env's root user.
fn recreate_owned(dir: &Path, id_base: u32) {
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = std::os::unix::fs::chown(dir, Some(id_base), Some(id_base));
    }
}

/// Renames `path` into the state directory's `trash/` (envs/NAME/.. /..), from
/// where it is deleted later: by this shim after it has answered, or by the
/// daemon at start if the shim died first. Falls back to deleting in place.
fn move_to_trash(path: &Path) -> Option<std::path::PathBuf> {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let state = path
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "envs"))?
        .parent()?;
    let trash = crate::config::trash_dir(state);
    let name = format!(
        "{}-{}-{}",
        path.file_name()?.to_string_lossy(),
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let target = trash.join(name);
    if std::fs::create_dir_all(&trash).is_ok() && std::fs::rename(path, &target).is_ok() {
        return Some(target);
    }
    let _ = std::fs::remove_dir_all(path);
    None
}
