//! The shim's event loop, written once for every backend.
//!
//! [`Core`] owns what every shim has: the socket and its clients, the signal
//! pipe, the env's cgroup, the stop deadline, the records a restarted daemon
//! reads, and the end of the env (exit record, clients' last answers,
//! cleanup). A [`ShimBackend`] supplies only what differs: how the env starts
//! and runs, its own descriptors to poll, exec, pause, hibernate, stop, and
//! what is left to end. Requests every backend answers alike (status, stop,
//! pause, hibernate's common tail) are routed here; the rest go to the
//! backend. Backends get the core as an argument, so they can answer clients
//! and end the env ([`Core::finish`]) from their own handlers.

use crate::config::ShimConfig;
use crate::conn::Received;
use crate::launch::ReadyLine;
use crate::protocol::{ShimRequest, ShimResponse, ShimStatus};
use crate::record::{self, ExitRecord, ShimRecord, now_unix};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use verse_api::frame::Frame;
use verse_sandbox as sandbox;

/// Stop reading a source while the client it feeds has this much unsent.
pub(crate) const BACKPRESSURE_BYTES: usize = 1 << 20;

/// What a client connection is doing.
pub(crate) enum ConnState<S> {
    /// Waiting for its request line.
    Handshake,
    /// Frames flow between it and what its request started (the backend's
    /// session: an exec's process or channel, an attached env, a file op).
    Session(S),
    /// Waiting for the env to stop, to send the stop response.
    AwaitingStop,
    /// Close once everything queued is sent.
    Closing,
}

pub(crate) type Conn<S> = crate::conn::Conn<ConnState<S>>;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildExit {
    Code(i32),
    Signal(Signal),
}

impl ChildExit {
    /// The shell's convention: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ChildExit::Code(code) => code,
            ChildExit::Signal(signal) => 128 + signal as i32,
        }
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(code) => write!(f, "exited with status {code}"),
            ChildExit::Signal(signal) => write!(f, "was killed by {signal}"),
        }
    }
}

/// What one backend does differently; everything else is [`Core`]'s.
pub(crate) trait ShimBackend: Sized {
    /// What a streaming connection is attached to.
    type Session: Copy;
    /// The backend's own descriptors in the poll set.
    type Token: Copy;

    /// Limits of the env's cgroup, made before the backend starts.
    fn limits(config: &ShimConfig) -> sandbox::Limits;
    /// The process the host sees as the env's init (None: not started yet).
    fn init_pid(&self) -> Option<Pid>;
    fn paused(&self, core: &Core<Self::Session>) -> bool;
    /// Adds the backend's descriptors to this round's poll.
    fn poll<'a>(&'a self, core: &'a Core<Self::Session>, set: &mut PollSet<'a, Self::Token>);
    fn on_ready(&mut self, core: &mut Core<Self::Session>, token: Self::Token, flags: PollFlags);
    /// Whether clients' frames may be read now (false: the backend already
    /// holds too much of them unsent).
    fn takes_input(&self) -> bool {
        true
    }
    /// When the backend next wants [`ShimBackend::on_tick`].
    fn next_tick(&self) -> Option<Instant> {
        None
    }
    fn on_tick(&mut self, _core: &mut Core<Self::Session>, _now: Instant) {}
    fn on_child_exit(&mut self, core: &mut Core<Self::Session>, pid: Pid, how: ChildExit);
    /// The requests the core does not answer itself: attach, exec, guest file.
    fn on_request(&mut self, core: &mut Core<Self::Session>, id: u64, request: ShimRequest);
    /// Frames a session's client sent (read them with [`Core::next_frame`]).
    fn on_frames(&mut self, core: &mut Core<Self::Session>, id: u64, session: Self::Session);
    /// A session's client left; the core drops the connection afterwards.
    fn on_client_gone(&mut self, core: &mut Core<Self::Session>, id: u64, session: Self::Session);
    /// `verse pause` (`pause`) or `verse unpause`: the response to send.
    fn pause(&mut self, core: &mut Core<Self::Session>, pause: bool) -> ShimResponse;
    /// Saves the env into `checkpoint/` and ends what runs (its cgroup
    /// included); `Err`: refused, with the env left running.
    fn hibernate(&mut self, core: &mut Core<Self::Session>, save: &Save) -> Result<(), String>;
    /// Asks the env to stop within `timeout`; returns the extra time it gets
    /// before [`ShimBackend::kill`], or None when nothing runs.
    fn stop(&mut self, core: &mut Core<Self::Session>, timeout: Duration) -> Option<Duration>;
    /// The stop deadline passed: end the env from outside.
    fn kill(&mut self, core: &mut Core<Self::Session>);
    /// The env ends: end and remove everything of it still running.
    fn end(&mut self, core: &mut Core<Self::Session>);
    /// An ephemeral env's writes: removed now, or returned to be deleted after
    /// the clients have their answer.
    fn discard_writes(&self, config: &ShimConfig) -> Vec<PathBuf>;
    /// The last frame a session's client gets when the env ends.
    fn farewell(
        &self,
        session: Self::Session,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Option<Frame>;
    /// After the clients' last answers: let go of what kept the env's
    /// teardown for later.
    fn release(&mut self) {}
}

/// What a hibernate request gives the backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Save {
    /// The CRIU binary (container backend).
    pub criu: Option<PathBuf>,
    /// How long CRIU may take to stop the env's processes.
    pub freeze_timeout: Option<Duration>,
}

/// One round's poll set: the core's descriptors and the backend's.
pub(crate) struct PollSet<'a, T> {
    tokens: Vec<Token<T>>,
    fds: Vec<PollFd<'a>>,
}

impl<'a, T: Copy> PollSet<'a, T> {
    pub fn add(&mut self, token: T, fd: BorrowedFd<'a>, flags: PollFlags) {
        self.push(Token::Backend(token), fd, flags);
    }
    fn push(&mut self, token: Token<T>, fd: BorrowedFd<'a>, flags: PollFlags) {
        self.tokens.push(token);
        self.fds.push(PollFd::new(fd, flags));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<T> {
    Signals,
    Listener,
    ConnRead(u64),
    ConnWrite(u64),
    Backend(T),
}

/// What every shim owns, whatever runs the env.
pub(crate) struct Core<S> {
    pub config: ShimConfig,
    pub cgroup: sandbox::Cgroup,
    pub conns: HashMap<u64, Conn<S>>,
    /// When the env's command started (Unix seconds); None before it has.
    pub started_at: Option<i64>,
    /// A stop is under way (asked for, or the env's command ended).
    pub stopping: bool,
    /// When the env is ended from outside if it has not stopped.
    pub stop_deadline: Option<Instant>,
    listener: UnixListener,
    signals: UnixStream,
    terminated: Arc<AtomicBool>,
    next_conn: u64,
}

/// Starts the env with backend `B` (`start` brings it up), reports on the
/// ready pipe and runs the loop until the env ends. Never returns.
pub(crate) fn serve<B: ShimBackend>(
    config: ShimConfig,
    start: impl FnOnce(&mut Core<B::Session>) -> Result<B, String>,
) -> ! {
    let mut core = match Core::open(config, &B::limits) {
        Ok(core) => core,
        Err(message) => fail_ready(message),
    };
    let backend = match start(&mut core) {
        Ok(backend) => backend,
        Err(message) => {
            core.teardown_cgroup();
            let _ = std::fs::remove_file(&core.config.socket);
            fail_ready(message)
        }
    };
    report_ready(&ReadyLine {
        ok: true,
        shim_pid: std::process::id(),
        init_pid: backend.init_pid().map(|p| p.as_raw() as u32),
        error: None,
    });
    EventLoop { core, backend }.run()
}

/// Reports a shim that could not start the env, and exits.
pub(crate) fn fail_ready(message: String) -> ! {
    report_ready(&ReadyLine {
        ok: false,
        shim_pid: std::process::id(),
        init_pid: None,
        error: Some(message),
    });
    std::process::exit(1);
}

/// Writes the ready line on stdout (the launcher's pipe) and closes it.
fn report_ready(line: &ReadyLine) {
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

/// A socket that becomes readable on SIGCHLD, SIGTERM, SIGINT and SIGHUP,
/// and a flag set by the last three (a request to stop the env).
fn install_signals() -> Result<(UnixStream, Arc<AtomicBool>), String> {
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

impl<S: Copy> Core<S> {
    fn open(
        config: ShimConfig,
        limits: &dyn Fn(&ShimConfig) -> sandbox::Limits,
    ) -> Result<Core<S>, String> {
        let (signals, terminated) = install_signals()?;
        if let Some(dir) = config.socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&config.socket);
        let listener = UnixListener::bind(&config.socket)
            .map_err(|e| format!("listening on {}: {e}", config.socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let cgroup = sandbox::Cgroup::create(&config.cgroup, &limits(&config))
            .map_err(|e| format!("creating cgroup {}: {e}", config.cgroup))?;
        let _ = std::fs::remove_file(ExitRecord::path(&config.env_dir));
        Ok(Core {
            config,
            cgroup,
            conns: HashMap::new(),
            started_at: None,
            stopping: false,
            stop_deadline: None,
            listener,
            signals,
            terminated,
            next_conn: 0,
        })
    }

    /// Records that the env's init `pid` runs since `started_at`, for a
    /// daemon that comes later (`shim.json`).
    pub fn record_started(&mut self, pid: Pid, started_at: i64) {
        self.started_at = Some(started_at);
        let record = ShimRecord {
            shim_pid: std::process::id(),
            init_pid: pid.as_raw() as u32,
            started_at,
        };
        let _ = record::store(&ShimRecord::path(&self.config.env_dir), &record);
    }

    /// Queues `response` for client `id`; `close`: end the connection once sent.
    pub fn respond(&mut self, id: u64, response: ShimResponse, close: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.queue(&response);
        if close {
            conn.state = ConnState::Closing;
        }
        self.flush_conn(id);
    }

    pub fn flush_conn(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.flush() && matches!(conn.state, ConnState::Closing) {
            self.conns.remove(&id);
        }
    }

    pub fn set_state(&mut self, id: u64, state: ConnState<S>) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.state = state;
        }
    }

    /// Bytes queued for client `id` and not yet sent.
    pub fn backlog(&self, id: u64) -> usize {
        self.conns.get(&id).map_or(0, |c| c.outbuf.len())
    }

    /// The next complete frame client `id` sent; a malformed stream ends
    /// the connection.
    pub fn next_frame(&mut self, id: u64) -> Option<Frame> {
        let conn = self.conns.get_mut(&id)?;
        match conn.decoder.next_frame() {
            Ok(frame) => frame,
            Err(_) => {
                conn.eof = true;
                None
            }
        }
    }

    pub fn teardown_cgroup(&mut self) {
        let _ = self.cgroup.kill_all();
        let _ = self.cgroup.clone().remove();
    }

    /// TERM, INT or HUP sent to the shim itself asks for a graceful stop.
    fn termination_requested(&self) -> bool {
        self.terminated.load(Ordering::Relaxed)
    }

    /// Reaps every child that has ended, telling the backend.
    pub fn reap<B: ShimBackend<Session = S>>(&mut self, backend: &mut B) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    backend.on_child_exit(self, pid, ChildExit::Code(code))
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    backend.on_child_exit(self, pid, ChildExit::Signal(signal))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }

    /// Asks the env to stop within `timeout_ms`, and ends it from outside
    /// after that (plus the backend's grace); the env ends at once when
    /// nothing runs. A stop under way is left as it is.
    pub fn begin_stop<B: ShimBackend<Session = S>>(&mut self, backend: &mut B, timeout_ms: u64) {
        if self.stopping {
            return;
        }
        let timeout = Duration::from_millis(timeout_ms);
        let Some(grace) = backend.stop(self, timeout) else {
            self.finish(backend, None, None);
        };
        self.stopping = true;
        self.stop_deadline = Some(Instant::now() + timeout + grace);
    }

    /// The env ended: clean up, record how, tell whoever waits, exit.
    pub fn finish<B: ShimBackend<Session = S>>(
        &mut self,
        backend: &mut B,
        exit_code: Option<i32>,
        error: Option<String>,
    ) -> ! {
        // Every process left in the env (execs, daemons the command started)
        // ends with it.
        backend.end(self);
        if let Some(net) = &self.config.net {
            // The namespace may outlive its processes a while (orphaned sockets hold it);
            // deleting the host end takes the pair, and the env's way out, at once.
            verse_net::detach(net);
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
                trash.extend(backend.discard_writes(&self.config));
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
        for conn in self.conns.values_mut() {
            match conn.state {
                ConnState::Session(session) => {
                    if let Some(frame) = backend.farewell(session, exit_code, error.as_deref()) {
                        frame.encode_into(&mut conn.outbuf);
                    }
                }
                ConnState::AwaitingStop => conn.queue(&ShimResponse {
                    exit_code,
                    ..ShimResponse::ok()
                }),
                _ => {}
            }
            let _ = conn.stream.set_nonblocking(false);
            let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = (&conn.stream).write_all(&conn.outbuf);
        }
        self.conns.clear();
        backend.release();
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

    /// The env is saved (hibernated) and nothing of it runs: the records go
    /// (it neither runs nor ended), client `id` gets its `ok`, the shim exits.
    fn exit_hibernated(&mut self, id: u64) -> ! {
        let env_dir = &self.config.env_dir;
        let _ = std::fs::remove_file(ShimRecord::path(env_dir));
        let _ = std::fs::remove_file(ExitRecord::path(env_dir));
        let _ = std::fs::remove_file(&self.config.socket);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.answer_ok_before_exit();
        }
        std::process::exit(0);
    }
}

/// What the core answers itself, and what goes to the backend.
#[derive(Debug)]
enum Route {
    Status,
    Stop(u64),
    Pause(bool),
    Hibernate(Save),
    Backend(ShimRequest),
}

impl Route {
    fn of(request: ShimRequest) -> Route {
        match request {
            ShimRequest::Status => Route::Status,
            ShimRequest::Stop { timeout_ms } => Route::Stop(timeout_ms),
            ShimRequest::Pause => Route::Pause(true),
            ShimRequest::Unpause => Route::Pause(false),
            ShimRequest::Hibernate { criu, timeout_ms } => Route::Hibernate(Save {
                criu,
                freeze_timeout: timeout_ms.map(Duration::from_millis),
            }),
            other @ (ShimRequest::Attach { .. }
            | ShimRequest::Exec(_)
            | ShimRequest::GuestFile(_)) => Route::Backend(other),
        }
    }
}

struct EventLoop<B: ShimBackend> {
    core: Core<B::Session>,
    backend: B,
}

impl<B: ShimBackend> EventLoop<B> {
    fn run(mut self) -> ! {
        loop {
            let ready = match self.poll_once() {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!("poll failed: {e}");
                    let error = Some(format!("shim poll failed: {e}"));
                    self.core.finish(&mut self.backend, None, error);
                }
            };
            for (token, flags) in ready {
                self.handle(token, flags);
            }
            self.check_deadlines();
        }
    }

    fn poll_once(&self) -> nix::Result<Vec<(Token<B::Token>, PollFlags)>> {
        let core = &self.core;
        let mut set = PollSet {
            tokens: Vec::new(),
            fds: Vec::new(),
        };
        set.push(Token::Signals, core.signals.as_fd(), PollFlags::POLLIN);
        set.push(Token::Listener, core.listener.as_fd(), PollFlags::POLLIN);
        let takes_input = self.backend.takes_input();
        for (id, conn) in &core.conns {
            if !conn.eof && takes_input {
                set.push(Token::ConnRead(*id), conn.stream.as_fd(), PollFlags::POLLIN);
            }
            if !conn.outbuf.is_empty() {
                set.push(
                    Token::ConnWrite(*id),
                    conn.stream.as_fd(),
                    PollFlags::POLLOUT,
                );
            }
        }
        self.backend.poll(core, &mut set);
        match poll(&mut set.fds, self.poll_timeout()) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(set
            .tokens
            .into_iter()
            .zip(set.fds.iter())
            .filter_map(|(t, fd)| fd.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
            .collect())
    }

    fn poll_timeout(&self) -> PollTimeout {
        let next = [self.core.stop_deadline, self.backend.next_tick()]
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

    fn handle(&mut self, token: Token<B::Token>, flags: PollFlags) {
        match token {
            Token::Signals => self.on_signals(),
            Token::Listener => {
                let core = &mut self.core;
                crate::conn::accept_all(
                    &core.listener,
                    &mut core.conns,
                    &mut core.next_conn,
                    || ConnState::Handshake,
                )
            }
            Token::ConnRead(id) => self.on_conn_readable(id),
            Token::ConnWrite(id) => self.core.flush_conn(id),
            Token::Backend(token) => self.backend.on_ready(&mut self.core, token, flags),
        }
    }

    fn on_signals(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.core.signals).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        // Whatever arrived, reap: SIGCHLD is the common case and the others
        // (TERM, INT, HUP to the shim) mean "stop the env gracefully", which
        // the deadline check after this round starts.
        self.core.reap(&mut self.backend);
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        let (core, backend) = (&mut self.core, &mut self.backend);
        if backend.next_tick().is_some_and(|t| t <= now) {
            backend.on_tick(core, now);
        }
        if core.stop_deadline.is_some_and(|d| d <= now) {
            core.stop_deadline = None;
            backend.kill(core);
            core.reap(backend);
        }
        if core.termination_requested() && !core.stopping {
            let timeout = core.config.stop_timeout_ms;
            core.begin_stop(backend, timeout);
        }
    }

    fn on_conn_readable(&mut self, id: u64) {
        let Some(conn) = self.core.conns.get_mut(&id) else {
            return;
        };
        let handshake = matches!(conn.state, ConnState::Handshake);
        match conn.receive(handshake) {
            Received::WouldBlock => return,
            Received::Request(Ok(request)) => self.on_request(id, request),
            Received::Request(Err(error)) => {
                self.core.respond(id, ShimResponse::error(error), true);
            }
            Received::More => {}
        }
        if let Some(ConnState::Session(session)) = self.core.conns.get(&id).map(|c| &c.state) {
            let session = *session;
            self.backend.on_frames(&mut self.core, id, session);
        }
        self.on_conn_eof_if_any(id);
    }

    fn on_conn_eof_if_any(&mut self, id: u64) {
        let Some(conn) = self.core.conns.get(&id) else {
            return;
        };
        if !conn.eof {
            return;
        }
        match conn.state {
            ConnState::Session(session) => {
                self.backend.on_client_gone(&mut self.core, id, session);
                self.core.conns.remove(&id);
            }
            ConnState::AwaitingStop => {}
            _ if conn.outbuf.is_empty() => {
                self.core.conns.remove(&id);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, id: u64, request: ShimRequest) {
        let (core, backend) = (&mut self.core, &mut self.backend);
        match Route::of(request) {
            Route::Status => {
                let stats = core.cgroup.stats();
                let status = ShimStatus {
                    init_pid: backend.init_pid().map(|p| p.as_raw() as u32),
                    started_at: core.started_at,
                    cpu_usage_ns: Some(stats.cpu_usage_ns),
                    memory_bytes: Some(stats.memory_bytes),
                    pids: Some(stats.pids),
                    paused: backend.paused(core),
                };
                let response = ShimResponse {
                    status: Some(status),
                    ..ShimResponse::ok()
                };
                core.respond(id, response, true);
            }
            Route::Stop(timeout_ms) => {
                core.set_state(id, ConnState::AwaitingStop);
                core.config.stop_timeout_ms = timeout_ms;
                core.begin_stop(backend, timeout_ms);
            }
            Route::Pause(pause) => {
                let response = backend.pause(core, pause);
                core.respond(id, response, true);
            }
            Route::Hibernate(save) => match backend.hibernate(core, &save) {
                Ok(()) => core.exit_hibernated(id),
                Err(reason) => core.respond(id, ShimResponse::error(reason), true),
            },
            Route::Backend(request) => backend.on_request(core, id, request),
        }
    }
}

/// Renames `path` into the state directory's `trash/` (envs/NAME/.. /..), from
/// where it is deleted later: by this shim after it has answered, or by the
/// daemon at start if the shim died first. Falls back to deleting in place.
pub(crate) fn move_to_trash(path: &Path) -> Option<PathBuf> {
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
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let target = trash.join(name);
    if std::fs::create_dir_all(&trash).is_ok() && std::fs::rename(path, &target).is_ok() {
        return Some(target);
    }
    let _ = std::fs::remove_dir_all(path);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use verse_api::ExecRequest;

    #[test]
    fn every_backend_gets_status_stop_pause_and_hibernate_from_the_core() {
        assert!(matches!(Route::of(ShimRequest::Status), Route::Status));
        assert!(matches!(
            Route::of(ShimRequest::Stop { timeout_ms: 7 }),
            Route::Stop(7)
        ));
        assert!(matches!(Route::of(ShimRequest::Pause), Route::Pause(true)));
        assert!(matches!(
            Route::of(ShimRequest::Unpause),
            Route::Pause(false)
        ));
        match Route::of(ShimRequest::Hibernate {
            criu: Some("/c".into()),
            timeout_ms: Some(1500),
        }) {
            Route::Hibernate(save) => assert_eq!(
                save,
                Save {
                    criu: Some("/c".into()),
                    freeze_timeout: Some(Duration::from_millis(1500))
                }
            ),
            other => panic!("{other:?}"),
        }
        let exec: ExecRequest = serde_json::from_str(r#"{"argv":["true"],"cwd":null}"#).unwrap();
        assert!(matches!(
            Route::of(ShimRequest::Exec(exec)),
            Route::Backend(ShimRequest::Exec(_))
        ));
        let attach = ShimRequest::Attach {
            tty: true,
            rows: 1,
            cols: 2,
        };
        assert!(matches!(
            Route::of(attach),
            Route::Backend(ShimRequest::Attach { .. })
        ));
    }

    #[test]
    fn a_child_exit_reads_as_the_shell_would_and_as_a_sentence() {
        assert_eq!(ChildExit::Code(3).code(), 3);
        assert_eq!(ChildExit::Signal(Signal::SIGKILL).code(), 137);
        assert_eq!(ChildExit::Code(1).to_string(), "exited with status 1");
        assert_eq!(
            ChildExit::Signal(Signal::SIGKILL).to_string(),
            "was killed by SIGKILL"
        );
    }

    #[test]
    fn trash_goes_under_the_state_dir_and_a_path_outside_one_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let env = root.path().join("envs/web");
        std::fs::create_dir_all(env.join("upper/a")).unwrap();
        let moved = move_to_trash(&env.join("upper")).expect("moved");
        assert!(moved.starts_with(crate::config::trash_dir(root.path())));
        assert!(moved.join("a").is_dir() && !env.join("upper").exists());
        let loose = root.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        assert_eq!(move_to_trash(&loose), None);
        assert!(loose.is_dir());
    }
}
