//! Mounting and unmounting: the identity the mount acts with, the FUSE
//! session, the end on a signal (lazy unmount), and the watchdog that
//! unmounts even when the mount process is killed outright, so no dead
//! mount ("Transport endpoint is not connected") is ever left behind.

use crate::FsError;
use crate::fs::VerseFs;
use crate::view::View;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use verse_api::{Client, Paths};

/// The type this filesystem shows in /proc/self/mountinfo (`fuse.verse`).
pub const FS_TYPE: &str = "fuse.verse";
/// The source this filesystem shows in /proc/self/mountinfo.
pub const FS_SOURCE: &str = "verse";

#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    pub dir: PathBuf,
    /// Act with this biscuit token's rights (over the TLS API) instead of root's.
    pub token: Option<PathBuf>,
    /// The TLS API, `https://HOST:PORT` (needed with a token).
    pub api: Option<String>,
    /// The PEM certificate that API's certificate is checked against.
    pub cacert: Option<PathBuf>,
    /// Let other uids in; each acts with its own token (see `uid_map`).
    pub allow_other: bool,
    /// Lines of `UID TOKEN_FILE`: the token each other uid acts with.
    pub uid_map: Option<PathBuf>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |source| FsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn remote(options: &MountOptions, token_file: &Path) -> Result<Client, FsError> {
    let (Some(api), Some(cacert)) = (&options.api, &options.cacert) else {
        return Err(FsError::Usage(
            "a token acts over the daemon's TLS API: give --api https://HOST:PORT and --cacert FILE \
             (the daemon's `--listen` address and certificate)"
                .into(),
        ));
    };
    let token = std::fs::read_to_string(token_file).map_err(io("reading the token", token_file))?;
    Client::remote(api, cacert, token.trim()).map_err(FsError::Api)
}

fn uid_map(options: &MountOptions) -> Result<Vec<(u32, PathBuf)>, FsError> {
    let Some(file) = &options.uid_map else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(file).map_err(io("reading the uid map", file))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            FsError::Usage(format!(
                "{}:{}: `{line}`: write `UID TOKEN_FILE`",
                file.display(),
                n + 1
            ))
        };
        let (uid, token) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let uid: u32 = uid.parse().map_err(|_| bad())?;
        out.push((uid, PathBuf::from(token.trim())));
    }
    Ok(out)
}

/// Whether a Verse filesystem is mounted at `dir`.
pub fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-");
        // `fuse verse` (mounted directly) or `fuse.verse verse` (through fusermount).
        fields.get(4).is_some_and(|m| Path::new(m) == dir)
            && sep.is_some_and(|i| {
                fields
                    .get(i + 1)
                    .is_some_and(|t| *t == "fuse" || *t == FS_TYPE)
                    && fields.get(i + 2) == Some(&FS_SOURCE)
            })
    })
}

/// Detaches the mount at `dir` (MNT_DETACH: gone from the tree at once,
/// torn down when the last file open in it closes).
pub fn lazy_unmount(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a valid C string; umount2 reads it only.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The watchdog (`verse fs __unmount-on-exit DIR`, stdin a pipe the mount
/// process holds): when the pipe closes, however the mount process ended,
/// it detaches the mount if it is still there.
pub fn watchdog(dir: &Path) -> ! {
    // SAFETY: setting the disposition of two signals to "ignore": no handler runs.
    unsafe {
        // Ctrl-C in the mount's terminal reaches the watchdog's group too: it
        // must outlive the mount process to clean up after it.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a buffer we own, of its length.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
        {
            break;
        }
    }
    if is_mounted(dir) {
        let _ = lazy_unmount(dir);
    }
    std::process::exit(0)
}

fn start_watchdog(dir: &Path) -> Result<std::fs::File, FsError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors we pass; both are owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(FsError::Usage(format!(
            "making the watchdog's pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: fresh descriptors from pipe2, owned by nobody else.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let exe = std::env::current_exe()
        .map_err(io("finding the verse binary", Path::new("/proc/self/exe")))?;
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .args(["fs", "__unmount-on-exit"])
        .arg(dir)
        .stdin(read)
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io("starting the unmount watchdog for", dir))?;
    Ok(write)
}

/// Mounts the control filesystem at `options.dir` and serves it until it
/// is unmounted (`umount DIR`) or this process gets SIGINT, SIGTERM or SIGHUP.
pub fn mount(paths: &Paths, options: &MountOptions) -> Result<(), FsError> {
    let dir = std::fs::canonicalize(&options.dir).map_err(io("the mount point", &options.dir))?;
    if !dir.is_dir() {
        return Err(FsError::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if is_mounted(&dir) {
        return Err(FsError::Usage(format!(
            "a Verse filesystem is already mounted at {} (`umount {}` ends it)",
            dir.display(),
            dir.display()
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("verse-fs")
        .enable_all()
        .build()
        .map_err(io("starting the async runtime for", &dir))?;
    let (client, identity) = match &options.token {
        Some(token) => (
            remote(options, token)?,
            format!("the token in {} (its rights only)", token.display()),
        ),
        None => (
            Client::new(paths),
            "root, over the local socket (every right)".to_string(),
        ),
    };
    let main = View::new(client, identity, rt.handle().clone());
    main.connect()?;
    let mut by_uid = HashMap::new();
    for (uid, token) in uid_map(options)? {
        let view = View::new(
            remote(options, &token)?,
            format!("uid {uid}: the token in {}", token.display()),
            rt.handle().clone(),
        );
        view.start();
        by_uid.insert(uid, view);
    }
    if !by_uid.is_empty() && !options.allow_other {
        return Err(FsError::Usage(
            "--uid-map gives other uids tokens, which only matters with --allow-other".into(),
        ));
    }
    // inotify watchers of `state` hear of a change when the mount writes to
    // the file through the kernel (the write itself is dropped).
    let state_dir = dir.join("envs");
    let (touch_tx, touch_rx) = std::sync::mpsc::channel::<String>();
    main.set_on_change(Box::new(move |env: &str| {
        let _ = touch_tx.send(env.to_string());
    }));
    std::thread::Builder::new()
        .name("verse-fs-touch".into())
        .spawn(move || {
            // SAFETY: gettid takes no arguments and cannot fail.
            let tid = unsafe { libc::gettid() } as u32;
            crate::fs::TOUCHER.store(tid, std::sync::atomic::Ordering::Relaxed);
            while let Ok(env) = touch_rx.recv() {
                let path = state_dir.join(&env).join("state");
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
                    let _ = std::io::Write::write_all(&mut f, b"\n");
                }
            }
        })
        .map_err(io("starting a thread for", &dir))?;

    let fs = VerseFs::new(
        Arc::clone(&main),
        by_uid,
        options.allow_other,
        rt.handle().clone(),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(FS_SOURCE.into()),
        fuser::MountOption::Subtype("verse".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoExec,
    ];
    if options.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(4);
    // Handlers first: a signal that comes as soon as the mount is up is not lost.
    let (mut int, mut term, mut hup) = rt
        .block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ))
        })
        .map_err(io("handling signals for", &dir))?;
    let watchdog = start_watchdog(&dir)?;
    let session = fuser::Session::new(fs, &dir, &config).map_err(io("mounting at", &dir))?;
    tracing::info!("mounted at {}", dir.display());

    enum End {
        Session(std::io::Result<()>),
        Signal(&'static str),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let session_tx = tx.clone();
    std::thread::Builder::new()
        .name("verse-fs-session".into())
        .spawn(move || {
            let _ = session_tx.send(End::Session(session.run()));
        })
        .map_err(io("starting the session for", &dir))?;
    rt.spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        let _ = tx.send(End::Signal(name));
    });
    let result = match rx.recv() {
        Ok(End::Session(result)) => result.map_err(io("serving", &dir)),
        Ok(End::Signal(name)) => {
            tracing::info!("{name}: unmounting {}", dir.display());
            if let Err(e) = lazy_unmount(&dir) {
                tracing::warn!("unmounting {}: {e}", dir.display());
            }
            // Files still open in the detached tree keep the session a moment;
            // they see the end when this process exits.
            let _ = rx.recv_timeout(Duration::from_secs(2));
            Ok(())
        }
        Err(_) => Ok(()),
    };
    drop(watchdog);
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}
