//! Hibernate and resume of container envs with CRIU, run by the env's shim.
//!
//! Hibernate: `criu dump` of the env's process tree (its PID 1 and everything
//! under it) into `checkpoint/` of the env dir. CRIU kills the tree only once
//! the dump is complete; when it fails, it lets the tree run on, so a refused
//! hibernate loses nothing. The env's stdio lies outside the env's mount
//! namespace: `/dev/null` (declared `--external`) and the pipe whose other end
//! the shim drains into console.log. On resume both are handed back to the
//! restored processes with `--inherit-fd`: the same /dev/null, and the write
//! end of the new shim's pipe in place of the old one. (Checkpoints made
//! before the pipe existed name console.log itself; those get the log file.)
//!
//! Resume: a new shim forks a helper that mounts the env's overlay in a mount
//! namespace of its own, joins the env's cgroup and execs `criu restore
//! --restore-detached --restore-sibling`: the restored PID 1 is created as a
//! sibling of criu, that is a child of the shim, which reaps and supervises it
//! like one it spawned.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::config::ShimConfig;

/// For an env with a network: CRIU keeps the network namespace but not what is
/// in it (its veth's peer is on the host, beyond what a restore in the env's
/// user namespace may create); the shim wires it again after the restore as at
/// a start. Established TCP connections are restored closed (their peers have
/// moved on by then anyway); listening sockets come back as they were.
const NETWORKED: &[&str] = &["--empty-ns", "net", "--tcp-close"];

/// Where a hibernated env's images live (the marker `complete` is written last).
pub fn checkpoint_dir(env_dir: &Path) -> PathBuf {
    env_dir.join("checkpoint")
}

/// Written into the checkpoint: the keys CRIU knows the external files by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// `pipe:[INO]` of the env's output pipe (its stdout and stderr), or
    /// `file[MNT:INO]` of console.log in older checkpoints.
    pub log_key: String,
    /// `file[MNT:INO]` of /dev/null (the env's stdin).
    pub null_key: String,
    /// criu that made it.
    pub criu: PathBuf,
    pub dump_ms: u64,
}

/// CRIU's key for an open file: mount id and inode, in hex.
fn file_key(file: &File) -> Result<String, String> {
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd()))
        .map_err(|e| format!("reading fdinfo: {e}"))?;
    let mnt_id: u64 = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no mnt_id in fdinfo")?;
    let ino = file.metadata().map_err(|e| e.to_string())?.ino();
    Ok(format!("file[{mnt_id:x}:{ino:x}]"))
}

/// The errors of a CRIU log, for the user (CRIU logs a few harmless "Error"
/// lines about tools it probes, e.g. iptables, and its own rlimit).
pub fn log_errors(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("Error (") || l.starts_with("Error"))
        .filter(|l| {
            !l.contains("FAILED")
                && !l.contains("tables")
                && !l.contains("RLIMIT_NOFILE")
                && !l.contains("already assigned")
                && !l.contains("cgroupd")
        })
        .collect();
    if errors.is_empty() {
        format!("criu failed; see {}", log.display())
    } else {
        errors.join("; ")
    }
}

/// CRIU's key for a pipe: its inode (both ends share it).
fn pipe_key(end: &File) -> Result<String, String> {
    let ino = end.metadata().map_err(|e| e.to_string())?.ino();
    Ok(format!("pipe:[{ino}]"))
}

/// Checkpoints the tree of `init` into `checkpoint/` and lets CRIU kill it.
/// `output` is the shim's (read) end of the env's output pipe. On failure the
/// tree keeps running and nothing is left on disk.
pub fn dump(
    config: &ShimConfig,
    criu: &Path,
    init: Pid,
    output: &File,
    freeze_timeout: Option<std::time::Duration>,
) -> Result<(), String> {
    let env_dir = &config.env_dir;
    let tmp = env_dir.join("checkpoint.try");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let result = dump_into(
        criu,
        init,
        output,
        &tmp,
        freeze_timeout,
        config.net.is_some(),
    );
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    let dir = checkpoint_dir(env_dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    File::create(dir.join("complete")).map_err(|e| format!("marking the checkpoint: {e}"))?;
    Ok(())
}

fn dump_into(
    criu: &Path,
    init: Pid,
    output: &File,
    dir: &Path,
    freeze_timeout: Option<std::time::Duration>,
    networked: bool,
) -> Result<(), String> {
    // CRIU's own limit on stopping the tree (whole seconds): past it, CRIU
    // gives up and lets every process go where it was. Stopping CRIU from
    // outside instead could leave its parasite code in a process.
    let freeze: Vec<String> = freeze_timeout
        .map(|t| vec!["--timeout".into(), t.as_secs().max(1).to_string()])
        .unwrap_or_default();
    let null = File::open("/dev/null").map_err(|e| e.to_string())?;
    let meta = CheckpointMeta {
        log_key: pipe_key(output)?,
        null_key: file_key(&null)?,
        criu: criu.to_path_buf(),
        dump_ms: 0,
    };
    let started = std::time::Instant::now();
    let out = std::process::Command::new(criu)
        .arg("dump")
        .arg("--tree")
        .arg(init.as_raw().to_string())
        .arg("--images-dir")
        .arg(dir)
        .args(common_args())
        // A pipe with one end outside the tree needs no flag at dump time
        // (its buffered bytes are saved); only the restore names a new end.
        .args(["--external", &meta.null_key])
        .args(if networked { NETWORKED } else { &[] })
        .args(["--network-lock", "skip", "--log-file", "dump.log", "-v2"])
        .args(&freeze)
        .output()
        .map_err(|e| format!("running {}: {e}", criu.display()))?;
    if !out.status.success() {
        return Err(log_errors(&dir.join("dump.log")));
    }
    let meta = CheckpointMeta {
        dump_ms: started.elapsed().as_millis() as u64,
        ..meta
    };
    std::fs::write(
        dir.join("verse.json"),
        serde_json::to_vec(&meta).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("writing the checkpoint's metadata: {e}"))
}

/// Options shared by dump and restore: the env's bind mounts of host paths
/// (device nodes, volumes) are external mounts found again by path; the cgroup
/// is the shim's business.
fn common_args() -> [&'static str; 5] {
    [
        "--ext-mount-map",
        "auto",
        "--enable-external-sharing",
        "--enable-external-masters",
        "--manage-cgroups=ignore",
    ]
}

/// Restores the checkpoint as a child of the calling (single-threaded) shim,
/// inside `cgroup`, the env's output going to `output` (the write end of the
/// new shim's pipe; `log_file` for checkpoints that named console.log).
/// Returns the restored PID 1's host pid.
pub fn restore(
    config: &ShimConfig,
    criu: &Path,
    cgroup: &verse_sandbox::Cgroup,
    output: OwnedFd,
    log_file: &File,
) -> Result<Pid, String> {
    let dir = checkpoint_dir(&config.env_dir);
    let meta: CheckpointMeta = std::fs::read(dir.join("verse.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{} holds no complete checkpoint", dir.display()))?;
    let pidfile = dir.join("restored.pid");
    let _ = std::fs::remove_file(&pidfile);
    let null: OwnedFd = File::open("/dev/null").map_err(|e| e.to_string())?.into();
    let log: OwnedFd = if meta.log_key.starts_with("pipe:") {
        output
    } else {
        // Restored processes reopen console.log as the env's root: it must be theirs.
        std::os::unix::fs::fchown(log_file, Some(config.id_base), Some(config.id_base))
            .map_err(|e| format!("chown console.log: {e}"))?;
        log_file.try_clone().map_err(|e| e.to_string())?.into()
    };
    let overlay = format!("{},userxattr", config.overlay_options());
    let root = config.mountpoint();
    let mut argv: Vec<String> = vec![criu.display().to_string(), "restore".into()];
    argv.extend(["--images-dir".into(), dir.display().to_string()]);
    argv.extend(["--root".into(), root.display().to_string()]);
    argv.extend(common_args().iter().map(|s| s.to_string()));
    argv.extend(["--restore-detached".into(), "--restore-sibling".into()]);
    argv.extend(["--pidfile".into(), pidfile.display().to_string()]);
    argv.extend(["--inherit-fd".into(), format!("fd[3]:{}", meta.log_key)]);
    argv.extend(["--inherit-fd".into(), format!("fd[4]:{}", meta.null_key)]);
    let inherited = vec![log, null];
    if config.net.is_some() {
        argv.extend(NETWORKED.iter().map(|s| s.to_string()));
    }
    argv.extend(["--log-file".into(), "restore.log".into(), "-v2".into()]);
    let argv: Vec<CString> = argv
        .into_iter()
        .map(|a| CString::new(a).map_err(|_| "NUL in a criu argument".to_string()))
        .collect::<Result<_, _>>()?;
    let overlay = CString::new(overlay).map_err(|_| "NUL in overlay options")?;
    // An env with a range of its own sees its layers through idmapped mounts, as at a
    // start (see verse_sandbox::Rootfs::lower_idmap); the helper puts them over the
    // checkouts' paths in its private mount namespace before it mounts the overlay.
    let layer_ns = config
        .lower_idmap()
        .map(|map| verse_sandbox::layer_userns(&map))
        .transpose()
        .map_err(|e| format!("preparing the env's layers: {e}"))?;
    let idmapped: Vec<&Path> = if layer_ns.is_some() {
        let mut seen = std::collections::HashSet::new();
        config
            .lowers
            .iter()
            .map(PathBuf::as_path)
            .filter(|p| seen.insert(*p))
            .collect()
    } else {
        Vec::new()
    };

    // SAFETY: the shim is single-threaded, so the child may allocate; it only
    // makes syscalls and execs (or _exits).
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            let layers = layer_ns.as_ref().map(|ns| (ns, idmapped.as_slice()));
            let code = restore_child(cgroup, &root, layers, &overlay, &inherited, &argv);
            // SAFETY: _exit skips atexit handlers, which belong to the shim.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(inherited);
            drop(layer_ns);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let errors = || log_errors(&dir.join("restore.log"));
            match status {
                Ok(WaitStatus::Exited(_, 0)) => {}
                Ok(WaitStatus::Exited(_, code @ 100..=106)) => {
                    let step = [
                        "unshare a mount namespace",
                        "make / private",
                        "mount the env's overlay",
                        "join the env's cgroup",
                        "pass the env's stdio",
                        "exec criu",
                        "idmap the env's image layers",
                    ][(code - 100) as usize];
                    return Err(format!("preparing the restore: could not {step}"));
                }
                _ => return Err(errors()),
            }
            let pid: i32 = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| format!("criu left no pid: {}", errors()))?;
            Ok(Pid::from_raw(pid))
        }
    }
}

/// The restore helper: private mount namespace with the env's overlay (its
/// layers idmapped when `layers` says so) at its mountpoint (CRIU's `--root`; the host never sees it), the env's cgroup, the
/// inherited descriptors at 3, 4 (and 5, a kept network namespace), then criu. Returns an exit code only
/// on failure.
fn restore_child(
    cgroup: &verse_sandbox::Cgroup,
    root: &Path,
    layers: Option<(&OwnedFd, &[&Path])>,
    overlay: &CString,
    inherited: &[OwnedFd],
    argv: &[CString],
) -> i32 {
    use nix::mount::{MsFlags, mount};
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
        return 100;
    }
    // Prevents the overlay mount from propagating to the host's namespace.
    if mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .is_err()
    {
        return 101;
    }
    // Each layer's idmapped clone over its checkout, seen only in this namespace (and by
    // the overlay mounted next, which keeps private clones of its layers).
    if let Some((ns, paths)) = layers {
        for path in paths {
            let attached = verse_sandbox::idmapped_tree(path, ns)
                .and_then(|tree| verse_sandbox::attach_tree(&tree, path));
            if attached.is_err() {
                return 106;
            }
        }
    }
    if mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(overlay.as_c_str()),
    )
    .is_err()
    {
        return 102;
    }
    // The restored tasks are born from criu, so they start in its cgroup.
    if cgroup.add(nix::unistd::getpid()).is_err() {
        return 103;
    }
    // First above 9, so that no source is clobbered by another's dup2.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on descriptors we hold returns new ones or -1.
    let high: Vec<i32> = inherited
        .iter()
        .map(|fd| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) })
        .collect();
    for (fd, target) in high.into_iter().zip(3..) {
        // SAFETY: dup2 onto 3, 4, ...; the copies are not CLOEXEC, so criu inherits them.
        if fd < 0 || unsafe { libc::dup2(fd, target) } < 0 {
            return 104;
        }
    }
    let _ = nix::unistd::execv(&argv[0], argv);
    105
}
