//! The backend of envs that are a tree of host processes in the env's cgroup
//! (container and gvisor): the shim starts the env's init and its execs with
//! pipes or ptys, relays their stdio to clients, drains PID 1's output into
//! the capped console.log, reaps them, and pauses the env with the cgroup
//! freezer. How a process is started differs ([`Runner`]): namespaces and an
//! overlay ([`super::container`]) or runsc ([`super::gvisor`]).

use super::event_loop::{
    BACKPRESSURE_BYTES, ChildExit, ConnState, Core, PollSet, Save, ShimBackend,
};
use crate::config::ShimConfig;
use crate::console_log::ConsoleLog;
use crate::protocol::{Refusal, ShimRequest, ShimResponse};
use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use verse_api::frame::{Frame, Kind, encode_data};
use verse_sandbox as sandbox;

/// How long an attach-mode shim waits for its client before giving up.
const ATTACH_WAIT: Duration = Duration::from_secs(30);

/// How one kind of process-tree env starts its processes. They run in the
/// core's cgroup, from its config.
pub(crate) trait Runner {
    /// Whether an exec's pty comes from the env's own devpts (reached
    /// through its init) rather than the host's.
    const PTY_IN_ENV: bool;
    /// How often console.log is brought under its cap, for a runtime that
    /// writes the file itself instead of through the shim.
    const LOG_CAP_TICK: Option<Duration>;
    /// Host memory the runtime itself needs on top of the env's limit.
    const MEMORY_OVERHEAD: u64;

    /// Starts the env's command without a client, its output going to
    /// console.log (`log`) only.
    fn start_detached(&mut self, core: &Core<Pid>, log: &mut ConsoleLog) -> Detached;
    /// Starts the env's command with this stdio.
    fn start(&mut self, core: &Core<Pid>, stdio: [OwnedFd; 3]) -> Result<Pid, String>;
    /// Starts a process in the running env of `init`.
    fn exec(&self, core: &Core<Pid>, init: Pid, exec: sandbox::ExecConfig) -> Result<Pid, String>;
    /// Refuses hibernate outright, before anything about the env is asked.
    fn can_hibernate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Saves the env's process tree into `checkpoint/` and ends it, or
    /// leaves it running and says why not.
    fn checkpoint(&mut self, core: &Core<Pid>, tree: Tree<'_>, save: &Save) -> Result<(), String>;
    /// What the runtime leaves on the host once the env's processes are gone.
    fn cleanup(&self, _config: &ShimConfig) {}
}

/// A detached start: the env's init and the read end of the pipe the shim
/// drains into console.log (None: the runtime writes console.log itself).
pub(crate) type Detached = Result<(Pid, Option<File>), String>;

/// The process tree a checkpoint takes.
pub(crate) struct Tree<'a> {
    pub init: Pid,
    /// The shim's end of PID 1's output pipe.
    pub output: Option<&'a File>,
}

struct Proc {
    is_init: bool,
    conn: Option<u64>,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    outputs: Vec<(Kind, File)>,
    pty_master: Option<File>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Output(i32, usize),
    Stdin(i32),
}

pub(crate) struct Procs<R> {
    runner: R,
    init: Option<Pid>,
    procs: HashMap<i32, Proc>,
    /// console.log, capped at the spec's `log_max`: PID 1's output is read
    /// from a pipe and written here by the shim, never by the env itself.
    log: ConsoleLog,
    attach_deadline: Option<Instant>,
    /// The env's mount namespace, held open so that tearing it down (unmounting
    /// the overlay and the env's other mounts, which waits on RCU and took up to
    /// 50 ms) happens after the exit code has been sent, not before the kernel
    /// reports the env's PID 1 as exited.
    held_mount_ns: Option<File>,
    /// When to next bring console.log under its cap (see
    /// [`Runner::LOG_CAP_TICK`] and [`ConsoleLog::cap_in_place`]).
    log_cap_due: Option<Instant>,
}

impl<R: Runner> Procs<R> {
    /// Starts the env (or, in attach mode, waits for its client).
    pub fn start(core: &mut Core<Pid>, runner: R) -> Result<Procs<R>, String> {
        let config = &core.config;
        let log = ConsoleLog::open(&config.log_path(), config.log_max)
            .map_err(|e| format!("opening the log {}: {e}", config.log_path().display()))?;
        let mut procs = Procs {
            runner,
            init: None,
            procs: HashMap::new(),
            log,
            attach_deadline: None,
            held_mount_ns: None,
            log_cap_due: None,
        };
        if config.attach && config.restore.is_none() {
            procs.attach_deadline = Some(Instant::now() + ATTACH_WAIT);
            return Ok(procs);
        }
        let (pid, output) = procs.runner.start_detached(core, &mut procs.log)?;
        procs.started(core, pid);
        if let Some(output) = output {
            procs.procs.insert(pid.as_raw(), Proc::console(output));
        }
        procs.log_cap_due = R::LOG_CAP_TICK.map(|tick| Instant::now() + tick);
        Ok(procs)
    }

    /// Records that the env's init `pid` runs.
    fn started(&mut self, core: &mut Core<Pid>, pid: Pid) {
        self.init = Some(pid);
        self.held_mount_ns = File::open(format!("/proc/{}/ns/mnt", pid.as_raw())).ok();
        core.record_started(pid, crate::record::now_unix());
    }

    fn attach(&mut self, core: &mut Core<Pid>, id: u64, tty: bool, rows: u16, cols: u16) {
        if self.init.is_some() || !core.config.attach {
            let refusal = ShimResponse::error("this env is already running; use exec");
            core.respond(id, refusal, true);
            return;
        }
        self.attach_deadline = None;
        let stdio = match Stdio::new(tty, rows, cols, None) {
            Ok(stdio) => stdio,
            Err(e) => {
                let refusal = ShimResponse::error(format!("creating stdio: {e}"));
                core.respond(id, refusal, true);
                return;
            }
        };
        let (child, proc) = stdio.split(true, id);
        match self.runner.start(core, child) {
            Ok(pid) => {
                self.started(core, pid);
                self.stream(core, id, pid, proc);
            }
            Err(e) => {
                core.respond(id, ShimResponse::error(e.clone()), true);
                core.flush_conn(id);
                core.finish(self, None, Some(e));
            }
        }
    }

    fn exec(&mut self, core: &mut Core<Pid>, id: u64, request: verse_api::ExecRequest) {
        let Some(init) = self.init else {
            core.respond(id, ShimResponse::error("the env is not running"), true);
            return;
        };
        if request.argv.is_empty() {
            core.respond(id, ShimResponse::error("no command given"), true);
            return;
        }
        let env_pty = R::PTY_IN_ENV.then_some(init);
        let stdio = match Stdio::new(request.tty, request.rows, request.cols, env_pty) {
            Ok(s) => s,
            Err(e) => {
                let refusal = ShimResponse::error(format!("creating stdio: {e}"));
                core.respond(id, refusal, true);
                return;
            }
        };
        let ([stdin, stdout, stderr], proc) = stdio.split(false, id);
        let exec = sandbox::ExecConfig {
            env: exec_env(&core.config.env, request.tty, request.env),
            argv: request.argv,
            cwd: request
                .cwd
                .map(Into::into)
                .unwrap_or_else(|| core.config.cwd.clone()),
            uid: core.config.uid,
            gid: core.config.gid,
            stdin,
            stdout,
            stderr,
            tty: request.tty,
        };
        match self.runner.exec(core, init, exec) {
            Ok(pid) => self.stream(core, id, pid, proc),
            Err(e) => core.respond(id, ShimResponse::error(e), true),
        }
    }

    /// Connects a started process to connection `id`: the response names its
    /// pid, then frames flow both ways until it exits.
    fn stream(&mut self, core: &mut Core<Pid>, id: u64, pid: Pid, proc: Proc) {
        self.procs.insert(pid.as_raw(), proc);
        let response = ShimResponse {
            pid: Some(pid.as_raw() as u32),
            ..ShimResponse::ok()
        };
        core.respond(id, response, false);
        core.set_state(id, ConnState::Session(pid));
        self.on_frames(core, id, pid);
        // The process may have exited before it was registered.
        core.reap(self);
    }

    /// Reads what a finished process left in its pipes, without blocking.
    fn drain_outputs(&mut self, core: &mut Core<Pid>, proc: &mut Proc) {
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
                        if let Some(conn) = proc.conn.and_then(|id| core.conns.get_mut(&id)) {
                            encode_data(*kind, &buf[..n], &mut conn.outbuf);
                        }
                    }
                }
            }
        }
        proc.outputs.clear();
    }

    fn on_output(&mut self, core: &mut Core<Pid>, pid: i32, index: usize, flags: PollFlags) {
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
                    if let Some(conn) = core.conns.get_mut(&id) {
                        encode_data(kind, &buf[..n], &mut conn.outbuf);
                    }
                    core.flush_conn(id);
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

    /// Waits (at most 2 s) for the children left after the env's cgroup was
    /// killed, giving each exec's client its exit code.
    fn reap_remaining(&mut self, core: &mut Core<Pid>) {
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
                Ok(WaitStatus::Exited(pid, code)) => self.finish_exec(core, pid, code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    self.finish_exec(core, pid, 128 + signal as i32)
                }
                Ok(_) => {}
            }
        }
    }

    fn finish_exec(&mut self, core: &mut Core<Pid>, pid: Pid, code: i32) {
        if let Some(mut proc) = self.procs.remove(&pid.as_raw()) {
            self.drain_outputs(core, &mut proc);
            if let Some(conn) = proc.conn.and_then(|id| core.conns.get_mut(&id))
                && !proc.is_init
            {
                Frame::exit(code).encode_into(&mut conn.outbuf);
                conn.state = ConnState::Closing;
            }
        }
    }
}

impl<R: Runner> ShimBackend for Procs<R> {
    type Session = Pid;
    type Token = Token;

    fn limits(config: &ShimConfig) -> sandbox::Limits {
        sandbox::Limits {
            cpu: config.cpu,
            memory: config.memory.map(|m| m + R::MEMORY_OVERHEAD),
            pids: config.pids,
        }
    }

    fn init_pid(&self) -> Option<Pid> {
        self.init
    }

    fn paused(&self, core: &Core<Pid>) -> bool {
        core.cgroup.is_frozen()
    }

    fn poll<'a>(&'a self, core: &'a Core<Pid>, set: &mut PollSet<'a, Token>) {
        for (pid, proc) in &self.procs {
            let backlog = proc.conn.map_or(0, |id| core.backlog(id));
            if backlog < BACKPRESSURE_BYTES {
                for (index, (_, file)) in proc.outputs.iter().enumerate() {
                    set.add(Token::Output(*pid, index), file.as_fd(), PollFlags::POLLIN);
                }
            }
            if let Some(stdin) = &proc.stdin
                && !proc.stdin_buf.is_empty()
            {
                set.add(Token::Stdin(*pid), stdin.as_fd(), PollFlags::POLLOUT);
            }
        }
    }

    fn on_ready(&mut self, core: &mut Core<Pid>, token: Token, flags: PollFlags) {
        match token {
            Token::Output(pid, index) => self.on_output(core, pid, index, flags),
            Token::Stdin(pid) => self.flush_stdin(pid),
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        [self.attach_deadline, self.log_cap_due]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_tick(&mut self, core: &mut Core<Pid>, now: Instant) {
        if self.log_cap_due.is_some_and(|d| d <= now) {
            if let Err(e) = self.log.cap_in_place() {
                tracing::warn!("capping {}: {e}", core.config.log_path().display());
            }
            self.log_cap_due = R::LOG_CAP_TICK.map(|tick| now + tick);
        }
        if self.attach_deadline.is_some_and(|d| d <= now) {
            core.finish(self, None, Some("no client attached in time".into()));
        }
    }

    fn on_child_exit(&mut self, core: &mut Core<Pid>, pid: Pid, how: ChildExit) {
        let code = how.code();
        let is_init = Some(pid) == self.init;
        if let Some(mut proc) = self.procs.remove(&pid.as_raw()) {
            self.drain_outputs(core, &mut proc);
            if let Some(id) = proc.conn
                && !is_init
                && let Some(conn) = core.conns.get_mut(&id)
            {
                Frame::exit(code).encode_into(&mut conn.outbuf);
                conn.state = ConnState::Closing;
                core.flush_conn(id);
            }
        }
        if is_init {
            core.finish(self, Some(code), None);
        }
    }

    fn on_request(&mut self, core: &mut Core<Pid>, id: u64, request: ShimRequest) {
        match request {
            ShimRequest::Attach { tty, rows, cols } => self.attach(core, id, tty, rows, cols),
            ShimRequest::Exec(request) => self.exec(core, id, request),
            ShimRequest::GuestFile(_) => core.respond(
                id,
                ShimResponse::error("guest file operations are for vm envs; the daemon reaches a container env's files itself"),
                true,
            ),
            other => {
                let refusal = ShimResponse::error(format!("unexpected request {other:?}"));
                core.respond(id, refusal, true)
            }
        }
    }

    fn on_frames(&mut self, core: &mut Core<Pid>, id: u64, pid: Pid) {
        while let Some(frame) = core.next_frame(id) {
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

    fn on_client_gone(&mut self, core: &mut Core<Pid>, _id: u64, pid: Pid) {
        // The client went away mid-stream: nobody will read the process'
        // output or send its input, so end it.
        if Some(pid) == self.init {
            let timeout = core.config.stop_timeout_ms;
            core.begin_stop(self, timeout);
        } else {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(proc) = self.procs.get_mut(&pid.as_raw()) {
            proc.conn = None;
        }
    }

    fn pause(&mut self, core: &mut Core<Pid>, pause: bool) -> ShimResponse {
        if self.init.is_none() {
            return ShimResponse::refused(Refusal::NotRunning, "the env is not running");
        }
        match (pause, core.cgroup.is_frozen()) {
            (true, true) => {
                return ShimResponse::refused(Refusal::AlreadyPaused, "the env is already paused");
            }
            (false, false) => {
                return ShimResponse::refused(Refusal::NotPaused, "the env is not paused");
            }
            _ => {}
        }
        let done = if pause {
            core.cgroup.freeze()
        } else {
            core.cgroup.thaw()
        };
        match done {
            Ok(()) => ShimResponse::ok(),
            Err(e) => ShimResponse::refused(Refusal::Failed, e.to_string()),
        }
    }

    fn hibernate(&mut self, core: &mut Core<Pid>, save: &Save) -> Result<(), String> {
        let Some(init) = self.init else {
            return Err("it is not running".into());
        };
        self.runner.can_hibernate()?;
        if core.config.attach {
            return Err("its command runs attached to a client (`verse run`), which a restore could not reconnect".into());
        }
        if self.procs.values().any(|p| !p.is_init) {
            return Err("`verse exec` sessions run in it (their stdio leads to clients a restore could not reconnect); end them first".into());
        }
        if core.stopping {
            return Err("it is stopping".into());
        }
        let output = self
            .procs
            .get(&init.as_raw())
            .and_then(|p| p.outputs.first())
            .map(|(_, file)| file);
        self.runner.checkpoint(core, Tree { init, output }, save)?;
        // The tree is gone; its processes now live only in the checkpoint.
        let _ = waitpid(init, None);
        self.procs.clear();
        self.init = None;
        core.teardown_cgroup();
        self.reap_remaining(core);
        Ok(())
    }

    fn stop(&mut self, core: &mut Core<Pid>, _timeout: Duration) -> Option<Duration> {
        let init = self.init?;
        // A frozen process cannot act on its stop signal: a paused env is
        // thawed first.
        if core.cgroup.is_frozen() {
            let _ = core.cgroup.thaw();
        }
        let _ = kill(init, Signal::SIGTERM);
        Some(Duration::ZERO)
    }

    fn kill(&mut self, core: &mut Core<Pid>) {
        let _ = core.cgroup.kill_all();
    }

    fn end(&mut self, core: &mut Core<Pid>) {
        // Pid namespace teardown kills what is left; the cgroup kill catches
        // anything that escaped the namespace's view.
        core.teardown_cgroup();
        self.reap_remaining(core);
        self.runner.cleanup(&core.config);
    }

    fn discard_writes(&self, config: &ShimConfig) -> Vec<PathBuf> {
        let mut trash = Vec::new();
        for dir in [config.upper(), config.work()] {
            trash.extend(super::event_loop::move_to_trash(&dir));
            recreate_owned(&dir, config.id_base);
        }
        trash
    }

    fn farewell(&self, _pid: Pid, exit_code: Option<i32>, error: Option<&str>) -> Option<Frame> {
        Some(match error {
            Some(message) => Frame::new(Kind::Error, message.as_bytes().to_vec()),
            None => Frame::exit(exit_code.unwrap_or(137)),
        })
    }

    fn release(&mut self) {
        // Now the env's mounts may go (see `held_mount_ns`).
        self.held_mount_ns = None;
    }
}

/// An exec's environment: the env's, `TERM` for a tty unless set, then the
/// request's own variables over both.
pub(crate) fn exec_env(
    base: &[(String, String)],
    tty: bool,
    extra: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    if tty && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    for (key, value) in extra {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
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

    fn split(self, is_init: bool, conn: u64) -> ([OwnedFd; 3], Proc) {
        let proc = Proc {
            is_init,
            conn: Some(conn),
            stdin: Some(self.parent_stdin),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            outputs: self.parent_outputs,
            pty_master: self.pty_master,
        };
        (self.child, proc)
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
pub(crate) fn console_pipe() -> std::io::Result<(File, OwnedFd)> {
    let (read, write) = std::io::pipe()?;
    let read = File::from(OwnedFd::from(read));
    set_nonblocking(&read);
    Ok((read, write.into()))
}

/// The last `lines` lines of what a failed start printed, newest first, for
/// its error message.
pub(crate) fn said_last(text: &str, lines: usize) -> String {
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.join(" | ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_exec_gets_term_for_a_tty_and_its_own_variables_win() {
        let base = vars(&[("PATH", "/bin"), ("LANG", "C")]);
        assert_eq!(
            exec_env(&base, true, vars(&[("LANG", "de")])),
            vars(&[("PATH", "/bin"), ("TERM", "xterm-256color"), ("LANG", "de")])
        );
        assert_eq!(exec_env(&base, false, Vec::new()), base);
        let with_term = vars(&[("TERM", "dumb")]);
        assert_eq!(exec_env(&with_term, true, Vec::new()), with_term);
    }

    #[test]
    fn a_failed_start_quotes_its_last_lines_newest_first() {
        assert_eq!(said_last("a\nb\nc\n", 2), "c | b");
        assert_eq!(said_last("", 5), "");
    }
}
