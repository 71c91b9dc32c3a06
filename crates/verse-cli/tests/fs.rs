//! The control filesystem as a user meets it: a real FUSE mount (`verse fs
//! mount`) of a real daemon, driven with plain file operations from a
//! shell, checked against the CLI, the cgroup files and /proc/self/mountinfo.

mod common;
use common::*;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SPEC: &str = r#"
[env.web]
image = "busybox"
memory = "256MiB"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"]

[env.db]
image = "busybox"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"#;

/// /dev/fuse is there (skips loudly, fails under CI=true).
fn fuse_usable() -> bool {
    if !can_run() {
        return false;
    }
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and this host has no /dev/fuse");
    }
    eprintln!("\n!!! SKIPPED: no /dev/fuse (modprobe fuse) !!!\n");
    false
}

fn mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
}

fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A foreground `verse fs mount DIR ARGS`, ended (SIGTERM) when dropped.
struct Mount {
    dir: PathBuf,
    child: Option<Child>,
}

impl Mount {
    fn new(verse: &Verse, args: &[&str]) -> Mount {
        let dir = verse.root().join(format!("mnt-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(verse.root().join("fs-mount.log")).unwrap();
        let child = verse
            .command(&["fs", "mount", dir.to_str().unwrap()])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut mount = Mount {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !mounted(&mount.dir) {
            if let Some(status) = mount.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "verse fs mount ended ({status}): {}",
                    std::fs::read_to_string(verse.root().join("fs-mount.log")).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "the mount did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        mount
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// What an `events` file holds now: read with O_NONBLOCK until EAGAIN
    /// (a plain read waits for the next event).
    fn read_available(&self, rel: &str) -> String {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path(rel))
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading {rel}: {e}"),
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// `sh -c "echo WORDS > FILE"` as a user types it: (success, stderr).
    fn echo(&self, words: &str, rel: &str) -> (bool, String) {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo {words} > {}", self.path(rel).display()))
            .output()
            .unwrap();
        (out.status.success(), stderr(&out))
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        // SAFETY: a signal to our own child, by its pid.
        unsafe { libc::kill(self.pid(), sig) };
        self.child.take().unwrap().wait().unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
        }
        if mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn started() -> Verse {
    let verse = Verse::start();
    verse.apply(SPEC);
    wait_for("web to run", 20, || verse.env("web")["state"] == "running");
    verse
}

fn state(mount: &Mount, env: &str) -> String {
    mount.read(&format!("envs/{env}/state")).trim().to_string()
}

#[test]
fn state_follows_up_down_and_ctl_commands_act_like_the_cli() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let mut envs: Vec<String> = std::fs::read_dir(mount.path("envs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    envs.sort();
    assert_eq!(envs, ["db", "web"]);
    assert_eq!(state(&mount, "web"), "running");

    verse.ok(&["down", "web"]);
    wait_for("state to say stopped", 5, || {
        state(&mount, "web") == "stopped"
    });
    verse.ok(&["up", "web"]);
    wait_for("state to say running", 5, || {
        state(&mount, "web") == "running"
    });

    let (ok, err) = mount.echo("pause", "envs/web/ctl");
    assert!(ok, "echo pause > ctl failed: {err}");
    // The write returns once the daemon has done it: the next read says so.
    assert_eq!(state(&mount, "web"), "paused");
    assert_eq!(verse.env("web")["state"], "paused");
    let (ok, err) = mount.echo("unpause", "envs/web/ctl");
    assert!(ok, "{err}");
    assert_eq!(verse.env("web")["state"], "running");
    // Evented like the CLI's pause: the env's events file has both.
    let events = mount.read_available("events");
    assert!(
        events.contains("\"kind\":\"paused\"") && events.contains("\"kind\":\"unpaused\""),
        "{events}"
    );

    // Snapshots: made through ctl, listed, removed with rm.
    assert!(mount.echo("snapshot before-change", "envs/web/ctl").0);
    let listed: Vec<String> = std::fs::read_dir(mount.path("envs/web/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, ["s1"]);
    assert!(
        mount
            .read("envs/web/snapshots/s1")
            .contains("before-change")
    );
    std::fs::remove_file(mount.path("envs/web/snapshots/s1")).unwrap();
    assert!(verse.ok(&["snapshots", "web", "--json"]).trim() == "[]");

    // The rest of the tree answers with what the CLI shows.
    assert!(mount.read("envs/web/spec.toml").contains("[env.web]"));
    assert!(mount.read("generations/1/spec.toml").contains("[envs.web]"));
    assert_eq!(
        std::fs::read_link(mount.path("generations/current")).unwrap(),
        Path::new("1")
    );
    assert!(
        mount
            .read("images/busybox/size")
            .trim()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(mount.read(".status").starts_with("connected"));
}

#[test]
fn poll_on_state_wakes_on_a_change() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let mut file = std::fs::File::open(mount.path("envs/web/state")).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text.trim(), "running");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let pause = {
        let root = verse.root().to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            Command::new(VERSE)
                .args(["pause", "web"])
                .env("VERSE_ROOT", root)
                .output()
                .unwrap()
        })
    };
    let started = Instant::now();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, its count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(n, 1, "poll timed out");
    assert!(
        pfd.revents & libc::POLLPRI != 0,
        "revents {:#x}",
        pfd.revents
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "woke before the change"
    );
    assert!(pause.join().unwrap().status.success());
    // Re-read from the start, as with sysfs.
    let mut again = String::new();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut again).unwrap();
    assert_eq!(again.trim(), "paused");
}

#[test]
fn memory_limit_written_changes_the_cgroup_live() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let pid = verse.env("web")["pid"].clone();
    assert_eq!(
        mount.read("envs/web/limits/memory").trim(),
        (256u64 << 20).to_string()
    );
    let (ok, err) = mount.echo("128MiB", "envs/web/limits/memory");
    assert!(ok, "{err}");
    let want = (128u64 << 20).to_string();
    let limits: Vec<String> = verse
        .cgroup_dirs("web")
        .iter()
        .flat_map(|d| ["memory.max", "memory.limit_in_bytes"].map(|f| d.join(f)))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|t| t.trim().to_string())
        .collect();
    assert_eq!(
        limits,
        std::slice::from_ref(&want),
        "the cgroup's memory limit"
    );
    assert_eq!(mount.read("envs/web/limits/memory").trim(), want);
    assert_eq!(verse.env("web")["memory"], 128u64 << 20);
    // Live: the same process, never restarted.
    assert_eq!(verse.env("web")["pid"], pid);
    assert!(verse.ok(&["audit", "log"]).contains("limits"));

    // A value the spec would refuse is refused the same way.
    let (ok, _) = mount.echo("1KiB", "envs/web/limits/memory");
    assert!(!ok);
    assert!(
        mount.read("envs/web/error").contains("at least"),
        "{}",
        mount.read("envs/web/error")
    );
}

#[test]
fn a_refused_command_fails_the_write_and_says_why_in_error() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    assert_eq!(mount.read("envs/web/error"), "");
    verse.ok(&["down", "web"]);
    wait_for("web to stop", 5, || state(&mount, "web") == "stopped");

    let cli = verse.run(&["pause", "web"]);
    assert!(!cli.status.success());
    let (ok, err) = mount.echo("pause", "envs/web/ctl");
    assert!(!ok, "pausing a stopped env through ctl succeeded");
    assert!(!err.is_empty(), "the shell says the write failed");
    let reason = mount.read("envs/web/error");
    // The daemon's own words, as the CLI prints them.
    let first = stderr(&cli)
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("error: ")
        .to_string();
    assert!(
        reason.contains(&first),
        "error file: {reason}\nCLI said: {first}"
    );

    let (ok, _) = mount.echo("explode", "envs/web/ctl");
    assert!(!ok);
    assert!(
        mount
            .read("envs/web/error")
            .contains("unknown command `explode`")
    );
    // A write that succeeds clears it.
    assert!(mount.echo("start", "envs/web/ctl").0);
    assert_eq!(mount.read("envs/web/error"), "");
    // Read-only files refuse writes; nothing can be created.
    assert!(!mount.echo("running", "envs/web/console").0);
    assert!(!mount.echo("x", "envs/web/newfile").0);
}

#[test]
fn tail_f_console_follows_output() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let mut tail = Command::new("tail")
        .args(["-n", "1", "-f"])
        .arg(mount.path("envs/web/console"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first: u64 = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("tail printed nothing")
        .trim_start_matches("tick ")
        .parse()
        .unwrap();
    // New output keeps arriving while tail runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut newest = first;
    while newest < first + 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("tail -f stopped following");
        newest = line.trim_start_matches("tick ").parse().unwrap_or(newest);
    }
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn reading_events_blocks_until_the_next_event() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let file = std::fs::File::open(mount.path("envs/web/events")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The history first (this env's only), then nothing until something happens.
    let mut history = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        history.push(line);
    }
    assert!(
        history.iter().any(|l| l.contains("\"kind\":\"started\"")),
        "{history:?}"
    );
    assert!(
        history.iter().all(|l| l.contains("\"env\":\"web\"")),
        "{history:?}"
    );
    verse.ok(&["pause", "db"]);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "another env's event came through"
    );
    verse.ok(&["pause", "web"]);
    let line = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the blocked read did not return");
    assert!(line.contains("\"kind\":\"paused\""), "{line}");
}

#[test]
fn a_restricted_token_shows_its_env_only_and_refuses_writes() {
    if !fuse_usable() {
        return;
    }
    let mut verse = started();
    let (addr, cert) = listen_tls(&mut verse);
    let root =
        verse_guard::token::load_or_create_root_key(&verse.root().join("etc/verse/token.key"))
            .unwrap();
    let rights = verse_guard::token::parse_rights("env:web:read").unwrap();
    let token = verse_guard::token::mint(&root, &rights, None)
        .unwrap()
        .token;
    let token_file = verse.root().join("reader.token");
    std::fs::write(&token_file, token).unwrap();
    wait_for("the TLS API", 10, || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let api = format!("https://{addr}");
    let mount = Mount::new(
        &verse,
        &[
            "--token",
            token_file.to_str().unwrap(),
            "--api",
            &api,
            "--cacert",
            cert.to_str().unwrap(),
        ],
    );
    let envs: Vec<String> = std::fs::read_dir(mount.path("envs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(envs, ["web"], "a token for env:web:read lists web only");
    assert!(!mount.path("envs/db").exists());
    assert_eq!(state(&mount, "web"), "running");
    let (ok, _) = mount.echo("pause", "envs/web/ctl");
    assert!(!ok, "a read-only token paused an env");
    let reason = mount.read("envs/web/error");
    assert!(
        reason.contains("the token does not allow env:web:write"),
        "{reason}"
    );
    assert_eq!(verse.env("web")["state"], "running");
    assert!(!mount.echo("64MiB", "envs/web/limits/memory").0);
    let events = mount.read_available("events");
    assert!(!events.contains("\"env\":\"db\""), "{events}");
    assert!(mount.read(".status").contains("token"));
    // The refusals are in the audit log, as any refused token request is.
    assert!(verse.ok(&["audit", "log"]).contains("denied"));
}

#[test]
fn the_mount_survives_a_daemon_sigkill_and_restart() {
    if !fuse_usable() {
        return;
    }
    let mut verse = started();
    let mount = Mount::new(&verse, &[]);
    verse.kill_daemon();
    wait_for(".status to say disconnected", 5, || {
        mount.read(".status").starts_with("disconnected")
    });
    // What was known is still read; acts fail with the link down.
    assert_eq!(state(&mount, "web"), "running");
    let (ok, _) = mount.echo("pause", "envs/web/ctl");
    assert!(!ok);
    verse.start_daemon();
    wait_for(".status to say connected again", 10, || {
        mount.read(".status").starts_with("connected")
    });
    assert!(
        mount.read(".status").contains("reconnects: 1"),
        "{}",
        mount.read(".status")
    );
    let (ok, err) = mount.echo("pause", "envs/web/ctl");
    assert!(ok, "{err}");
    assert_eq!(state(&mount, "web"), "paused");
}

#[test]
fn nothing_is_left_mounted_when_the_mount_process_ends() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    // SIGKILL: the watchdog detaches it.
    let mut mount = Mount::new(&verse, &[]);
    mount.signal(libc::SIGKILL);
    wait_for("the killed mount to go", 5, || !mounted(&mount.dir));
    assert_eq!(
        std::fs::read_dir(&mount.dir).unwrap().count(),
        0,
        "the mount point is empty again"
    );
    // SIGTERM (and Ctrl-C): a lazy unmount, then a clean exit.
    let mut mount = Mount::new(&verse, &[]);
    let status = mount.signal(libc::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!mounted(&mount.dir));
    // `umount DIR` ends the mount process.
    let mut mount = Mount::new(&verse, &[]);
    let dir = mount.dir.clone();
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    let mut child = mount.child.take().unwrap();
    wait_for("the mount process to end", 5, || {
        child.try_wait().unwrap().is_some()
    });
    assert!(!mounted(&dir));
    // No watchdog is left behind either.
    std::thread::sleep(Duration::from_millis(200));
    let watchdogs = Command::new("pgrep")
        .args([
            "-f",
            &format!("__unmount-on-exit {}", verse.root().display()),
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&watchdogs).trim().is_empty(),
        "watchdogs left: {}",
        stdout(&watchdogs)
    );
}

#[test]
fn the_daemon_mounts_it_when_its_config_says_so() {
    if !fuse_usable() {
        return;
    }
    let mut verse = started();
    let etc = verse.root().join("etc/verse");
    std::fs::write(etc.join("daemon.toml"), "[fs]\nmount = true\n").unwrap();
    verse.kill_daemon();
    verse.start_daemon();
    let dir = verse.root().join("run/verse/fs");
    wait_for("the daemon's mount", 15, || mounted(&dir));
    let guard = Mount {
        dir: dir.clone(),
        child: None,
    };
    assert_eq!(
        std::fs::read_to_string(dir.join("envs/web/state"))
            .unwrap()
            .trim(),
        "running"
    );
    drop(guard);
    wait_for("the unmount", 5, || !mounted(&dir));
}

#[test]
fn inotify_on_state_hears_a_change() {
    if !fuse_usable() {
        return;
    }
    let verse = started();
    let mount = Mount::new(&verse, &[]);
    let path = std::ffi::CString::new(mount.path("envs/web/state").to_str().unwrap()).unwrap();
    // SAFETY: a fresh inotify descriptor, watched on a valid C string path.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: as above.
    let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_MODIFY) };
    assert!(wd >= 0, "{}", std::io::Error::last_os_error());
    verse.ok(&["pause", "web"]);
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 5_000) };
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd) };
    assert_eq!(n, 1, "no IN_MODIFY on state within 5 s of `verse pause`");
    assert_eq!(state(&mount, "web"), "paused");
}

const FILES_SPEC: &str = r#"
[env.box]
image = "busybox"
command = ["/bin/sh", "-c", "echo env-secret > /etc/shadow; echo inside > /tmp/mine; ln -s /etc/shadow /tmp/escape; ln -s ../../../../../../etc/shadow /tmp/up; touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]
"#;

#[test]
fn files_shows_the_envs_own_files_read_only_and_never_the_hosts() {
    if !fuse_usable() {
        return;
    }
    let verse = Verse::start();
    verse.apply(FILES_SPEC);
    wait_for("box to run", 20, || verse.env("box")["state"] == "running");
    let mount = Mount::new(&verse, &[]);
    wait_for("the env to write its files", 10, || {
        mount.path("envs/box/files/tmp/ready").exists()
    });

    let mut top: Vec<String> = std::fs::read_dir(mount.path("envs/box/files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    for want in ["bin", "etc", "tmp"] {
        assert!(top.iter().any(|n| n == want), "{want} in {top:?}");
    }
    assert!(
        std::fs::metadata(mount.path("envs/box/files/etc"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(mount.read("envs/box/files/tmp/mine"), "inside\n");
    let meta = std::fs::metadata(mount.path("envs/box/files/tmp/mine")).unwrap();
    assert_eq!(meta.len(), 7);

    // Read-only: writing, truncating, creating, removing are all refused.
    let (ok, err) = mount.echo("changed", "envs/box/files/tmp/mine");
    assert!(!ok && err.contains("Read-only file system"), "{err}");
    let err = std::fs::File::create(mount.path("envs/box/files/tmp/new")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let err = std::fs::remove_file(mount.path("envs/box/files/tmp/mine")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(mount.read("envs/box/files/tmp/mine"), "inside\n");

    // Symlinks to /etc/shadow, absolute or climbing with `..`, lead to the
    // env's own /etc/shadow, never the host's.
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    for link in ["tmp/escape", "tmp/up"] {
        let path = mount.path(&format!("envs/box/files/{link}"));
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_link(&path).unwrap(),
            Path::new("../etc/shadow")
        );
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got, b"env-secret\n", "{link}");
        assert_ne!(got, host_shadow);
    }
    // The kernel's own files (some of them the host's) are not read from the host side.
    assert!(std::fs::read(mount.path("envs/box/files/proc/1/environ")).is_err());

    // The env's process count.
    let pids: u64 = mount
        .read("envs/box/stats/pids")
        .trim()
        .parse()
        .expect("stats/pids is a number");
    assert!(pids >= 1, "{pids}");

    // A stopped env has no files to show, and says so.
    verse.ok(&["down", "box"]);
    let err = std::fs::read_dir(mount.path("envs/box/files")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
}
