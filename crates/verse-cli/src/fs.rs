//! `verse fs mount`: the control filesystem (crates/verse-fs), in the
//! foreground or in the background, and the mount the daemon makes itself
//! when `$VERSE_ROOT/etc/verse/daemon.toml` says `[fs] mount = true`.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use verse_api::Paths;

#[derive(Subcommand)]
pub enum FsCommand {
    /// Mount every env, image and generation as files at DIR (see docs/fs.md);
    /// `umount DIR`, Ctrl-C or SIGTERM ends it.
    #[command(
        after_help = "Examples:\n  verse fs mount /mnt/verse && cat /mnt/verse/envs/*/state\n  echo pause > /mnt/verse/envs/web/ctl\n  verse fs mount --token reader.token --api https://127.0.0.1:7443 --cacert tls.crt /mnt/reader"
    )]
    Mount(MountArgs),
    /// Internal: detaches DIR when its mount process ends, however it ends.
    #[command(name = "__unmount-on-exit", hide = true)]
    UnmountOnExit { dir: PathBuf },
}

#[derive(clap::Args)]
pub struct MountArgs {
    dir: PathBuf,
    /// Act with this biscuit token's rights only (over the TLS API) instead of root's.
    #[arg(long, value_name = "FILE")]
    token: Option<PathBuf>,
    /// The daemon's TLS API (its `--listen`), for --token and --uid-map.
    #[arg(long, env = "VERSE_API", value_name = "https://HOST:PORT")]
    api: Option<String>,
    /// The PEM certificate the TLS API's certificate is checked against.
    #[arg(long, env = "VERSE_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Let other uids use the mount; each acts with its token from --uid-map
    /// (uids without one are refused).
    #[arg(long)]
    allow_other: bool,
    /// Lines of `UID TOKEN_FILE`: the token each other uid acts with.
    #[arg(long, value_name = "FILE", requires = "allow_other")]
    uid_map: Option<PathBuf>,
    /// Run in the background; return once the mount is up.
    #[arg(long)]
    daemon: bool,
}

pub fn run(command: FsCommand, paths: &Paths) -> Result<ExitCode> {
    match command {
        FsCommand::UnmountOnExit { dir } => verse_fs::watchdog(&dir),
        FsCommand::Mount(args) => {
            if args.daemon {
                let argv: Vec<String> = std::env::args()
                    .skip(1)
                    .filter(|a| a != "--daemon")
                    .collect();
                return background(paths, &args.dir, &argv);
            }
            crate::commands::init_logging("info,fuser=error");
            let options = verse_fs::MountOptions {
                dir: args.dir,
                token: args.token,
                api: args.api,
                cacert: args.cacert,
                allow_other: args.allow_other,
                uid_map: args.uid_map,
            };
            verse_fs::mount(paths, &options)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where a background mount's messages go.
fn log_path(paths: &Paths) -> PathBuf {
    paths.run_dir().join("fs.log")
}

/// Starts `verse ARGS` (the same mount, without `--daemon`) in a session of
/// its own, and waits until the mount is up, or says why it is not.
fn background(paths: &Paths, dir: &Path, args: &[String]) -> Result<ExitCode> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("the mount point {}", dir.display()))?;
    let log = log_path(paths);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let start = out.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("finding the verse binary")?;
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the mount process")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if verse_fs::is_mounted(&dir) {
            println!(
                "mounted at {} (pid {}; `umount {}` ends it; messages in {})",
                dir.display(),
                child.id(),
                dir.display(),
                log.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read(&log).unwrap_or_default();
            let said =
                String::from_utf8_lossy(&text[(start as usize).min(text.len())..]).into_owned();
            bail!(
                "the mount process ended ({status}) without mounting:\n{}",
                said.trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the mount at {} did not come up in 15 s; see {}",
                dir.display(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `[fs] mount = true` in daemon.toml: once the daemon's socket answers,
/// mount the control filesystem at `$VERSE_ROOT/run/verse/fs` in the
/// background. That mount is a process of its own: it outlives a daemon
/// restart (it reconnects), and a restarted daemon finds it still there.
pub fn mount_for_daemon(paths: &Paths) -> Result<()> {
    let config = verse_fs::DaemonConfig::load(&verse_fs::DaemonConfig::path(paths))?;
    if !config.fs.mount {
        return Ok(());
    }
    let paths = paths.clone();
    std::thread::spawn(move || {
        let dir = verse_fs::daemon_mount_point(&paths);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(paths.socket()).is_err() {
            if Instant::now() > deadline {
                tracing::error!("[fs] mount: the API socket did not come up; not mounting");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if verse_fs::is_mounted(&dir) {
            tracing::info!("[fs] mount: {} is already mounted", dir.display());
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!("[fs] mount: creating {}: {e}", dir.display());
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        match std::process::Command::new(exe)
            .args(["fs", "mount", "--daemon"])
            .arg(&dir)
            .env("VERSE_ROOT", &paths.root)
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                tracing::info!("[fs] mount: the control filesystem is at {}", dir.display())
            }
            Ok(out) => tracing::error!(
                "[fs] mount at {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => tracing::error!("[fs] mount: starting `verse fs mount`: {e}"),
        }
    });
    Ok(())
}
