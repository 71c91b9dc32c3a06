//! One build step: a command run as root in a container of Verse's own backend (verse-sandbox)
//! over the image's layers so far; what it writes lands in a fresh overlay upper dir, which
//! the builder then imports as the step's layer.
//!
//! `verse_sandbox::spawn` must be called from a single-threaded process, so the builder (which
//! runs inside the multi-threaded daemon) starts `verse __build-step CONFIG` for each step; that
//! process is [`run_step_main`].

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::ImageError;

/// What `verse __build-step` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepConfig {
    /// Layer checkouts, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Empty dir owned by `id_base`: receives every change.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mountpoint: PathBuf,
    /// Run with `/bin/sh -c`.
    pub script: String,
    pub env: Vec<(String, String)>,
    pub id_base: u32,
    /// Host network (the package step only); see `ContainerConfig::share_host_network`.
    pub share_host_network: bool,
    /// Host files bind-mounted read-only (e.g. /etc/resolv.conf for apt).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Cgroup path relative to each hierarchy root.
    pub cgroup: String,
}

/// Entry point of `verse __build-step CONFIG`: runs the step, exits with its status
/// (128 + signal when killed, 125 when the container could not start).
pub fn run_step_main(config: &Path) -> ! {
    let code = match run_in_container(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("verse build step: {e}");
            125
        }
    };
    std::process::exit(code)
}

fn run_in_container(config: &Path) -> Result<i32, String> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use verse_sandbox as sandbox;
    let text = fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let c: StepConfig = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let cgroup = sandbox::Cgroup::create(&c.cgroup, &sandbox::Limits::default())
        .map_err(|e| e.to_string())?;
    let map = sandbox::IdMap {
        container_id: 0,
        host_id: c.id_base,
        size: 65536,
    };
    let fd = |f: std::io::Result<fs::File>| f.map(std::os::fd::OwnedFd::from);
    let container = sandbox::ContainerConfig {
        rootfs: sandbox::Rootfs {
            lowers: c.lowers.clone(),
            // Build steps run on ID_BASE checkouts as ID_BASE: no translation.
            lower_idmap: None,
            upper: c.upper.clone(),
            work: c.work.clone(),
            mountpoint: c.mountpoint.clone(),
        },
        volumes: c
            .binds
            .iter()
            .map(|(source, target)| sandbox::BindMount {
                source: source.clone(),
                target: target.clone(),
                readonly: true,
            })
            .collect(),
        hostname: "verse-build".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), c.script.clone()],
        env: c.env.clone(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        uid_map: map,
        gid_map: map,
        cgroup: cgroup.clone(),
        stdin: fd(fs::File::open("/dev/null")).map_err(|e| e.to_string())?,
        stdout: std::io::stdout().as_fd_owned()?,
        // One stream, so a failing step shows its messages in order.
        stderr: std::io::stdout().as_fd_owned()?,
        share_host_network: c.share_host_network,
        shm_size: None,
    };
    let result = sandbox::spawn(container).map_err(|e| e.to_string());
    let code = match result {
        Ok(pid) => loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => break Ok(128 + sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => break Err(format!("waiting for the step: {e}")),
            }
        },
        Err(e) => Err(e),
    };
    // PID 1 is gone, so the kernel killed the rest of its pid namespace; sweep the cgroup
    // anyway (a process may be mid-exit) and remove it.
    let _ = cgroup.kill_all();
    let _ = cgroup.remove();
    code
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> Result<std::os::fd::OwnedFd, String>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> Result<std::os::fd::OwnedFd, String> {
        self.as_fd().try_clone_to_owned().map_err(|e| e.to_string())
    }
}

/// How many lines of a failed step's output its error keeps.
const TAIL_LINES: usize = 40;

/// Runs `exe __build-step config`, passing each output line to `line`. A non-zero exit is
/// [`ImageError::StepFailed`] with the output's tail.
pub fn run_step(
    exe: &Path,
    config: &StepConfig,
    config_path: &Path,
    what: &str,
    line: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let json = serde_json::to_vec(config).expect("StepConfig serialises");
    fs::write(config_path, json).map_err(|e| ImageError::io(config_path, e))?;
    let mut child = Command::new(exe)
        .arg("__build-step")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::io(exe, e))?;
    // stderr on its own thread so neither pipe fills while the other is read.
    let mut stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let stdout = child.stdout.take().expect("piped");
    for l in BufReader::new(stdout).split(b'\n') {
        let Ok(l) = l else { break };
        let l = String::from_utf8_lossy(&l).into_owned();
        line(&l);
        tail.push_back(l);
        if tail.len() > TAIL_LINES {
            tail.pop_front();
        }
    }
    let err = err_thread.join().unwrap_or_default();
    for l in String::from_utf8_lossy(&err).lines() {
        line(l);
        tail.push_back(l.to_string());
        if tail.len() > TAIL_LINES {
            tail.pop_front();
        }
    }
    let status = child.wait().map_err(|e| ImageError::io(exe, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(ImageError::StepFailed {
            step: what.to_string(),
            status: status.code().unwrap_or(-1),
            output: tail.into_iter().collect::<Vec<_>>().join("\n"),
        })
    }
}
