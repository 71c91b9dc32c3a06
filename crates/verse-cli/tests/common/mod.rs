//! Harness for end-to-end tests: a real `verse daemon` on a temporary
//! VERSE_ROOT, driven through the real `verse` binary, running real envs on a
//! busybox rootfs built from Debian's busybox-static.

#![allow(dead_code)]

pub mod store_check;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const VERSE: &str = env!("CARGO_BIN_EXE_verse");

/// Returns false (and says why, loudly) when this host cannot run the test;
/// under CI=true a missing capability is a failure, never a skip.
pub fn can_run() -> bool {
    let missing = if !nix_is_root() {
        Some("not running as root (namespaces, cgroups and mounts need it)")
    } else if !Path::new("/proc/self/ns/user").exists() {
        Some("the kernel has no user namespaces")
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and this host cannot run end-to-end tests: {reason}")
        }
        Some(reason) => {
            eprintln!(
                "\n!!! SKIPPED: {reason}; run the tests as root to exercise real environments !!!\n"
            );
            false
        }
    }
}

/// Whether loop devices can back an env's `disk` (a free one can be found);
/// says so loudly when not, and fails under CI=true.
pub fn loops_usable() -> bool {
    let why = if !Path::new("/dev/loop-control").exists() {
        Some("no /dev/loop-control".to_string())
    } else {
        match Command::new("losetup").arg("-f").output() {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "no free loop device: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Some(format!("losetup: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and this host cannot give envs a disk: {why}")
        }
        Some(why) => {
            eprintln!("\n!!! SKIPPED: {why}; `disk` needs loop devices !!!\n");
            false
        }
    }
}

/// Whether the test runs as root (effective uid 0).
pub fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The busybox rootfs directory, built once per test binary by the script.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let out = Command::new(&script)
            .output()
            .expect("running scripts/busybox-rootfs.sh");
        assert!(
            out.status.success(),
            "busybox-rootfs.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

pub struct Verse {
    pub root: tempfile::TempDir,
    daemon: Option<Child>,
    /// Extra environment of the daemon (e.g. a test DNS upstream).
    pub daemon_env: Vec<(String, String)>,
}

impl Verse {
    /// A daemon on a fresh root, with the busybox image imported as `busybox`.
    pub fn start() -> Verse {
        Verse::start_with_env(&[])
    }

    /// Like [`Verse::start`], with extra environment variables for the daemon.
    pub fn start_with_env(vars: &[(&str, &str)]) -> Verse {
        let root = tempfile::Builder::new()
            .prefix("verse-e2e-")
            .tempdir()
            .expect("temp root");
        let mut verse = Verse {
            root,
            daemon: None,
            daemon_env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        verse.start_daemon();
        let out = verse.ok(&[
            "image",
            "import",
            "busybox",
            busybox_rootfs().to_str().unwrap(),
        ]);
        assert!(out.contains("imported busybox"), "{out}");
        verse
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.root().join("run/verse/verse.sock")
    }

    pub fn start_daemon(&mut self) {
        self.start_daemon_with(&[]);
    }

    /// Starts the daemon with extra arguments (e.g. `--listen ADDR ...`).
    pub fn start_daemon_with(&mut self, args: &[&str]) {
        let log = std::fs::File::create(self.root().join("daemon.log")).unwrap();
        let child = Command::new(VERSE)
            .arg("daemon")
            .args(args)
            .env("VERSE_ROOT", self.root())
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            // Each test daemon serves its UI on a free port of its own.
            .env("VERSE_WEB", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting verse daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the daemon did not come up: {}", self.daemon_log());
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    /// `kill -9` the daemon, as a crash would.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the daemon's log, for failure messages.
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        let log = self.daemon_log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root().join("daemon.log")).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(VERSE);
        command
            .args(args)
            .env("VERSE_ROOT", self.root())
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running verse")
    }

    /// Runs verse, expecting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`verse {}` failed with {:?}\nstdout: {}\nstderr: {}\ndaemon log (last lines):\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log_tail(40)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs verse with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `verse exec ENV -- sh -c SCRIPT`, returning (exit code, stdout, stderr).
    pub fn sh(&self, env: &str, script: &str) -> (i32, String, String) {
        let out = self.run(&["exec", env, "--", "/bin/sh", "-c", script]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn write_spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn apply(&self, text: &str) -> String {
        let path = self.write_spec("verse.toml", text);
        self.ok(&["apply", path.to_str().unwrap()])
    }

    pub fn envs(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["ls", "--json"])).unwrap()
    }

    pub fn env(&self, name: &str) -> serde_json::Value {
        self.envs()
            .into_iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name} in ls"))
    }

    pub fn env_dir(&self, name: &str) -> PathBuf {
        self.root().join("var/lib/verse/envs").join(name)
    }

    /// Waits (up to `secs`) until `verse logs ENV` contains `text`; returns the log.
    pub fn wait_for_log(&self, env: &str, text: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let log = stdout(&self.run(&["logs", env]));
            if log.contains(text) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`{text}` not in the log of {env} after {secs} s; its tail: {}",
                &log[log.len().saturating_sub(300)..]
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Bytes the console log of `env` takes on the host (console.log and the
    /// file rotated out of it).
    pub fn log_bytes_on_disk(&self, env: &str) -> u64 {
        ["console.log", "console.log.1"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.env_dir(env).join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Host cgroup directories of this daemon's env `name`, on whichever
    /// hierarchies exist (other daemons' envs of the same name are not ours).
    pub fn cgroup_dirs(&self, name: &str) -> Vec<PathBuf> {
        let tag = verse_api::Paths::new(self.root().to_path_buf()).instance_tag();
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
            return found;
        };
        let mut hierarchies: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
        for hierarchy in hierarchies {
            let dir = hierarchy.join(&tag).join(name);
            if dir.exists() {
                found.push(dir);
            }
        }
        found
    }

    /// Mounts anywhere on the host that mention this root.
    pub fn host_mounts(&self) -> Vec<String> {
        let root = self.root().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Verse {
    fn drop(&mut self) {
        // Remove every env so no process, cgroup or mount outlives the test.
        if self.daemon.is_some() {
            if let Ok(out) = self.command(&["ls", "--json"]).output()
                && let Ok(envs) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            {
                for env in envs {
                    let _ = self
                        .command(&["rm", env["name"].as_str().unwrap_or_default()])
                        .output();
                }
            }
            self.kill_daemon();
        }
    }
}

/// Restarts the daemon also listening on a free 127.0.0.1 port with a fresh
/// self-signed certificate; returns that address and the certificate's path.
pub fn listen_tls(verse: &mut Verse) -> (String, PathBuf) {
    let cert = verse.root().join("tls.crt");
    let key = verse.root().join("tls.key");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    verse.kill_daemon();
    verse.start_daemon_with(&[
        "--listen",
        &addr,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    (addr, cert)
}

pub fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this host has what `backend` needs; says so loudly when not, and
/// fails under CI=true.
pub fn backend_available(backend: &str) -> bool {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    let target = Path::new(VERSE)
        .parent()
        .and_then(Path::parent)
        .expect("target dir");
    let missing = match backend {
        "vm" if !on_path("qemu-system-x86_64") => {
            Some("qemu-system-x86_64 is not installed".to_string())
        }
        "vm" if verse_vm_kernel_missing() => {
            Some("no guest kernel in /usr/lib/verse/kernel (scripts/install-deps.sh)".into())
        }
        "vm" if !target
            .join("x86_64-unknown-linux-gnu/debug/verse-agent")
            .is_file() =>
        {
            Some("no static verse-agent (scripts/build-agent.sh)".into())
        }
        "gvisor" if !on_path("runsc") => Some("runsc is not installed".into()),
        _ => None,
    };
    match missing {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and the {backend} backend cannot run here: {why}")
        }
        Some(why) => {
            eprintln!("\n!!! SKIPPED {backend} backend test: {why} !!!\n");
            false
        }
    }
}

pub fn verse_vm_kernel_missing() -> bool {
    let dir = std::env::var_os("VERSE_VM_KERNEL").unwrap_or_else(|| "/usr/lib/verse/kernel".into());
    std::fs::read_dir(Path::new(&dir).join("boot"))
        .map(|d| {
            !d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(true)
}

pub const CRIU: &str = "/usr/local/lib/verse/criu/criu";

/// CRIU installed by scripts/install-criu.sh; skips loudly (fails under CI=true).
pub fn have_criu() -> bool {
    if std::path::Path::new(CRIU).exists() {
        return true;
    }
    let reason = format!("{CRIU} is missing (run scripts/install-criu.sh)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {reason}");
    }
    eprintln!("\n!!! SKIPPED: {reason} !!!\n");
    false
}
