//! Hand-written cgroup handling: v2 (one directory) when `/sys/fs/cgroup` is cgroup2,
//! v1 (one directory per controller under `/sys/fs/cgroup/<controller>`) otherwise.
//!
//! Paths given to [`Cgroup::create`] / [`Cgroup::open`] are relative to the root of each
//! hierarchy, e.g. `verse-1a2b3c4d/novel` → `/sys/fs/cgroup/verse-1a2b3c4d/novel` (v2) or
//! `/sys/fs/cgroup/memory/verse-1a2b3c4d/novel` (v1).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Context, SandboxError};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// CFS period used for CPU quotas (100 ms, the kernel default).
const CPU_PERIOD_US: u64 = 100_000;
/// v1 controllers we use; each is a separate hierarchy (some may be co-mounted).
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];
/// v2 controllers we enable in the parents' `cgroup.subtree_control`.
const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];
/// How long `kill_all` waits for the cgroup to empty.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Resource limits for an environment. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// CPU time in cores (fractional, e.g. 0.5).
    pub cpu: Option<f64>,
    /// Memory in bytes (swap is limited to the same total: no extra swap).
    pub memory: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids: Option<u64>,
}

/// Which cgroup layout the host uses, for `verse doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy hierarchies; `controllers` lists those of ours that are mounted.
    V1 { controllers: Vec<String> },
    /// Unified hierarchy; `controllers` lists those available at the root.
    V2 { controllers: Vec<String> },
}

/// Usage counters of a cgroup. Zero when a counter is unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Total CPU time consumed, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Current memory usage, bytes.
    pub memory_bytes: u64,
    /// Current number of tasks.
    pub pids: u64,
}

/// A cgroup (v2) or a set of same-named cgroups, one per v1 controller.
#[derive(Debug, Clone)]
pub struct Cgroup {
    relative: String,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    V2 {
        dir: PathBuf,
    },
    /// (controller, directory). Co-mounted controllers (cpu,cpuacct) share a directory and
    /// appear once per controller name; `dirs()` dedups.
    V1 {
        dirs: Vec<(&'static str, PathBuf)>,
    },
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Mount points of our v1 controllers, canonicalized (so `cpu` and `cpuacct` co-mounted via
/// symlinks resolve to the same directory).
fn v1_mounts(root: &Path) -> Vec<(&'static str, PathBuf)> {
    V1_CONTROLLERS
        .iter()
        .filter_map(|c| {
            let p = fs::canonicalize(root.join(c)).ok()?;
            let is_cgroup = nix::sys::statfs::statfs(&p)
                .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC)
                .unwrap_or(false);
            is_cgroup.then_some((*c, p))
        })
        .collect()
}

/// Detects the host's cgroup layout.
pub fn cgroup_version() -> CgroupVersion {
    let root = Path::new(CGROUP_ROOT);
    if is_cgroup2(root) {
        let controllers = fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        CgroupVersion::V2 { controllers }
    } else {
        let controllers = v1_mounts(root)
            .into_iter()
            .map(|(c, _)| c.to_owned())
            .collect();
        CgroupVersion::V1 { controllers }
    }
}

fn validate_relative(rel: &str) -> Result<(), SandboxError> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Config(format!(
            "cgroup path {rel:?} must be relative, without empty, '.' or '..' components"
        )))
    }
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).context(|| format!("write {value:?} to {}", path.display()))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Value of `key` in a flat-keyed file such as `cpu.stat`.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_pids(path: &Path) -> Vec<Pid> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok().map(Pid::from_raw))
        .collect()
}

impl Cgroup {
    /// Creates the cgroup (and its parents) and applies `limits`. An existing cgroup of the
    /// same path is reused and its limits overwritten.
    pub fn create(relative_path: &str, limits: &Limits) -> Result<Self, SandboxError> {
        Self::create_in(Path::new(CGROUP_ROOT), relative_path, limits)
    }

    /// Like [`Cgroup::create`], under another hierarchy root: a cgroup2 mount (e.g. a
    /// delegated subtree, or `/sys/fs/cgroup/unified` on hybrid hosts) or a directory
    /// holding v1 controller mounts.
    pub fn create_in(
        root: &Path,
        relative_path: &str,
        limits: &Limits,
    ) -> Result<Self, SandboxError> {
        validate_relative(relative_path)?;
        let cg = Self::at(root, relative_path);
        let existed = cg.dirs().iter().any(|d| d.exists());
        match &cg.layout {
            Layout::V2 { dir } => {
                // Controllers must be enabled in every ancestor's subtree_control for the
                // limit files to exist in our directory.
                let mut cur = root.to_path_buf();
                for comp in relative_path.split('/') {
                    cg.enable_v2_controllers(&cur)?;
                    cur.push(comp);
                    match fs::create_dir(&cur) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                            return Err(SandboxError::io(format!("mkdir {}", cur.display()), e));
                        }
                        _ => {}
                    }
                }
                debug_assert_eq!(&cur, dir);
            }
            Layout::V1 { .. } => {
                for dir in cg.dirs() {
                    fs::create_dir_all(&dir).context(|| format!("mkdir {}", dir.display()))?;
                }
            }
        }
        if let Err(e) = cg.set_limits(limits) {
            // Do not leave a half-configured cgroup behind (unless it was there before).
            if !existed {
                let _ = cg.clone().remove();
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Reattaches to an existing cgroup; `Ok(None)` when it does not exist.
    pub fn open(relative_path: &str) -> Result<Option<Self>, SandboxError> {
        Self::open_in(Path::new(CGROUP_ROOT), relative_path)
    }

    /// Like [`Cgroup::open`], under another hierarchy root (see [`Cgroup::create_in`]).
    pub fn open_in(root: &Path, relative_path: &str) -> Result<Option<Self>, SandboxError> {
        validate_relative(relative_path)?;
        let cg = Self::at(root, relative_path);
        Ok(cg.dirs().iter().any(|d| d.is_dir()).then_some(cg))
    }

    fn at(root: &Path, relative: &str) -> Self {
        let layout = if is_cgroup2(root) {
            Layout::V2 {
                dir: root.join(relative),
            }
        } else {
            Layout::V1 {
                dirs: v1_mounts(root)
                    .into_iter()
                    .map(|(c, m)| (c, m.join(relative)))
                    .collect(),
            }
        };
        Cgroup {
            relative: relative.to_owned(),
            layout,
        }
    }

    /// The path relative to the hierarchy roots, as given to `create`/`open`.
    pub fn relative_path(&self) -> &str {
        &self.relative
    }

    /// Whether this is a v2 cgroup.
    pub fn is_v2(&self) -> bool {
        matches!(self.layout, Layout::V2 { .. })
    }

    /// Distinct directories backing this cgroup.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { dir } => vec![dir.clone()],
            Layout::V1 { dirs } => {
                let mut out: Vec<PathBuf> = Vec::new();
                for (_, d) in dirs {
                    if !out.contains(d) {
                        out.push(d.clone());
                    }
                }
                out
            }
        }
    }

    /// The directory of a cgroup v2 cgroup; None on v1.
    pub fn v2_dir(&self) -> Option<&Path> {
        match &self.layout {
            Layout::V2 { dir } => Some(dir),
            Layout::V1 { .. } => None,
        }
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        match &self.layout {
            Layout::V1 { dirs } => dirs
                .iter()
                .find(|(c, _)| *c == controller)
                .map(|(_, d)| d.as_path()),
            Layout::V2 { .. } => None,
        }
    }

    fn enable_v2_controllers(&self, dir: &Path) -> Result<(), SandboxError> {
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for c in V2_CONTROLLERS {
            let has = |s: &str| s.split_whitespace().any(|x| x == c);
            if has(&available) && !has(&enabled) {
                write(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
            }
        }
        Ok(())
    }

    fn missing(&self, what: &str) -> SandboxError {
        SandboxError::Config(format!(
            "{what} limit requested but the controller is not available for cgroup {}",
            self.relative
        ))
    }

    /// Applies `limits` (`None` fields reset to unlimited).
    pub fn set_limits(&self, limits: &Limits) -> Result<(), SandboxError> {
        if let Some(cpu) = limits.cpu
            && !(cpu.is_finite() && cpu > 0.0)
        {
            return Err(SandboxError::Config(format!("cpu limit {cpu} must be > 0")));
        }
        // Kernel minimum quota is 1 ms.
        let quota = limits
            .cpu
            .map(|c| ((c * CPU_PERIOD_US as f64) as u64).max(1000));
        match &self.layout {
            Layout::V2 { dir } => {
                let set = |file: &str, value: String, requested: bool| {
                    let p = dir.join(file);
                    if p.exists() {
                        write(&p, &value)
                    } else if requested {
                        Err(self.missing(file))
                    } else {
                        Ok(())
                    }
                };
                let max = |v: Option<u64>| v.map_or("max".to_owned(), |v| v.to_string());
                set(
                    "cpu.max",
                    format!("{} {CPU_PERIOD_US}", max(quota)),
                    quota.is_some(),
                )?;
                set("memory.max", max(limits.memory), limits.memory.is_some())?;
                // No swap on top of the memory limit, so the limit is what the env gets.
                let swap = if limits.memory.is_some() { "0" } else { "max" };
                set("memory.swap.max", swap.to_owned(), false)?;
                set("pids.max", max(limits.pids), limits.pids.is_some())?;
            }
            Layout::V1 { .. } => {
                match (self.v1_dir("cpu"), quota) {
                    (Some(d), q) => {
                        write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        let q = q.map_or("-1".to_owned(), |q| q.to_string());
                        write(&d.join("cpu.cfs_quota_us"), &q)?;
                    }
                    (None, Some(_)) => return Err(self.missing("cpu")),
                    (None, None) => {}
                }
                match (self.v1_dir("memory"), limits.memory) {
                    (Some(d), m) => self.set_v1_memory(d, m)?,
                    (None, Some(_)) => return Err(self.missing("memory")),
                    (None, None) => {}
                }
                match (self.v1_dir("pids"), limits.pids) {
                    (Some(d), p) => {
                        let p = p.map_or("max".to_owned(), |p| p.to_string());
                        write(&d.join("pids.max"), &p)?;
                    }
                    (None, Some(_)) => return Err(self.missing("pids")),
                    (None, None) => {}
                }
            }
        }
        Ok(())
    }

    /// v1 memory: `memory.memsw.limit_in_bytes` (memory+swap) must stay >= the memory limit,
    /// so the order of the two writes depends on the direction of the change.
    fn set_v1_memory(&self, dir: &Path, memory: Option<u64>) -> Result<(), SandboxError> {
        let value = memory.map_or("-1".to_owned(), |m| m.to_string());
        let mem = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if !memsw.exists() {
            return write(&mem, &value);
        }
        if write(&mem, &value).is_err() {
            // Raising: memsw first.
            write(&memsw, &value)?;
            return write(&mem, &value);
        }
        write(&memsw, &value)
    }

    /// Moves `pid` (a whole process) into this cgroup.
    pub fn add(&self, pid: Pid) -> Result<(), SandboxError> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Processes in this cgroup and its descendants (union over v1 controllers).
    pub fn procs(&self) -> Vec<Pid> {
        let mut out = Vec::new();
        for dir in self.dirs() {
            collect_procs(&dir, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    /// SIGKILLs every process in the cgroup and waits until it is empty. Uses `cgroup.kill`
    /// (v2, Linux 5.14+) when present; otherwise freezes the cgroup so nothing can fork while
    /// we signal, kills each listed process, thaws and repeats until empty.
    ///
    /// Killed processes that are children of the caller stay zombies until reaped, but they
    /// no longer count as members of the cgroup.
    pub fn kill_all(&self) -> Result<(), SandboxError> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        let kill_file = match &self.layout {
            Layout::V2 { dir } => Some(dir.join("cgroup.kill")).filter(|p| p.exists()),
            Layout::V1 { .. } => None,
        };
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SandboxError::io(
                    format!("kill_all {}: {} processes left", self.relative, procs.len()),
                    io::Error::from(io::ErrorKind::TimedOut),
                ));
            }
            if let Some(f) = &kill_file {
                write(f, "1")?;
            } else {
                self.force_freeze(true);
                for pid in self.procs() {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                self.force_freeze(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Best-effort freeze/thaw (v1 freezer or v2 cgroup.freeze).
    fn force_freeze(&self, frozen: bool) {
        let (file, value) = match &self.layout {
            Layout::V2 { dir } => (dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
            Layout::V1 { .. } => match self.v1_dir("freezer") {
                Some(d) => (
                    d.join("freezer.state"),
                    if frozen { "FROZEN" } else { "THAWED" },
                ),
                None => return,
            },
        };
        let _ = fs::write(file, value);
    }

    /// Freezes every process of the cgroup in place (v1 `freezer.state`, v2
    /// `cgroup.freeze`) and returns once the kernel reports it frozen: nothing in the
    /// env runs, forks or receives signals until [`Cgroup::thaw`]. Memory stays as it is.
    pub fn freeze(&self) -> Result<(), SandboxError> {
        self.set_frozen(true)
    }

    /// Lets a frozen cgroup run again; returns once it is thawed.
    pub fn thaw(&self) -> Result<(), SandboxError> {
        self.set_frozen(false)
    }

    /// Whether the cgroup is frozen (or freezing), as the kernel reports it.
    pub fn is_frozen(&self) -> bool {
        match self.freezer_file() {
            Some((file, true)) => read_key(&file.with_file_name("cgroup.events"), "frozen")
                .map(|v| v == 1)
                .unwrap_or_else(|| read_u64(&file) == Some(1)),
            Some((file, false)) => fs::read_to_string(file)
                .map(|s| s.trim() != "THAWED")
                .unwrap_or(false),
            None => false,
        }
    }

    /// The freezer control file and whether it is v2's `cgroup.freeze`.
    fn freezer_file(&self) -> Option<(PathBuf, bool)> {
        match &self.layout {
            Layout::V2 { dir } => {
                Some((dir.join("cgroup.freeze"), true)).filter(|(p, _)| p.exists())
            }
            Layout::V1 { .. } => self
                .v1_dir("freezer")
                .map(|d| (d.join("freezer.state"), false))
                .filter(|(p, _)| p.exists()),
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), SandboxError> {
        let Some((file, v2)) = self.freezer_file() else {
            return Err(SandboxError::Config(format!(
                "cgroup {} has no freezer (v1 freezer controller or v2 cgroup.freeze)",
                self.relative
            )));
        };
        let value = match (v2, frozen) {
            (true, true) => "1",
            (true, false) => "0",
            (false, true) => "FROZEN",
            (false, false) => "THAWED",
        };
        write(&file, value)?;
        // v1 passes through FREEZING, v2 sets `frozen 1` in cgroup.events once every
        // task has stopped: wait for the settled state so callers can rely on it.
        let deadline = Instant::now() + KILL_TIMEOUT;
        loop {
            let settled = if v2 {
                read_key(&file.with_file_name("cgroup.events"), "frozen")
                    .is_none_or(|v| (v == 1) == frozen)
            } else {
                fs::read_to_string(&file)
                    .map(|s| s.trim() == value)
                    .unwrap_or(true)
            };
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SandboxError::io(
                    format!("waiting for {} to become {value}", file.display()),
                    io::Error::from(io::ErrorKind::TimedOut),
                ));
            }
            if !v2 {
                // A v1 freeze that stalls (a task in an uninterruptible sleep) is retried.
                let _ = fs::write(&file, value);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Removes the cgroup directories (call after `kill_all`), then any parent directories
    /// of the relative path that are now empty (e.g. the per-env `verse-xxx`).
    pub fn remove(self) -> Result<(), SandboxError> {
        for dir in self.dirs() {
            remove_tree(&dir)?;
            // Parents: stop at the first that is not empty (or not ours).
            let depth = self.relative.split('/').count();
            let mut parent = dir.as_path();
            for _ in 1..depth {
                parent = match parent.parent() {
                    Some(p) => p,
                    None => break,
                };
                if fs::remove_dir(parent).is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Usage counters.
    pub fn stats(&self) -> CgroupStats {
        match &self.layout {
            Layout::V2 { dir } => CgroupStats {
                cpu_usage_ns: read_key(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
                memory_bytes: read_u64(&dir.join("memory.current")).unwrap_or(0),
                pids: read_u64(&dir.join("pids.current"))
                    .unwrap_or_else(|| self.procs().len() as u64),
            },
            Layout::V1 { .. } => {
                let get = |c: &str, f: &str| self.v1_dir(c).and_then(|d| read_u64(&d.join(f)));
                CgroupStats {
                    cpu_usage_ns: get("cpuacct", "cpuacct.usage").unwrap_or(0),
                    memory_bytes: get("memory", "memory.usage_in_bytes").unwrap_or(0),
                    pids: get("pids", "pids.current").unwrap_or_else(|| self.procs().len() as u64),
                }
            }
        }
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<Pid>) {
    out.extend(read_pids(&dir.join("cgroup.procs")));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

/// rmdir a cgroup directory and its sub-cgroups, deepest first. Retries briefly on EBUSY:
/// a just-killed task can take a moment to leave the cgroup.
fn remove_tree(dir: &Path) -> Result<(), SandboxError> {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(SandboxError::io(format!("rmdir {}", dir.display()), e)),
        }
    }
}
