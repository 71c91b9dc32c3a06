//! The container backend's part of the shim: the env's init is forked into
//! new namespaces on an overlay of its layers ([`verse_sandbox`]), execs join
//! them, and hibernate and resume go through CRIU ([`crate::criu`]).

use super::event_loop::{Core, Save};
use super::procs::{Detached, Runner, Tree, console_pipe, said_last};
use crate::config::ShimConfig;
use crate::console_log::ConsoleLog;
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;
use verse_sandbox as sandbox;

pub(crate) struct Container;

impl Runner for Container {
    const PTY_IN_ENV: bool = true;
    const LOG_CAP_TICK: Option<Duration> = None;
    const MEMORY_OVERHEAD: u64 = 0;

    fn start_detached(&mut self, core: &Core<Pid>, log: &mut ConsoleLog) -> Detached {
        if let Some(criu) = &core.config.restore {
            return restore(&core.config, criu, &core.cgroup, log);
        }
        // PID 1's stdout and stderr: one pipe (so their lines interleave as
        // written) that the shim drains into the capped console.log.
        let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
        let (mut output, output_write) = console_pipe().map_err(|e| e.to_string())?;
        let stderr = output_write.try_clone().map_err(|e| e.to_string())?;
        match self.start(core, [stdin.into(), output_write, stderr]) {
            Ok(pid) => Ok((pid, Some(output))),
            Err(e) => {
                // What the env said before failing explains the failure.
                let mut said = Vec::new();
                let _ = output.read_to_end(&mut said);
                let _ = log.write(&said);
                let tail = said_last(&String::from_utf8_lossy(&said), 5);
                if tail.is_empty() {
                    return Err(e);
                }
                Err(format!("{e}: {tail}"))
            }
        }
    }

    fn start(&mut self, core: &Core<Pid>, stdio: [OwnedFd; 3]) -> Result<Pid, String> {
        let c = &core.config;
        let [stdin, stdout, stderr] = stdio;
        let ids = sandbox::IdMap {
            container_id: 0,
            host_id: c.id_base,
            size: crate::config::ID_RANGE,
        };
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
            uid_map: ids,
            gid_map: ids,
            cgroup: core.cgroup.clone(),
            stdin,
            stdout,
            stderr,
            share_host_network: false,
            shm_size: c.shm,
        };
        // The network is wired from outside between clone and the env's first step, so its
        // command never runs without the policy's interface in place.
        sandbox::spawn_with(container, |pid| match &c.net {
            Some(net) => verse_net::attach(pid.as_raw(), net)
                .map_err(|e| format!("connecting the env to its network: {e}")),
            None => Ok(()),
        })
        .map_err(|e| e.to_string())
    }

    fn exec(&self, core: &Core<Pid>, init: Pid, exec: sandbox::ExecConfig) -> Result<Pid, String> {
        sandbox::exec(init, &core.cgroup, exec).map_err(|e| e.to_string())
    }

    fn checkpoint(&mut self, core: &Core<Pid>, tree: Tree<'_>, save: &Save) -> Result<(), String> {
        if let Some(reason) = outside_tree(&core.cgroup, tree.init) {
            return Err(reason);
        }
        let Some(output) = tree.output else {
            return Err("the env's output pipe is gone".into());
        };
        let Some(criu) = &save.criu else {
            return Err("no CRIU was given to checkpoint it with".into());
        };
        // On failure CRIU resumed the tree: the env runs on untouched.
        crate::criu::dump(&core.config, criu, tree.init, output, save.freeze_timeout)
    }
}

/// Resume: the env's processes restored from `checkpoint/` by `criu`, as
/// children of this shim.
fn restore(
    config: &ShimConfig,
    criu: &Path,
    cgroup: &sandbox::Cgroup,
    log: &ConsoleLog,
) -> Result<(Pid, Option<File>), String> {
    let (output, output_write) = console_pipe().map_err(|e| e.to_string())?;
    let pid = crate::criu::restore(config, criu, cgroup, output_write, log.file())
        .map_err(|e| format!("resuming from its checkpoint: {e}"))?;
    // The processes are back: the checkpoint is spent.
    let _ = std::fs::remove_dir_all(crate::criu::checkpoint_dir(&config.env_dir));
    // CRIU restored the network namespace empty: the env's veth
    // is wired again as at a start (the host's rules name it).
    if let Some(net) = &config.net
        && let Err(e) = verse_net::attach(pid.as_raw(), net)
    {
        tracing::warn!("wiring {} after the restore: {e}", net.host_ifname);
    }
    Ok((pid, Some(output)))
}

/// A process of the env that is not under its PID 1 (left behind by a `verse
/// exec`, re-parented to the shim): CRIU checkpoints one tree, and would
/// leave such a process out of the env's pid namespace it must capture whole.
fn outside_tree(cgroup: &sandbox::Cgroup, init: Pid) -> Option<String> {
    let parent = |pid: i32| -> Option<i32> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
    };
    for pid in cgroup.procs() {
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
