//! Host capability probe behind `verse doctor`.
//!
//! [`probe`] tries each capability Verse's backends rely on (really trying where that can be
//! done without leaving anything behind: namespaces are unshared and an overlay is mounted in
//! short-lived child processes) and returns a [`Report`] with one [`Check`] per capability,
//! plus the raw [`Facts`] other crates can act on.

mod cgroup;
pub mod criu;
mod kernel;
mod process;

use std::fmt;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use cgroup::{CgroupFacts, CgroupLayout};

/// The namespaces the container backend unshares, by their `unshare(1)` names.
pub const NAMESPACES: &[&str] = &["user", "mount", "pid", "net", "uts", "ipc", "cgroup"];

/// The cgroup controllers Verse uses.
pub const CONTROLLERS: &[&str] = &["cpu", "memory", "pids", "freezer"];

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and working.
    Ok,
    /// Absent or not working.
    Missing,
    /// Present with a caveat.
    Warn,
}

impl Status {
    /// Lower-case label used in the rendered report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Warn => "warn",
        }
    }
}

/// One capability and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Short capability name, e.g. `overlayfs` or `ns:user`.
    pub name: String,
    /// What was found.
    pub status: Status,
    /// What the probe saw or did.
    pub detail: String,
    /// What the user loses when this is missing (or degraded).
    pub cost: String,
}

/// Raw findings, for code that decides what to do rather than what to print.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Effective uid is 0.
    pub root: bool,
    /// Namespace name → `unshare()` of it succeeded in a child.
    pub namespaces: Vec<(String, bool)>,
    /// cgroup layout and usable controllers.
    pub cgroup: CgroupFacts,
    /// `overlay` is listed in /proc/filesystems.
    pub overlayfs_listed: bool,
    /// A test overlay was mounted (in a private mount namespace).
    pub overlayfs_mounts: bool,
    /// Seccomp mode this process runs under (0 none, 1 strict, 2 filter); `None` without seccomp.
    pub seccomp_mode: Option<u32>,
    /// Seccomp filters (`SECCOMP_SET_MODE_FILTER`) are supported.
    pub seccomp_filter: bool,
    /// Landlock ABI version, `None` when unsupported or disabled.
    pub landlock_abi: Option<u32>,
    /// `KVM_GET_API_VERSION` of /dev/kvm, `None` when it cannot be opened.
    pub kvm_api: Option<i32>,
    /// The host itself runs under a hypervisor (cpuinfo `hypervisor` flag).
    pub nested_virtualisation: bool,
    /// `erofs` is listed in /proc/filesystems.
    pub erofs: bool,
    /// Path of the `nft` binary, if found.
    pub nft_path: Option<String>,
    /// `nft list tables` succeeded.
    pub nft_works: bool,
    /// The CRIU hibernate would use (needs root for `criu check`).
    #[serde(default)]
    pub criu: Option<criu::CriuFacts>,
}

/// The result of [`probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// One check per capability, in a fixed order.
    pub checks: Vec<Check>,
    /// The raw findings behind the checks.
    pub facts: Facts,
    /// How long the probe took, in microseconds.
    pub elapsed_us: u64,
}

impl Report {
    /// True when the container backend has everything it needs: root, all namespaces,
    /// overlayfs, seccomp filters, and a cgroup hierarchy with memory, pids and cpu.
    pub fn containers_can_run(&self) -> bool {
        let f = &self.facts;
        f.root
            && f.namespaces.len() == NAMESPACES.len()
            && f.namespaces.iter().all(|(_, ok)| *ok)
            && f.overlayfs_mounts
            && f.seccomp_filter
            && ["memory", "pids", "cpu"].iter().all(|c| f.cgroup.usable(c))
    }

    /// The check called `name`, if any.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Aligned, human-readable lines, one per check.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            write!(
                f,
                "{:<8} {:<width$}  {}",
                check.status.label(),
                check.name,
                check.detail
            )?;
            if check.status != Status::Ok && !check.cost.is_empty() {
                write!(f, " — costs: {}", check.cost)?;
            }
            writeln!(f)?;
        }
        let verdict = if self.containers_can_run() {
            "containers can run on this host"
        } else {
            "containers cannot run on this host: see the missing checks above"
        };
        write!(f, "{verdict} (probed in {} ms)", self.elapsed_us / 1000)
    }
}

/// A [`Check`] (for callers that add checks of their own to a report).
pub fn check(name: &str, status: Status, detail: impl Into<String>, cost: &str) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail: detail.into(),
        cost: cost.to_string(),
    }
}

/// Probe the host. `verse_root` is the root all Verse paths derive from (`/` in production);
/// the overlay test mount is made under `<verse_root>/var/lib/verse` when that exists (so it
/// tests the store's file system), else under the system temp dir. Nothing is left behind.
pub fn probe(verse_root: &Path) -> Report {
    let started = Instant::now();
    let mut facts = Facts::default();
    let mut checks = Vec::new();

    // Root.
    // SAFETY: geteuid has no preconditions and cannot fail.
    facts.root = unsafe { libc::geteuid() } == 0;
    checks.push(if facts.root {
        check("root", Status::Ok, "running as uid 0", "")
    } else {
        check(
            "root",
            Status::Missing,
            "not running as root",
            "the container backend, cgroup limits and networking need root",
        )
    });

    // Namespaces.
    for &ns in NAMESPACES {
        let result = process::try_unshare(ns);
        facts.namespaces.push((ns.to_string(), result.is_ok()));
        let name = format!("ns:{ns}");
        checks.push(match result {
            Ok(()) => check(&name, Status::Ok, "unshared in a child process", ""),
            Err(e) => check(
                &name,
                Status::Missing,
                format!("unshare failed: {e}"),
                namespace_cost(ns),
            ),
        });
    }

    // cgroups.
    facts.cgroup = cgroup::probe();
    checks.extend(cgroup::checks(&facts.cgroup));

    // overlayfs.
    let filesystems = kernel::filesystems();
    facts.overlayfs_listed = filesystems.iter().any(|f| f == "overlay");
    facts.erofs = filesystems.iter().any(|f| f == "erofs");
    let overlay_cost = "no containers: layers are stacked with overlayfs";
    checks.push(if !facts.overlayfs_listed {
        check(
            "overlayfs",
            Status::Missing,
            "not in /proc/filesystems (try `modprobe overlay`)",
            overlay_cost,
        )
    } else {
        let base = overlay_base(verse_root);
        match process::try_overlay_mount(&base) {
            Ok(()) => {
                facts.overlayfs_mounts = true;
                check(
                    "overlayfs",
                    Status::Ok,
                    format!("mounted a test overlay under {}", base.display()),
                    "",
                )
            }
            Err(e) => check(
                "overlayfs",
                Status::Missing,
                format!(
                    "listed, but a test mount under {} failed: {e}",
                    base.display()
                ),
                overlay_cost,
            ),
        }
    });

    // CRIU, for hibernate/resume.
    facts.criu = criu::probe();
    checks.push(match &facts.criu {
        Some(c) if c.check_ok => check(
            "criu",
            Status::Ok,
            format!("{} (version {}): `criu check` passes", c.path, c.version),
            "",
        ),
        Some(c) => check(
            "criu",
            Status::Warn,
            format!(
                "{} (version {}): `criu check` fails: {}",
                c.path,
                c.version,
                c.check_error.clone().unwrap_or_default()
            ),
            "no hibernate/resume of container envs; run scripts/install-criu.sh",
        ),
        None => check(
            "criu",
            Status::Warn,
            "not found",
            "no hibernate/resume of container envs; run scripts/install-criu.sh",
        ),
    });

    // seccomp.
    facts.seccomp_mode = kernel::seccomp_mode();
    facts.seccomp_filter = kernel::seccomp_filter_supported();
    let mode_note = match facts.seccomp_mode {
        Some(0) => "verse itself runs unconfined".to_string(),
        Some(2) => "verse itself already runs under a filter".to_string(),
        Some(m) => format!("verse itself runs in seccomp mode {m}"),
        None => "no Seccomp field in /proc/self/status".to_string(),
    };
    checks.push(if facts.seccomp_filter {
        check(
            "seccomp",
            Status::Ok,
            format!("filters supported; {mode_note}"),
            "",
        )
    } else {
        check(
            "seccomp",
            Status::Missing,
            format!("filter mode unsupported; {mode_note}"),
            "no containers: every env runs under a syscall filter",
        )
    });

    // Landlock.
    facts.landlock_abi = kernel::landlock_abi().ok();
    checks.push(match kernel::landlock_abi() {
        Ok(v) => check("landlock", Status::Ok, format!("ABI version {v}"), ""),
        Err(e) => check(
            "landlock",
            Status::Missing,
            format!(
                "landlock_create_ruleset failed: {e} (add `landlock` to the lsm= boot parameter)"
            ),
            "envs lose the extra file-access sandbox layered under the mount namespace",
        ),
    });

    // KVM.
    facts.nested_virtualisation = kernel::running_under_hypervisor();
    let kvm = kernel::kvm_api_version();
    facts.kvm_api = kvm.as_ref().ok().copied();
    checks.push(match kvm {
        Ok(v) if facts.nested_virtualisation => check(
            "kvm",
            Status::Warn,
            format!(
                "/dev/kvm API {v}, but this host is itself a VM: guests may run far below native speed; the vm backend times a test guest before relying on it"
            ),
            "vm envs may be slow under nested virtualisation",
        ),
        Ok(v) => check(
            "kvm",
            Status::Ok,
            format!(
                "/dev/kvm API {v}; guest speed is not known until the vm backend times a test guest"
            ),
            "",
        ),
        Err(e) => check(
            "kvm",
            Status::Missing,
            format!("/dev/kvm: {e}"),
            "the vm backend falls back to TCG emulation (much slower)",
        ),
    });

    // erofs.
    checks.push(if facts.erofs {
        check("erofs", Status::Ok, "listed in /proc/filesystems", "")
    } else {
        check(
            "erofs",
            Status::Missing,
            "not in /proc/filesystems (try `modprobe erofs`)",
            "layers are checked out as hardlink farms instead of erofs images",
        )
    });

    // nftables.
    facts.nft_path = process::find_in_path("nft").map(|p| p.display().to_string());
    let nft_cost = "no network policies beyond \"none\" (nat, allow-lists, proxies need nftables)";
    checks.push(match &facts.nft_path {
        None => check(
            "nftables",
            Status::Missing,
            "`nft` not found (apt-get install nftables)",
            nft_cost,
        ),
        Some(path) => match process::run_quiet(Path::new(path), &["list", "tables"]) {
            Ok(()) => {
                facts.nft_works = true;
                check(
                    "nftables",
                    Status::Ok,
                    format!("`{path} list tables` works"),
                    "",
                )
            }
            Err(e) => check(
                "nftables",
                Status::Missing,
                format!("`{path} list tables` failed: {e}"),
                nft_cost,
            ),
        },
    });

    checks.push(forwarding_check());
    checks.push(disk_check());

    Report {
        checks,
        facts,
        elapsed_us: started.elapsed().as_micros() as u64,
    }
}

/// `disk = "SIZE"`: a loop device can be found, and e2fsprogs makes and resizes ext4.
fn disk_check() -> Check {
    let cost = "envs with `disk` (a per-env limit on what they write) cannot start";
    let missing: Vec<&str> = ["mkfs.ext4", "e2fsck", "resize2fs", "losetup", "mount"]
        .into_iter()
        .filter(|tool| process::find_in_path(tool).is_none())
        .collect();
    if !missing.is_empty() {
        return check(
            "disk",
            Status::Missing,
            format!(
                "not found: {} (apt-get install e2fsprogs util-linux)",
                missing.join(", ")
            ),
            cost,
        );
    }
    match verse_disk::check_loop() {
        Ok(device) => check(
            "disk",
            Status::Ok,
            format!("loop devices usable ({device} is free); e2fsprogs found"),
            "",
        ),
        Err(e) => check("disk", Status::Missing, e.to_string(), cost),
    }
}

/// IPv4 forwarding as Verse leaves it: on only for its own interfaces (`vs*`, the host ends
/// of env veths) and the uplinks it turned on for NAT, never globally by itself.
fn forwarding_check() -> Check {
    let read = |iface: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{iface}/forwarding"))
            .map(|v| v.trim() == "1")
            .unwrap_or(false)
    };
    let mut verse = Vec::new();
    let mut others = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if matches!(name.as_str(), "all" | "default" | "lo") || !read(&name) {
                continue;
            }
            if name.starts_with("vs") {
                verse.push(name);
            } else {
                others.push(name);
            }
        }
    }
    verse.sort();
    others.sort();
    let global = read("all");
    let detail = format!(
        "global (net.ipv4.conf.all.forwarding): {}; on for {} Verse env interface(s){}; other interfaces with forwarding on: {}",
        if global { "on" } else { "off" },
        verse.len(),
        if verse.is_empty() {
            String::new()
        } else {
            format!(" ({})", verse.join(", "))
        },
        if others.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (uplinks Verse turned on for NAT are marked in /run/verse-net/forwarding)",
                others.join(", ")
            )
        }
    );
    check(
        "ipv4-forwarding",
        if global { Status::Warn } else { Status::Ok },
        detail,
        if global {
            "forwarding is on for every interface (not by Verse); Verse's rules still filter its envs"
        } else {
            ""
        },
    )
}

fn namespace_cost(ns: &str) -> &'static str {
    match ns {
        "user" => "no uid mapping: env root would be host root",
        "mount" => "no containers: envs need their own mount table",
        "pid" => "no containers: envs would see host processes",
        "net" => "no containers: envs would share the host network",
        "uts" => "no containers: envs cannot have their own host name",
        "ipc" => "no containers: envs would share host IPC objects",
        "cgroup" => "no containers: envs would see the host cgroup tree",
        _ => "",
    }
}

fn overlay_base(verse_root: &Path) -> std::path::PathBuf {
    let state = verse_root.join("var/lib/verse");
    if state.is_dir() {
        state
    } else {
        std::env::temp_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_facts() -> Facts {
        let mut cgroup = CgroupFacts::default();
        for c in ["cpu", "memory", "pids"] {
            cgroup
                .v1
                .insert(c.to_string(), format!("/sys/fs/cgroup/{c}"));
        }
        Facts {
            root: true,
            namespaces: NAMESPACES.iter().map(|n| (n.to_string(), true)).collect(),
            cgroup,
            overlayfs_listed: true,
            overlayfs_mounts: true,
            seccomp_filter: true,
            ..Facts::default()
        }
    }

    fn report(facts: Facts) -> Report {
        Report {
            checks: vec![
                check("root", Status::Ok, "running as uid 0", ""),
                check("landlock", Status::Missing, "ENOSYS", "less sandbox"),
            ],
            facts,
            elapsed_us: 1500,
        }
    }

    #[test]
    fn containers_need_everything() {
        assert!(report(ok_facts()).containers_can_run());
        let mut f = ok_facts();
        f.root = false;
        assert!(!report(f).containers_can_run());
        let mut f = ok_facts();
        f.namespaces[0].1 = false;
        assert!(!report(f).containers_can_run());
        let mut f = ok_facts();
        f.namespaces.pop();
        assert!(!report(f).containers_can_run());
        let mut f = ok_facts();
        f.overlayfs_mounts = false;
        assert!(!report(f).containers_can_run());
        let mut f = ok_facts();
        f.seccomp_filter = false;
        assert!(!report(f).containers_can_run());
        let mut f = ok_facts();
        f.cgroup.v1.remove("pids");
        assert!(!report(f).containers_can_run());
        // pids on cgroup2 instead is fine.
        let mut f = ok_facts();
        f.cgroup.v1.remove("pids");
        f.cgroup.v2_controllers = vec!["pids".into()];
        f.cgroup.v2_writable = true;
        assert!(report(f).containers_can_run());
    }

    #[test]
    fn render_aligns_and_names_costs() {
        let text = report(ok_facts()).render();
        assert_eq!(
            text,
            "ok       root      running as uid 0\n\
             missing  landlock  ENOSYS — costs: less sandbox\n\
             containers can run on this host (probed in 1 ms)"
        );
    }

    #[test]
    fn provider_prefers_v1_binding_then_v2() {
        let mut f = CgroupFacts::default();
        assert_eq!(f.provider("memory"), None);
        f.v2_controllers = vec!["memory".into()];
        assert_eq!(
            f.provider("memory"),
            None,
            "read-only cgroup2 is not usable"
        );
        f.v2_writable = true;
        assert_eq!(f.provider("memory"), Some("v2"));
        f.v2_freeze = true;
        assert_eq!(f.provider("freezer"), Some("v2"));
        f.v1.insert("freezer".into(), "/sys/fs/cgroup/freezer".into());
        assert_eq!(f.provider("freezer"), Some("v1"));
    }
}
