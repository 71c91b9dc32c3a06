//! cgroup layout (v1, v2 or hybrid) and which controllers Verse can use, read from
//! /proc/self/mountinfo, /proc/cgroups and the cgroup2 root's `cgroup.controllers`.

use std::collections::BTreeMap;
use std::ffi::CString;

use serde::{Deserialize, Serialize};

use crate::{CONTROLLERS, Check, Status, check};

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// No cgroup file system is mounted.
    #[default]
    None,
    /// Only v1 hierarchies.
    V1,
    /// v1 controller hierarchies plus a (mostly empty) cgroup2 mount.
    Hybrid,
    /// The unified cgroup2 hierarchy only.
    V2,
}

/// What the cgroup probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupFacts {
    /// v1, v2 or hybrid.
    pub layout: CgroupLayout,
    /// Usable v1 controllers (mounted read-write, enabled, writable) → their mount point.
    pub v1: BTreeMap<String, String>,
    /// Mount point of the cgroup2 hierarchy, if any.
    pub v2_mount: Option<String>,
    /// Controllers listed in the cgroup2 root's `cgroup.controllers`.
    pub v2_controllers: Vec<String>,
    /// The cgroup2 mount is read-write and writable by this process.
    pub v2_writable: bool,
    /// cgroup2 has the built-in freezer (`cgroup.freeze`, Linux 5.2+).
    pub v2_freeze: bool,
}

impl CgroupFacts {
    /// Where `controller` is usable: `"v1"`, `"v2"`, or `None`. A controller bound to a v1
    /// hierarchy is used there (it cannot be enabled on cgroup2 at the same time).
    pub fn provider(&self, controller: &str) -> Option<&'static str> {
        let on_v2 = self.v2_writable
            && (self.v2_controllers.iter().any(|c| c == controller)
                || (controller == "freezer" && self.v2_freeze));
        if self.v1.contains_key(controller) {
            Some("v1")
        } else if on_v2 {
            Some("v2")
        } else {
            None
        }
    }

    /// `controller` can be used through some hierarchy.
    pub fn usable(&self, controller: &str) -> bool {
        self.provider(controller).is_some()
    }
}

struct Mount {
    point: String,
    fstype: String,
    options: Vec<String>,
    super_options: Vec<String>,
}

fn unescape(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<_> = left.split(' ').collect();
            let right: Vec<_> = right.split(' ').collect();
            Some(Mount {
                point: unescape(left.get(4)?),
                options: left.get(5)?.split(',').map(str::to_string).collect(),
                fstype: right.first()?.to_string(),
                super_options: right.get(2)?.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

fn writable(path: &str) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Controllers enabled in /proc/cgroups.
fn enabled_v1() -> Vec<String> {
    std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
        })
        .collect()
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

pub(crate) fn probe() -> CgroupFacts {
    let mut facts = CgroupFacts::default();
    let enabled = enabled_v1();
    let mut any_v1 = false;
    for m in mounts() {
        match m.fstype.as_str() {
            "cgroup" => {
                let rw = m.options.iter().any(|o| o == "rw");
                for c in &m.super_options {
                    if enabled.contains(c) {
                        any_v1 = true;
                        if rw && writable(&m.point) {
                            facts.v1.entry(c.clone()).or_insert_with(|| m.point.clone());
                        }
                    }
                }
            }
            "cgroup2" if facts.v2_mount.is_none() => {
                let rw = m.options.iter().any(|o| o == "rw");
                facts.v2_controllers =
                    std::fs::read_to_string(format!("{}/cgroup.controllers", m.point))
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                facts.v2_writable = rw && writable(&m.point);
                facts.v2_freeze = kernel_at_least(5, 2);
                facts.v2_mount = Some(m.point);
            }
            _ => {}
        }
    }
    facts.layout = match (any_v1, facts.v2_mount.is_some()) {
        (true, true) => CgroupLayout::Hybrid,
        (true, false) => CgroupLayout::V1,
        (false, true) => CgroupLayout::V2,
        (false, false) => CgroupLayout::None,
    };
    facts
}

fn controller_cost(c: &str) -> &'static str {
    match c {
        "cpu" => "no CPU limits: `cpu` in verse.toml cannot be enforced",
        "memory" => "no memory limits: an env can exhaust host RAM",
        "pids" => "no process limits: a fork bomb in an env reaches the host",
        "freezer" => "container envs cannot be paused or hibernated",
        _ => "",
    }
}

pub(crate) fn checks(f: &CgroupFacts) -> Vec<Check> {
    let v2_desc = || {
        let mount = f.v2_mount.as_deref().unwrap_or("?");
        let ctl = if f.v2_controllers.is_empty() {
            "no controllers".to_string()
        } else {
            f.v2_controllers.join(" ")
        };
        format!("cgroup2 at {mount} ({ctl})")
    };
    let v1_desc = || {
        let names: Vec<_> = f.v1.keys().map(String::as_str).collect();
        format!("v1 controllers: {}", names.join(" "))
    };
    let mut checks = vec![match f.layout {
        CgroupLayout::None => check(
            "cgroups",
            Status::Missing,
            "no cgroup file system mounted",
            "no resource limits; containers cannot run",
        ),
        CgroupLayout::V2 => check(
            "cgroups",
            Status::Ok,
            format!("v2 (unified): {}", v2_desc()),
            "",
        ),
        CgroupLayout::Hybrid => check(
            "cgroups",
            Status::Ok,
            format!("v1 (hybrid): {}; {}", v1_desc(), v2_desc()),
            "",
        ),
        CgroupLayout::V1 => check(
            "cgroups",
            Status::Ok,
            format!("v1 (legacy): {}", v1_desc()),
            "",
        ),
    }];
    checks.push(attach_check(f));
    for &c in CONTROLLERS {
        let name = format!("cgroup:{c}");
        checks.push(match f.provider(c) {
            Some("v2") => {
                let how = if f.v2_controllers.iter().any(|x| x == c) {
                    "controller"
                } else {
                    "built-in cgroup.freeze"
                };
                check(
                    &name,
                    Status::Ok,
                    format!("v2 {how} at {}", f.v2_mount.as_deref().unwrap_or("?")),
                    "",
                )
            }
            Some(_) => check(&name, Status::Ok, format!("v1 at {}", f.v1[c]), ""),
            None => check(
                &name,
                Status::Missing,
                "not mounted, disabled, or not writable",
                controller_cost(c),
            ),
        });
    }
    checks
}

/// How fast a new env's first process gets into its cgroup. Moving a process
/// into a cgroup takes the kernel's cgroup threadgroup lock for writing, which
/// waits for an RCU grace period (7-15 ms measured on an idle host) unless a
/// cgroup hierarchy is mounted with `favordynmods`. On cgroup v2 Verse avoids
/// the move altogether: the process is born in its cgroup (CLONE_INTO_CGROUP).
fn attach_check(f: &CgroupFacts) -> Check {
    let favordynmods = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(2), Some("cgroup" | "cgroup2")))
        .any(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|o| o.split(',').any(|o| o == "favordynmods"))
        });
    match (f.layout, favordynmods) {
        (CgroupLayout::V2, _) => check(
            "cgroup:attach",
            Status::Ok,
            "envs are born in their cgroup (clone3 CLONE_INTO_CGROUP)",
            "",
        ),
        (_, true) => check(
            "cgroup:attach",
            Status::Ok,
            "a cgroup hierarchy is mounted with favordynmods: moving a process is fast",
            "",
        ),
        (_, false) => check(
            "cgroup:attach",
            Status::Warn,
            "v1 controllers, no favordynmods: each env start waits ~7-15 ms for an RCU grace \
             period; `mount -o remount,favordynmods /sys/fs/cgroup/unified` (or any cgroup2 \
             mount) removes it, at a small cost to fork and exit host-wide",
            "slower env starts",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b\011c"), "/a b\tc");
        assert_eq!(unescape(r"/back\134slash"), r"/back\slash");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\"), r"/trailing\");
        assert_eq!(unescape(r"/bad\9zz"), r"/bad\9zz");
    }
}
