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
