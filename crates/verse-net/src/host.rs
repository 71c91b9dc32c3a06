//! The daemon's side: addresses, the nftables table, policy routes, uplink forwarding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::rules::{self, EnvPolicy, Mode, TableInput};
use crate::{EnvNet, NetError, run, short_tag};

/// Rule priority of the `iif ENV lookup TABLE` rules of `via` envs (before `main`).
const VIA_PREF: u32 = 30_000;
/// Rule priority of `to SUBNET lookup main`: traffic to envs (a router's replies to its
/// clients) takes the envs' own routes, never a `via` default route.
const LOCAL_PREF: u32 = VIA_PREF - 1;
/// Envs per root: .2 to .254 of the /24.
const MAX_INDEX: u16 = 254;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("no free /24 in 10.160.0.0/11 that overlaps no route or address of this host")]
    NoSubnet,
    #[error("all {0} addresses of this root's subnet are in use")]
    Full(u16),
    #[error("saving {path}: {source}")]
    State {
        path: String,
        source: std::io::Error,
    },
}

/// Persisted allocations (`var/lib/verse/net.json`): kept across daemon restarts so envs
/// keep their addresses and a restarted daemon rebuilds the same rules.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    subnet: Option<Ipv4Addr>,
    envs: BTreeMap<String, u16>,
}

/// Host-wide marks of the uplinks whose IPv4 forwarding Verse turned on.
pub const UPLINK_MARKS: &str = "/run/verse-net/forwarding";

fn marked_uplinks() -> Vec<String> {
    let mut marks: Vec<String> = std::fs::read_dir(UPLINK_MARKS)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    marks.sort();
    marks
}

/// Counter values of one env: connections allowed and packets dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub allowed: u64,
    pub dropped: u64,
}

/// Host networking of one Verse root.
pub struct Host {
    tag: String,
    table: String,
    ifprefix: String,
    path: PathBuf,
    state: Mutex<State>,
}

impl Host {
    /// Loads the root's allocations; changes nothing on the host.
    pub fn open(state_dir: &Path, instance_tag: &str) -> Host {
        let tag = short_tag(instance_tag);
        let path = state_dir.join("net.json");
        let state = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Host {
            table: format!("verse_{tag}"),
            ifprefix: format!("vs{tag}"),
            tag,
            path,
            state: Mutex::new(state),
        }
    }

    /// `inet verse_<TAG>`: the nftables table of this root.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Host-side interface names of this root start with this.
    pub fn interface_prefix(&self) -> &str {
        &self.ifprefix
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, state: &State) -> Result<(), HostError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| HostError::State {
                path: self.path.display().to_string(),
                source,
            })
    }

    /// The root's /24 (picked on first use so that it overlaps nothing routed on this host,
    /// and claimed with a blackhole route so other roots and unassigned addresses stay off it).
    pub fn subnet(&self) -> Result<Ipv4Addr, HostError> {
        let mut state = self.lock();
        let subnet = match state.subnet {
            Some(s) => s,
            None => {
                let s = pick_subnet(&self.tag)?;
                state.subnet = Some(s);
                self.save(&state)?;
                s
            }
        };
        drop(state);
        let _ = run(
            "ip",
            &["route", "replace", "blackhole", &format!("{subnet}/24")],
            None,
        );
        Ok(subnet)
    }

    /// The gateway (host) address of the root's subnet, if one was picked.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.lock().subnet.map(|s| offset(s, 1))
    }

    /// The address and interface of env `name`, allocating them on first use.
    pub fn env_net(&self, name: &str, router: bool) -> Result<EnvNet, HostError> {
        let subnet = self.subnet()?;
        let mut state = self.lock();
        let index = match state.envs.get(name) {
            Some(i) => *i,
            None => {
                let used: BTreeSet<u16> = state.envs.values().copied().collect();
                let i = (2..=MAX_INDEX)
                    .find(|i| !used.contains(i))
                    .ok_or(HostError::Full(MAX_INDEX - 1))?;
                state.envs.insert(name.to_string(), i);
                self.save(&state)?;
                i
            }
        };
        Ok(EnvNet {
            host_ifname: self.ifname(index),
            address: offset(subnet, index),
            gateway: offset(subnet, 1),
            router,
        })
    }

    /// The env's allocation, without allocating.
    pub fn existing(&self, name: &str) -> Option<(u16, String, Ipv4Addr)> {
        let state = self.lock();
        let i = *state.envs.get(name)?;
        Some((i, self.ifname(i), offset(state.subnet?, i)))
    }

    /// Forgets env `name`'s address (after `verse rm`).
    pub fn release(&self, name: &str) -> Result<(), HostError> {
        let mut state = self.lock();
        if state.envs.remove(name).is_some() {
            self.save(&state)?;
        }
        Ok(())
    }

    fn ifname(&self, index: u16) -> String {
        format!("{}{index}", self.ifprefix)
    }

    fn route_table(&self, index: u16) -> u32 {
        let tag = u32::from_str_radix(&self.tag, 16).unwrap_or(0);
        0x4000_0000 + ((tag & 0x3fff) << 10) + u32::from(index)
    }

    /// Makes the host match `envs` (every networked env of the root, running or not): the whole
    /// nftables table is swapped in one transaction, `via` routes and rules are added or
    /// removed, uplink forwarding is turned on when an env needs the way out. Idempotent.
    pub fn apply(&self, envs: &[EnvPolicy]) -> Result<(), HostError> {
        if envs.is_empty() {
            return self.teardown();
        }
        let subnet = self.subnet()?;
        let needs_uplink = envs.iter().any(|e| !matches!(e.mode, Mode::Via { .. }));
        let uplinks = if needs_uplink {
            self.enable_uplinks()?
        } else {
            marked_uplinks()
        };
        let counters = self.read_counters();
        let text = rules::table(&TableInput {
            name: &self.table,
            ifprefix: &self.ifprefix,
            subnet: (subnet, 24),
            gateway: offset(subnet, 1),
            envs,
            counters: &counters,
            uplinks: &uplinks,
        });
        run("nft", &["-f", "-"], Some(&text))?;
        self.sync_routes(envs)?;
        Ok(())
    }

    /// Policy routing of `via` envs: everything from the env goes to its router; when the
    /// router is gone the route vanishes with its interface and the next rule says
    /// unreachable: never a fallback to the host's own routes.
    fn sync_routes(&self, envs: &[EnvPolicy]) -> Result<(), HostError> {
        let any_via = envs.iter().any(|e| matches!(e.mode, Mode::Via { .. }));
        if let Some(subnet) = self.lock().subnet {
            let net = format!("{subnet}/24");
            let has = self.has_local_rule(&net);
            if any_via && !has {
                run(
                    "ip",
                    &[
                        "rule",
                        "add",
                        "pref",
                        &LOCAL_PREF.to_string(),
                        "to",
                        &net,
                        "lookup",
                        "main",
                    ],
                    None,
                )?;
            } else if !any_via && has {
                self.del_local_rule(&net);
            }
        }
        let mut wanted: BTreeSet<(u32, String)> = BTreeSet::new();
        for env in envs {
            if let Mode::Via { ifname, address } = &env.mode {
                let table = self.route_table(env.index).to_string();
                wanted.insert((VIA_PREF, env.ifname.clone()));
                wanted.insert((VIA_PREF + 1, env.ifname.clone()));
                if link_exists(ifname) {
                    run(
                        "ip",
                        &[
                            "route",
                            "replace",
                            "default",
                            "via",
                            &address.to_string(),
                            "dev",
                            ifname,
                            "onlink",
                            "table",
                            &table,
                        ],
                        None,
                    )?;
                } else {
                    let _ = run("ip", &["route", "flush", "table", &table], None);
                }
            }
        }
        let existing = self.our_rules();
        for (pref, iif) in &existing {
            if !wanted.contains(&(*pref, iif.clone())) {
                let _ = run(
                    "ip",
                    &["rule", "del", "pref", &pref.to_string(), "iif", iif],
                    None,
                );
            }
        }
        for env in envs {
            if !matches!(env.mode, Mode::Via { .. }) {
                continue;
            }
            let table = self.route_table(env.index).to_string();
            if !existing.contains(&(VIA_PREF, env.ifname.clone())) {
                run(
                    "ip",
                    &[
                        "rule",
                        "add",
                        "pref",
                        &VIA_PREF.to_string(),
                        "iif",
                        &env.ifname,
                        "lookup",
                        &table,
                    ],
                    None,
                )?;
            }
            if !existing.contains(&(VIA_PREF + 1, env.ifname.clone())) {
                run(
                    "ip",
                    &[
                        "rule",
                        "add",
                        "pref",
                        &(VIA_PREF + 1).to_string(),
                        "iif",
                        &env.ifname,
                        "unreachable",
                    ],
                    None,
                )?;
            }
        }
        Ok(())
    }

    fn has_local_rule(&self, net: &str) -> bool {
        let Ok(out) = run(
            "ip",
            &["-j", "rule", "show", "pref", &LOCAL_PREF.to_string()],
            None,
        ) else {
            return false;
        };
        let rules: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        let (addr, _) = net.split_once('/').unwrap_or((net, ""));
        rules.iter().any(|r| r["dst"].as_str() == Some(addr))
    }

    fn del_local_rule(&self, net: &str) {
        let _ = run(
            "ip",
            &[
                "rule",
                "del",
                "pref",
                &LOCAL_PREF.to_string(),
                "to",
                net,
                "lookup",
                "main",
            ],
            None,
        );
    }

    /// (pref, iif) of the policy rules naming this root's interfaces.
    fn our_rules(&self) -> BTreeSet<(u32, String)> {
        let Ok(out) = run("ip", &["-j", "rule", "show"], None) else {
            return BTreeSet::new();
        };
        let rules: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        rules
            .iter()
            .filter_map(|r| {
                let iif = r["iif"].as_str()?;
                let pref = r["priority"].as_u64()? as u32;
                iif.starts_with(&self.ifprefix)
                    .then(|| (pref, iif.to_string()))
            })
            .collect()
    }

    /// Turns on IPv4 forwarding on the interfaces of the host's default routes where it is
    /// off. Which uplinks Verse turned on is recorded host-wide (the sysctl is host-wide, and
    /// several Verse roots may share it) in [`UPLINK_MARKS`], so the last root to tear down
    /// turns them off again.
    fn enable_uplinks(&self) -> Result<Vec<String>, HostError> {
        let _ = std::fs::create_dir_all(UPLINK_MARKS);
        for uplink in uplink_interfaces() {
            let path = format!("/proc/sys/net/ipv4/conf/{uplink}/forwarding");
            if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0") {
                std::fs::write(Path::new(UPLINK_MARKS).join(&uplink), "")
                    .and_then(|()| std::fs::write(&path, "1"))
                    .map_err(|e| {
                        NetError::Other(format!("turning on forwarding on {uplink}: {e}"))
                    })?;
                tracing::info!(%uplink, "turned on IPv4 forwarding for Verse's envs");
            }
        }
        Ok(marked_uplinks())
    }

    /// Removes everything of this root from the host: the table, policy rules and routes,
    /// the subnet claim, the host ends of veths, and the uplink forwarding Verse turned on
    /// (unless another Verse root still uses it). Addresses stay allocated.
    pub fn teardown(&self) -> Result<(), HostError> {
        let _ = run(
            "nft",
            &["-f", "-"],
            Some(&format!(
                "table inet {t} {{ }}\ndelete table inet {t}\n",
                t = self.table
            )),
        );
        for (pref, iif) in self.our_rules() {
            let _ = run(
                "ip",
                &["rule", "del", "pref", &pref.to_string(), "iif", &iif],
                None,
            );
        }
        let state = self.lock().clone();
        for index in state.envs.values() {
            let _ = run(
                "ip",
                &[
                    "route",
                    "flush",
                    "table",
                    &self.route_table(*index).to_string(),
                ],
                None,
            );
            let ifname = self.ifname(*index);
            if link_exists(&ifname) {
                let _ = run("ip", &["link", "del", &ifname], None);
            }
        }
        if let Some(subnet) = state.subnet {
            self.del_local_rule(&format!("{subnet}/24"));
            let _ = run(
                "ip",
                &["route", "del", "blackhole", &format!("{subnet}/24")],
                None,
            );
        }
        let others = run("nft", &["list", "tables"], None)
            .map(|t| t.lines().any(|l| l.starts_with("table inet verse_")))
            .unwrap_or(false);
        if others {
            tracing::info!("another Verse root still forwards; uplink forwarding left on");
        } else {
            for uplink in marked_uplinks() {
                let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{uplink}/forwarding"), "0");
                let _ = std::fs::remove_file(Path::new(UPLINK_MARKS).join(&uplink));
                tracing::info!(%uplink, "turned IPv4 forwarding off again");
            }
        }
        Ok(())
    }

    /// Whether this root's table is installed.
    pub fn installed(&self) -> bool {
        run("nft", &["list", "table", "inet", &self.table], None).is_ok()
    }

    /// All named counters of the table: name -> (packets, bytes).
    pub fn read_counters(&self) -> BTreeMap<String, (u64, u64)> {
        let Ok(out) = run(
            "nft",
            &["-j", "list", "counters", "table", "inet", &self.table],
            None,
        ) else {
            return BTreeMap::new();
        };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["nftables"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|o| {
                        let c = &o["counter"];
                        Some((
                            c["name"].as_str()?.to_string(),
                            (c["packets"].as_u64()?, c["bytes"].as_u64()?),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Connections allowed and packets dropped for the env at `index`.
    pub fn counters(&self, index: u16) -> Counters {
        let all = self.read_counters();
        Counters {
            allowed: all.get(&format!("ok_{index}")).map_or(0, |c| c.0),
            dropped: all.get(&format!("drop_{index}")).map_or(0, |c| c.0),
        }
    }

    /// The rules of the env at `index`, as nft prints them.
    pub fn env_rules(&self, index: u16) -> Vec<String> {
        run(
            "nft",
            &[
                "list",
                "chain",
                "inet",
                &self.table,
                &format!("env_{index}"),
            ],
            None,
        )
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && *l != "}"
                })
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    }
}

fn offset(base: Ipv4Addr, i: u16) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + u32::from(i))
}

fn link_exists(ifname: &str) -> bool {
    Path::new("/sys/class/net").join(ifname).exists()
}

/// Interfaces carrying the host's IPv4 default routes.
pub fn uplink_interfaces() -> Vec<String> {
    let Ok(out) = run("ip", &["-j", "-4", "route", "show", "default"], None) else {
        return Vec::new();
    };
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    let mut devs: Vec<String> = routes
        .iter()
        .filter_map(|r| r["dev"].as_str().map(String::from))
        .collect();
    devs.sort();
    devs.dedup();
    devs
}

/// Every IPv4 network routed or addressed on this host, in any table.
fn used_networks() -> Vec<(u32, u32)> {
    let mut nets = Vec::new();
    let mut add = |dst: &str| {
        let (addr, len) = dst.split_once('/').unwrap_or((dst, "32"));
        if let (Ok(a), Ok(l)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>())
            && l > 0
        {
            let mask = if l >= 32 {
                u32::MAX
            } else {
                u32::MAX << (32 - l)
            };
            nets.push((u32::from(a) & mask, mask));
        }
    };
    if let Ok(out) = run("ip", &["-j", "-4", "route", "show", "table", "all"], None) {
        let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        for r in routes {
            if let Some(dst) = r["dst"].as_str() {
                add(dst);
            }
        }
    }
    if let Ok(out) = run("ip", &["-j", "-4", "addr", "show"], None) {
        let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        for l in links {
            for a in l["addr_info"].as_array().into_iter().flatten() {
                if let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    add(&format!("{ip}/{len}"));
                }
            }
        }
    }
    nets
}

/// A /24 in 10.160.0.0/11 derived from the root's tag, the first that overlaps nothing.
fn pick_subnet(tag: &str) -> Result<Ipv4Addr, HostError> {
    let used = used_networks();
    let start = u32::from_str_radix(tag, 16).unwrap_or(0) % 8192;
    for step in 0..8192u32 {
        let n = (start + step) % 8192;
        let base = u32::from(Ipv4Addr::new(10, 160, 0, 0)) + (n << 8);
        let mask = u32::MAX << 8;
        let overlaps = used
            .iter()
            .any(|(net, m)| (base & m) == *net || (net & mask) == base);
        if !overlaps {
            return Ok(Ipv4Addr::from(base));
        }
    }
    Err(HostError::NoSubnet)
}
