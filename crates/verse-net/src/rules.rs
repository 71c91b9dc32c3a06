//! The nftables table of one Verse root, as text for one atomic `nft -f` transaction.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// What an env may reach beyond its established connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Anything outside Verse's subnet.
    Nat,
    /// Only these networks and inclusive port ranges (TCP and UDP).
    Allow(Vec<(Ipv4Addr, u8, u16, u16)>),
    /// Only this TCP endpoint.
    Proxy(Ipv4Addr, u16),
    /// Everything goes to this router env (its host-side interface and address).
    Via { ifname: String, address: Ipv4Addr },
}

/// One networked env's policy, resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPolicy {
    pub name: String,
    /// Index in the root's subnet; names its chain, set and counters.
    pub index: u16,
    pub ifname: String,
    pub address: Ipv4Addr,
    pub mode: Mode,
    /// Other envs' (address, port) this env may open connections to.
    pub reach: Vec<(Ipv4Addr, u16)>,
    /// Relays replies of the flows it routes for other envs.
    pub router: bool,
}

/// Everything the table depends on.
pub(crate) struct TableInput<'a> {
    pub name: &'a str,
    pub ifprefix: &'a str,
    pub subnet: (Ipv4Addr, u8),
    pub gateway: Ipv4Addr,
    pub envs: &'a [EnvPolicy],
    /// Counter values to carry over, by counter name: (packets, bytes).
    pub counters: &'a BTreeMap<String, (u64, u64)>,
    /// Uplinks on which Verse turned forwarding on: forwarding that does not involve Verse's
    /// interfaces stays refused there, as it was before.
    pub uplinks: &'a [String],
}

fn counter(out: &mut String, name: &str, counters: &BTreeMap<String, (u64, u64)>) {
    let (p, b) = counters.get(name).copied().unwrap_or((0, 0));
    let _ = writeln!(out, "  counter {name} {{ packets {p} bytes {b} }}");
}

fn elements(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", items.join(", "))
    }
}

/// The whole table, replacing any previous one in the same transaction.
pub(crate) fn table(t: &TableInput<'_>) -> String {
    let name = t.name;
    let any = format!("\"{}*\"", t.ifprefix);
    let subnet = format!("{}/{}", t.subnet.0, t.subnet.1);
    let gw = t.gateway;
    let mut s = String::new();
    // `table` then `delete table` makes the delete succeed whether or not it existed; the
    // new definition follows in the same transaction, so the swap is atomic.
    let _ = writeln!(s, "table inet {name} {{ }}\ndelete table inet {name}");
    let _ = writeln!(s, "table inet {name} {{");
    counter(&mut s, "spoofed", t.counters);
    counter(&mut s, "to_host", t.counters);
    counter(&mut s, "inbound", t.counters);
    for env in t.envs {
        counter(&mut s, &format!("ok_{}", env.index), t.counters);
        counter(&mut s, &format!("drop_{}", env.index), t.counters);
    }
    let sources: Vec<String> = t
        .envs
        .iter()
        .map(|e| format!("\"{}\" . {}", e.ifname, e.address))
        .collect();
    let _ = writeln!(
        s,
        "  set sources {{ type ifname . ipv4_addr;{} }}",
        elements(&sources)
    );
    let routers: Vec<String> = t
        .envs
        .iter()
        .filter(|e| e.router)
        .map(|e| format!("\"{}\"", e.ifname))
        .collect();
    let _ = writeln!(s, "  set routers {{ type ifname;{} }}", elements(&routers));
    let dns: Vec<String> = t
        .envs
        .iter()
        .filter(|e| !matches!(e.mode, Mode::Via { .. }))
        .map(|e| format!("\"{}\" . {}", e.ifname, e.address))
        .collect();
    let _ = writeln!(
        s,
        "  set dns_clients {{ type ifname . ipv4_addr;{} }}",
        elements(&dns)
    );
    let dispatch: Vec<String> = t
        .envs
        .iter()
        .map(|e| format!("\"{}\" : jump env_{}", e.ifname, e.index))
        .collect();
    let _ = writeln!(
        s,
        "  map envs {{ type ifname : verdict;{} }}",
        elements(&dispatch)
    );
    for env in t.envs {
        if let Mode::Allow(entries) = &env.mode {
            let items: Vec<String> = entries
                .iter()
                .map(|(a, len, lo, hi)| {
                    let port = if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    };
                    format!("{a}/{len} . {port}")
                })
                .collect();
            let _ = writeln!(
                s,
                "  set allow_{} {{ type ipv4_addr . inet_service; flags interval;{} }}",
                env.index,
                elements(&items)
            );
        }
    }

    // Forwarded traffic from and to envs. Everything from an env is decided in from_env
    // (which always ends in a verdict); traffic into an env is only ever a reply.
    let _ = writeln!(
        s,
        "  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname {any} jump from_env
    oifname {any} ct state established,related accept
    oifname {any} counter name inbound drop"
    );
    for uplink in t.uplinks {
        let _ = writeln!(s, "    iifname \"{uplink}\" oifname != {any} drop");
    }
    let _ = writeln!(s, "  }}");
    // Anti-spoofing: an env speaks only from its own address on its own interface. A router
    // also relays the replies of flows it carries for others (conntrack knows them).
    let _ = writeln!(
        s,
        "  chain from_env {{
    meta nfproto ipv6 counter name spoofed drop
    iifname . ip saddr @sources iifname vmap @envs
    iifname @routers ct direction reply accept
    counter name spoofed drop
  }}"
    );
    for env in t.envs {
        let i = env.index;
        let ok = format!("counter name ok_{i}");
        let drop = format!("counter name drop_{i}");
        let _ = writeln!(
            s,
            "  chain env_{i} {{\n    ct state established,related accept"
        );
        for (addr, port) in &env.reach {
            let _ = writeln!(
                s,
                "    meta l4proto {{ tcp, udp }} ip daddr {addr} th dport {port} {ok} accept"
            );
        }
        if let Mode::Via { address, .. } = &env.mode {
            let _ = writeln!(s, "    ip daddr {address} {ok} accept");
        }
        let _ = writeln!(s, "    ip daddr {subnet} {drop} drop");
        match &env.mode {
            Mode::Nat => {
                let _ = writeln!(s, "    {ok} accept");
            }
            Mode::Allow(_) => {
                let _ = writeln!(
                    s,
                    "    meta l4proto {{ tcp, udp }} ip daddr . th dport @allow_{i} {ok} accept"
                );
            }
            Mode::Proxy(addr, port) => {
                let _ = writeln!(s, "    ip daddr {addr} tcp dport {port} {ok} accept");
            }
            Mode::Via { ifname, .. } => {
                let _ = writeln!(s, "    oifname \"{ifname}\" {ok} accept");
            }
        }
        let _ = writeln!(s, "    {drop} drop\n  }}");
    }
    // The host itself: envs reach only the DNS forwarder on the gateway address.
    let _ = writeln!(
        s,
        "  chain input {{
    type filter hook input priority filter; policy accept;
    iifname {any} jump env_input
  }}
  chain env_input {{
    meta nfproto ipv6 drop
    ct state established,related accept
    iifname . ip saddr @dns_clients ip daddr {gw} meta l4proto {{ tcp, udp }} th dport 53 accept
    counter name to_host drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} oifname != {any} masquerade
  }}
}}"
    );
    s
}

#[cfg(test)]
mod golden {
    //! The rendered table of representative policies, compared byte for byte with the
    //! committed files in `tests/golden/`. A change to the firewall shows up as a diff of
    //! those files in review. After an intended change, rewrite them with
    //! `UPDATE_GOLDEN=1 cargo test -p verse-net golden` and read the diff before committing.
    //! As root, each file is also checked by `nft --check`, so the text is one the kernel takes.

    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    const TABLE: &str = "verse_1a2b";
    const PREFIX: &str = "vs1a2b";
    const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 213, 7, 0);

    fn addr(index: u16) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 7, index as u8)
    }

    fn env(name: &str, index: u16, mode: Mode) -> EnvPolicy {
        EnvPolicy {
            name: name.into(),
            index,
            ifname: format!("{PREFIX}{index}"),
            address: addr(index),
            mode,
            reach: Vec::new(),
            router: false,
        }
    }

    fn render(envs: &[EnvPolicy], counters: &[(&str, u64, u64)], uplinks: &[&str]) -> String {
        let counters: BTreeMap<String, (u64, u64)> = counters
            .iter()
            .map(|(n, p, b)| (n.to_string(), (*p, *b)))
            .collect();
        let uplinks: Vec<String> = uplinks.iter().map(|u| u.to_string()).collect();
        table(&TableInput {
            name: TABLE,
            ifprefix: PREFIX,
            subnet: (SUBNET, 24),
            gateway: addr(1),
            envs,
            counters: &counters,
            uplinks: &uplinks,
        })
    }

    fn golden_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{name}.nft"))
    }

    /// Compares `text` with `tests/golden/NAME.nft` (or rewrites it under UPDATE_GOLDEN=1),
    /// then has nft check it when it can.
    fn assert_golden(name: &str, text: &str) {
        let path = golden_path(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        } else {
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; write it with UPDATE_GOLDEN=1 cargo test -p verse-net golden",
                    path.display()
                )
            });
            if want != text {
                panic!(
                    "the rendered table differs from {}\n--- golden\n{want}\n--- rendered\n{text}\n\
                     If the change is intended: UPDATE_GOLDEN=1 cargo test -p verse-net golden",
                    path.display()
                );
            }
        }
        nft_check(name, text);
    }

    /// `nft --check`: parses and validates the transaction in the kernel without committing
    /// it. Needs root (CAP_NET_ADMIN) and nft; skips loudly without them, fails under CI=true.
    fn nft_check(name: &str, text: &str) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let nft = Command::new("nft").arg("--version").output().is_ok();
        if !(root && nft) {
            let why = if root {
                "nft is not installed"
            } else {
                "not root"
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and `nft --check` cannot run: {why}");
            }
            eprintln!("\n!!! SKIPPED nft --check of {name}.nft: {why} !!!\n");
            return;
        }
        let mut child = Command::new("nft")
            .args(["--check", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft refuses {name}.nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Envs with `network = "none"` have no policy, so a root where no env is networked
    /// renders a table that lets nothing in or out of an env interface.
    #[test]
    fn golden_no_networked_env() {
        assert_golden("none", &render(&[], &[], &[]));
    }

    /// `"nat"`: anything outside the subnet; counters carried over from the previous table.
    #[test]
    fn golden_nat() {
        let text = render(
            &[env("web", 2, Mode::Nat)],
            &[("ok_2", 12, 3400), ("drop_2", 1, 60), ("spoofed", 2, 120)],
            &["eth0"],
        );
        assert!(text.contains("counter ok_2 { packets 12 bytes 3400 }"));
        assert_golden("nat", &text);
    }

    /// `{ allow = [...] }` with a network (`10.1.2.0/24:*`), a host (`192.0.2.7:443`), a port
    /// range (`198.51.100.9:8000-8080`), and `reach` to another env's port.
    #[test]
    fn golden_allow_list_with_reach() {
        let mut api = env(
            "api",
            3,
            Mode::Allow(vec![
                (Ipv4Addr::new(10, 1, 2, 0), 24, 1, 65535),
                (Ipv4Addr::new(192, 0, 2, 7), 32, 443, 443),
                (Ipv4Addr::new(198, 51, 100, 9), 32, 8000, 8080),
            ]),
        );
        api.reach = vec![(addr(4), 5432)];
        let db = env("db", 4, Mode::Nat);
        let text = render(&[api, db], &[], &["eth0", "wlan0"]);
        assert!(text.contains("10.1.2.0/24 . 1-65535, 192.0.2.7/32 . 443"));
        assert_golden("allow", &text);
    }

    /// An allow list that resolved to nothing: the env reaches nothing but the DNS forwarder.
    #[test]
    fn golden_empty_allow_list() {
        assert_golden(
            "allow-empty",
            &render(&[env("cut", 2, Mode::Allow(Vec::new()))], &[], &["eth0"]),
        );
    }

    /// `{ proxy = "socks5://10.0.0.5:1080" }`: one TCP endpoint only.
    #[test]
    fn golden_proxy() {
        let text = render(
            &[env(
                "browser",
                5,
                Mode::Proxy(Ipv4Addr::new(10, 0, 0, 5), 1080),
            )],
            &[],
            &["eth0"],
        );
        assert_golden("proxy", &text);
    }

    /// `{ via = "tor" }`: the client sends everything to its router and gets no DNS from the
    /// host; the router (a `router = true` env on `"nat"`) relays the replies.
    #[test]
    fn golden_via_router() {
        let mut tor = env("tor", 2, Mode::Nat);
        tor.router = true;
        let work = env(
            "work",
            3,
            Mode::Via {
                ifname: format!("{PREFIX}2"),
                address: addr(2),
            },
        );
        let text = render(&[tor, work], &[], &["eth0"]);
        let line = |set: &str| {
            text.lines()
                .find(|l| l.contains(&format!("set {set} ")))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("dns_clients").contains("\"vs1a2b2\""));
        assert!(!line("dns_clients").contains("\"vs1a2b3\""));
        assert!(line("routers").contains("\"vs1a2b2\""));
        assert_golden("via", &text);
    }

    /// A router whose own way out is an allow list, with no client yet.
    #[test]
    fn golden_router_side() {
        let mut vpn = env(
            "vpn",
            6,
            Mode::Allow(vec![(Ipv4Addr::new(203, 0, 113, 10), 32, 51820, 51820)]),
        );
        vpn.router = true;
        assert_golden("router", &render(&[vpn], &[], &["eth0"]));
    }

    /// Chaining: a client via a router that is itself routed via another router.
    #[test]
    fn golden_via_a_chain_of_routers() {
        let mut outer = env("outer", 2, Mode::Nat);
        outer.router = true;
        let mut inner = env(
            "inner",
            3,
            Mode::Via {
                ifname: format!("{PREFIX}2"),
                address: addr(2),
            },
        );
        inner.router = true;
        let client = env(
            "client",
            4,
            Mode::Via {
                ifname: format!("{PREFIX}3"),
                address: addr(3),
            },
        );
        assert_golden(
            "via-chain",
            &render(&[outer, inner, client], &[], &["eth0"]),
        );
    }
}
