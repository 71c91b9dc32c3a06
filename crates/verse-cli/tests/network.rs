//! Network policy, end to end: real envs on real veths, with the "outside world" built from
//! network namespaces the tests create (no traffic leaves the machine).

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `ip`, `nft` and `nsenter` are here; skips loudly (fails under CI=true) otherwise.
fn can_network() -> bool {
    if !can_run() {
        return false;
    }
    let missing: Vec<&str> = ["ip", "nft", "nsenter"]
        .into_iter()
        .filter(|t| {
            Command::new(t)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {missing:?} are missing (scripts/install-deps.sh installs them)");
    }
    eprintln!("\n!!! SKIPPED: {missing:?} not installed !!!\n");
    false
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A stand-in for a host on the internet: a network namespace reached from the host over a
/// veth, running busybox httpd on port 8080 that answers with its own name.
struct Outside {
    ns: String,
    host_if: String,
    pub addr: String,
    servers: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Outside {
    fn new(label: &str) -> Outside {
        let n = (std::process::id() as usize * 7 + label.len() * 31 + label.as_bytes()[0] as usize)
            % 200
            + 20;
        let ns = format!("vtest-{label}-{}", std::process::id());
        let host_if = format!("vto{}{}", &label[..label.len().min(3)], n);
        let addr = format!("172.31.{n}.2");
        let (ok, out) = sh(&format!(
            "set -e
ip netns add {ns}
ip link add {host_if} type veth peer name eth0 netns {ns}
ip addr add 172.31.{n}.1/24 dev {host_if}
ip link set {host_if} up
echo 1 > /proc/sys/net/ipv4/conf/{host_if}/forwarding
ip -n {ns} addr add {addr}/24 dev eth0
ip -n {ns} link set eth0 up
ip -n {ns} link set lo up
ip -n {ns} route add default via 172.31.{n}.1"
        ));
        assert!(ok, "building the outside namespace: {out}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), format!("outside-{label}\n")).unwrap();
        let mut outside = Outside {
            ns,
            host_if,
            addr,
            servers: Vec::new(),
            dir,
        };
        outside.serve_http(8080);
        outside
    }

    fn serve_http(&mut self, port: u16) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "busybox", "httpd", "-f", "-p"])
            .arg(port.to_string())
            .arg("-h")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if sh(&format!(
                "ip netns exec {} curl -sf -m 1 -o /dev/null http://127.0.0.1:{port}/",
                self.ns
            ))
            .0
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("httpd did not come up in {}", self.ns);
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = sh(&format!(
            "ip link del {}; ip netns del {}",
            self.host_if, self.ns
        ));
    }
}

/// `wget` from inside the env, given 2 s (busybox 1.35 wget -T crashes); the body or None.
fn fetch(verse: &Verse, env: &str, url: &str) -> Option<String> {
    fetch_within(verse, env, url, 2)
}

/// [`fetch`] given `secs` (gVisor's ptrace platform makes everything slower).
fn fetch_within(verse: &Verse, env: &str, url: &str, secs: u32) -> Option<String> {
    let (code, out, _) = verse.sh(env, &format!("timeout {secs} wget -q -O - {url}"));
    (code == 0).then_some(out)
}

/// Nothing of this root's networking is on the host.
fn assert_clean(verse: &Verse) {
    let tag = verse_tag(verse);
    let (_, ruleset) = sh("nft list tables");
    assert!(
        !ruleset.contains(&format!("verse_{tag}")),
        "the table is left behind:\n{ruleset}"
    );
    let (_, links) = sh("ip -o link");
    assert!(
        !links.contains(&format!("vs{tag}")),
        "veths are left behind:\n{links}"
    );
    let (_, rules) = sh("ip rule");
    assert!(
        !rules.contains(&format!("vs{tag}")),
        "ip rules left:\n{rules}"
    );
}

fn verse_tag(verse: &Verse) -> String {
    let canonical = std::fs::canonicalize(verse.root()).unwrap();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in canonical.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let instance = format!("verse-{hash:08x}");
    let mut h: u32 = 0x811c_9dc5;
    for byte in instance.as_bytes() {
        h ^= u32::from(*byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", h & 0xff_ffff)
}

fn rm_all(verse: &Verse, names: &[&str]) {
    for name in names {
        verse.ok(&["rm", name]);
    }
}

#[test]
fn nat_env_reaches_outside_but_not_the_host_nor_other_envs() {
    if !can_network() {
        return;
    }
    let outside = Outside::new("nat");
    let dns = FakeDns::start(&outside.addr);
    let verse = Verse::start_with_env(&[("VERSE_DNS_UPSTREAM", &dns.addr)]);
    verse.apply(
        r#"
[env.web]
image = "busybox"
network = "nat"

[env.other]
image = "busybox"
network = "nat"
command = "busybox httpd -f -p 8080 -h /etc"

[env.closed]
image = "busybox"
"#,
    );
    let url = format!("http://{}:8080/", outside.addr);
    assert_eq!(fetch(&verse, "web", &url).as_deref(), Some("outside-nat\n"));
    // A loopback-only env has no way out.
    assert_eq!(fetch(&verse, "closed", &url), None);

    let net: serde_json::Value =
        serde_json::from_str(&verse.ok(&["net", "show", "web", "--json"])).unwrap();
    assert_eq!(net["mode"], "nat");
    let gateway = net["gateway"].as_str().unwrap().to_string();
    let other: serde_json::Value =
        serde_json::from_str(&verse.ok(&["net", "show", "other", "--json"])).unwrap();
    let other_addr = other["address"].as_str().unwrap().to_string();
    // The other env serves, but web may not connect to it.
    assert_eq!(
        fetch(&verse, "web", &format!("http://{other_addr}:8080/hostname")),
        None,
        "an env reached another env"
    );
    // The host's services: the gateway address and the host's own uplink address.
    let host_server = Command::new("busybox")
        .args(["httpd", "-f", "-p", "0.0.0.0:18081", "-h", "/etc"])
        .spawn()
        .unwrap();
    let mut host_server = scopeguard(host_server);
    std::thread::sleep(Duration::from_millis(200));
    assert!(sh("curl -sf -m 2 -o /dev/null http://127.0.0.1:18081/hostname").0);
    assert_eq!(
        fetch(&verse, "web", &format!("http://{gateway}:18081/hostname")),
        None,
        "an env reached a service on the host"
    );
    let outside_gw = outside.addr.replace(".2", ".1");
    assert_eq!(
        fetch(
            &verse,
            "web",
            &format!("http://{outside_gw}:18081/hostname")
        ),
        None,
        "an env reached a service on the host's other address"
    );
    let _ = host_server.0.kill();

    // Root inside cannot touch its network: no CAP_NET_ADMIN over the namespace.
    let (code, _, err) = verse.sh("web", "ip addr add 10.9.9.9/32 dev eth0");
    assert_ne!(code, 0, "root inside changed its address");
    assert!(err.to_lowercase().contains("not permitted"), "{err}");
    let (code, _, _) = verse.sh("web", "ip route del default");
    assert_ne!(code, 0, "root inside changed its routes");
    // No packet sockets: no ARP spoofing of the gateway or of another env
    // (there is no shared L2 to spoof on either: each env has its own routed
    // /32 veth).
    for target in [gateway.as_str(), other_addr.as_str()] {
        let (code, _, _) = verse.sh("web", &format!("arping -c1 -w1 -U -I eth0 {target}"));
        assert_ne!(code, 0, "root inside sent ARP for {target}");
    }
    let (_, resolv, _) = verse.sh("web", "cat /etc/resolv.conf");
    assert!(
        resolv.contains(&format!("nameserver {gateway}")),
        "{resolv}"
    );
    // DNS: the env asks the gateway, the daemon asks the host's resolver (here a fake one).
    assert_eq!(
        fetch(&verse, "web", "http://outside.test:8080/").as_deref(),
        Some("outside-nat\n"),
        "name resolution through the gateway failed"
    );
    let (_, v6, _) = verse.sh("web", "cat /proc/sys/net/ipv6/conf/all/disable_ipv6");
    assert_eq!(v6.trim(), "1", "IPv6 is on inside the env");

    let shown = verse.ok(&["net", "show", "web"]);
    assert!(shown.contains("mode:      nat"), "{shown}");
    rm_all(&verse, &["web", "other", "closed"]);
    assert_clean(&verse);
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: Child) -> Guard {
    Guard(c)
}

/// A fake of the host's upstream resolver (there is no internet here): answers every A query
/// with one address.
struct FakeDns {
    addr: String,
}

impl FakeDns {
    fn start(answer: &str) -> FakeDns {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let ip: std::net::Ipv4Addr = answer.parse().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                if n < 12 {
                    continue;
                }
                // Header, then the question up to its end (name, type, class).
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += buf[end] as usize + 1;
                }
                end += 5;
                if end > n {
                    continue;
                }
                let qtype = u16::from_be_bytes([buf[end - 4], buf[end - 3]]);
                let mut out = buf[..end].to_vec();
                out[2] = 0x81;
                out[3] = 0x80;
                out[6] = 0;
                out[7] = u8::from(qtype == 1);
                out[8..12].fill(0);
                if qtype == 1 {
                    out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    out.extend_from_slice(&ip.octets());
                }
                let _ = socket.send_to(&out, from);
            }
        });
        FakeDns { addr }
    }
}

fn net_json(verse: &Verse, env: &str) -> serde_json::Value {
    serde_json::from_str(&verse.ok(&["net", "show", env, "--json"])).unwrap()
}

#[test]
fn allow_lists_admit_only_their_destinations_and_change_live() {
    if !can_network() {
        return;
    }
    let one = Outside::new("one");
    let two = Outside::new("two");
    let mut verse = Verse::start();
    let spec = |allow: &str| {
        format!(
            r#"
[env.a]
image = "busybox"
network = {{ allow = [{allow}] }}
reach = ["srv:8080"]

[env.srv]
image = "busybox"
network = "nat"
command = "echo served-by-srv > /tmp/index.html; busybox httpd -f -p 8080 -h /tmp"
"#
        )
    };
    verse.apply(&spec(&format!("\"{}:8080\"", one.addr)));
    let url_one = format!("http://{}:8080/", one.addr);
    let url_two = format!("http://{}:8080/", two.addr);
    assert_eq!(
        fetch(&verse, "a", &url_one).as_deref(),
        Some("outside-one\n")
    );
    assert_eq!(
        fetch(&verse, "a", &url_two),
        None,
        "a destination not allowed answered"
    );
    // `reach` opens exactly the named env's port.
    let srv = net_json(&verse, "srv")["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fetch(&verse, "a", &format!("http://{srv}:8080/index.html")).as_deref(),
        Some("served-by-srv\n")
    );
    let net = net_json(&verse, "a");
    assert!(
        net["dropped"].as_u64().unwrap() > 0,
        "drops are not counted: {net}"
    );
    assert!(net["allowed"].as_u64().unwrap() >= 2, "{net}");
    let pid = verse.env("a")["pid"].as_u64().unwrap();

    // Live: the other destination, by CIDR, without restarting the env.
    // The /24 of `two` (its address ends in .2; the third octet may too).
    let net = two.addr.rsplit_once('.').unwrap().0;
    let report = verse.apply(&spec(&format!("\"{net}.0/24:*\"")));
    assert!(report.contains("live"), "{report}");
    assert_eq!(
        verse.env("a")["pid"].as_u64().unwrap(),
        pid,
        "the env was restarted"
    );
    assert_eq!(
        fetch(&verse, "a", &url_two).as_deref(),
        Some("outside-two\n")
    );
    assert_eq!(
        fetch(&verse, "a", &url_one),
        None,
        "a removed destination still answers"
    );

    // A name that does not resolve: a positioned error, and nothing changes.
    let file = verse.write_spec("bad.toml", &spec("\"no-such-host.invalid:443\""));
    let out = verse.run(&["apply", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:4:22: ")
            && err.contains(
                "env `a`: network.allow names `no-such-host.invalid`, which does not resolve"
            ),
        "{err}"
    );
    assert_eq!(
        fetch(&verse, "a", &url_two).as_deref(),
        Some("outside-two\n")
    );

    // A restarted daemon reconciles: one table, counters kept, same policy.
    let dropped_before = net_json(&verse, "a")["dropped"].as_u64().unwrap();
    verse.kill_daemon();
    verse.start_daemon();
    let (_, tables) = sh("nft list tables");
    let tag = verse_tag(&verse);
    assert_eq!(
        tables.matches(&format!("verse_{tag}")).count(),
        1,
        "{tables}"
    );
    assert!(net_json(&verse, "a")["dropped"].as_u64().unwrap() >= dropped_before);
    assert_eq!(fetch(&verse, "a", &url_one), None);
    assert_eq!(
        fetch(&verse, "a", &url_two).as_deref(),
        Some("outside-two\n")
    );

    rm_all(&verse, &["a", "srv"]);
    assert_clean(&verse);
}

#[test]
fn proxy_envs_reach_only_their_proxy() {
    if !can_network() {
        return;
    }
    if Command::new("microsocks").arg("-h").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and microsocks is missing (scripts/install-deps.sh --test)");
        }
        eprintln!("\n!!! SKIPPED: microsocks (a SOCKS5 server) is not installed !!!\n");
        return;
    }
    let mut outside = Outside::new("proxy");
    let socks = Command::new("ip")
        .args(["netns", "exec", &outside.ns, "microsocks", "-p", "1080"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    outside.servers.push(socks);
    std::thread::sleep(Duration::from_millis(200));
    let verse = Verse::start();
    verse.apply(&format!(
        r#"
[env.p]
image = "busybox"
network = {{ proxy = "socks5://{}:1080" }}
"#,
        outside.addr
    ));
    let (_, proxy, _) = verse.sh("p", "echo $ALL_PROXY");
    assert_eq!(proxy.trim(), format!("socks5://{}:1080", outside.addr));
    // Direct: dropped.
    assert_eq!(
        fetch(&verse, "p", &format!("http://{}:8080/", outside.addr)),
        None
    );
    // Through the proxy: a SOCKS5 CONNECT to the same server, spoken with printf and nc.
    let octets: Vec<String> = outside
        .addr
        .split('.')
        .map(|o| format!("\\{:03o}", o.parse::<u8>().unwrap()))
        .collect();
    let script = format!(
        "(printf '\\005\\001\\000'; sleep 0.3; printf '\\005\\001\\000\\001{}\\037\\220'; sleep 0.3; printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | timeout 4 nc {} 1080",
        octets.join(""),
        outside.addr
    );
    let (_, out, _) = verse.sh("p", &script);
    assert!(
        out.contains("outside-proxy"),
        "no answer through the proxy: {out:?}"
    );
    let net = net_json(&verse, "p");
    assert_eq!(net["mode"], "proxy");
    assert!(net["dropped"].as_u64().unwrap() > 0);
    verse.ok(&["rm", "p"]);
    assert_clean(&verse);
}

/// Packets the router env `env` forwarded (its own nft counter, read from outside).
fn forwarded(verse: &Verse, env: &str) -> u64 {
    let pid = verse.env(env)["pid"].as_u64().unwrap();
    let (ok, out) = sh(&format!(
        "nsenter --net=/proc/{pid}/ns/net nft -j list counter ip verse_router forwarded"
    ));
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["counter"]["packets"].as_u64())
        .unwrap()
}

#[test]
fn via_chains_carry_traffic_through_each_router_and_cut_off_without_them() {
    if !can_network() {
        return;
    }
    let outside = Outside::new("via");
    let verse = Verse::start();
    verse.apply(
        r#"
[env.edge]
image = "busybox"
router = true
network = "nat"

[env.middle]
image = "busybox"
router = true
network = { via = "edge" }

[env.client]
image = "busybox"
network = { via = "middle" }
"#,
    );
    let url = format!("http://{}:8080/", outside.addr);
    let (edge0, middle0) = (forwarded(&verse, "edge"), forwarded(&verse, "middle"));
    assert_eq!(
        fetch(&verse, "client", &url).as_deref(),
        Some("outside-via\n")
    );
    assert!(
        forwarded(&verse, "middle") > middle0,
        "the middle router saw nothing"
    );
    assert!(
        forwarded(&verse, "edge") > edge0,
        "the edge router saw nothing"
    );

    // Cut the middle router: the client is cut off, not routed around it.
    verse.ok(&["down", "middle"]);
    assert_eq!(
        fetch(&verse, "client", &url),
        None,
        "traffic bypassed the stopped router"
    );
    verse.ok(&["up", "middle"]);
    assert_eq!(
        fetch(&verse, "client", &url).as_deref(),
        Some("outside-via\n")
    );

    rm_all(&verse, &["client", "middle", "edge"]);
    assert_clean(&verse);
}

/// vm and gvisor envs get the same host-enforced policy as containers: a vm env on a tap
/// (the guest agent configures eth0), a gvisor env on a veth in the namespace its shim
/// prepares. One daemon, one boot: allow-list admits only its destination and changes live;
/// nat reaches outside; DNS through the gateway; drops counted; nothing left after rm.
#[test]
fn vm_and_gvisor_envs_get_the_same_host_enforced_policy() {
    if !can_network() || !backend_available("vm") || !backend_available("gvisor") {
        return;
    }
    let mut outside = Outside::new("vmg");
    outside.serve_http(8081);
    let dns = FakeDns::start(&outside.addr);
    let verse = Verse::start_with_env(&[
        ("VERSE_DNS_UPSTREAM", &dns.addr),
        ("VERSE_NET_WATCH_MS", "200"),
    ]);
    let spec = |allow: &str| {
        format!(
            r#"
[env.vm]
image = "busybox"
backend = "vm"
accel = "tcg"
network = {{ allow = [{allow}] }}

[env.gv]
image = "busybox"
backend = "gvisor"
network = "nat"
"#
        )
    };
    let applied = verse.apply(&spec(&format!("\"{}:8080\"", outside.addr)));
    assert!(
        !applied.contains("FAILED"),
        "{applied}\n{}",
        verse.daemon_log()
    );
    let url = |port: u16| format!("http://{}:{port}/", outside.addr);

    // vm: only the allowed destination answers; the rest is dropped and counted.
    assert_eq!(
        fetch(&verse, "vm", &url(8080)).as_deref(),
        Some("outside-vmg\n"),
        "{}\n{}",
        verse.ok(&["net", "show", "vm"]),
        verse.daemon_log()
    );
    assert_eq!(
        fetch(&verse, "vm", &url(8081)),
        None,
        "a destination not allowed answered"
    );
    let net = net_json(&verse, "vm");
    assert!(net["dropped"].as_u64().unwrap() > 0, "{net}");
    // The drops reach the event stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    let drop_event = loop {
        let events = verse.ok(&["events", "--env", "vm", "--json"]);
        if let Some(line) = events.lines().find(|l| l.contains("\"net-drop\"")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no net-drop event: {events}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(drop_event.contains("allow-list dropped"), "{drop_event}");
    let gateway = net["gateway"].as_str().unwrap().to_string();
    let (_, resolv, _) = verse.sh("vm", "cat /etc/resolv.conf");
    assert!(
        resolv.contains(&format!("nameserver {gateway}")),
        "{resolv}"
    );
    let (_, nics, _) = verse.sh("vm", "ls /sys/class/net");
    assert_eq!(nics.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    // Root in the guest owns its kernel, so it can change its address, but the host's
    // anti-spoofing drops what it sends from any other address.
    let (code, _, err) = verse.sh(
        "vm",
        &format!(
            "ip addr add 10.77.0.9/32 dev eth0 && ip route replace default via {gateway} dev eth0 src 10.77.0.9"
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fetch(&verse, "vm", &url(8080)),
        None,
        "a spoofed source address got through"
    );
    let (code, _, err) = verse.sh(
        "vm",
        &format!(
            "ip route replace default via {gateway} dev eth0 && ip addr del 10.77.0.9/32 dev eth0"
        ),
    );
    assert_eq!(code, 0, "{err}");

    // Live: the other port, without restarting the VM.
    let pid = verse.env("vm")["pid"].as_u64().unwrap();
    let report = verse.apply(&spec(&format!("\"{}:8081\"", outside.addr)));
    assert!(report.contains("live"), "{report}");
    assert_eq!(verse.env("vm")["pid"].as_u64().unwrap(), pid);
    assert_eq!(
        fetch(&verse, "vm", &url(8081)).as_deref(),
        Some("outside-vmg\n")
    );
    assert_eq!(fetch(&verse, "vm", &url(8080)), None);

    // Hibernated and resumed (QMP migration to a file): the guest comes back
    // on a new tap of the same name, under the same policy.
    assert_eq!(verse.ok(&["hibernate", "vm"]).trim(), "vm: hibernated");
    assert_eq!(verse.ok(&["resume", "vm"]).trim(), "vm: running");
    assert_eq!(
        fetch_within(&verse, "vm", &url(8081), 5).as_deref(),
        Some("outside-vmg\n"),
        "no way out after resume:\n{}",
        verse.daemon_log_tail(20)
    );
    assert_eq!(fetch(&verse, "vm", &url(8080)), None);

    // gvisor: nat reaches outside, by name through the gateway's DNS too. (nc, not wget:
    // Debian's runsc 20221219 with host networking answers busybox wget's buffered read
    // with EAGAIN, a gVisor bug; plain reads work.)
    let nc_get = |host: &str, port: u16| {
        let (code, out, err) = verse.sh(
            "gv",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc {host} {port}"),
        );
        (
            code == 0 && out.ends_with("\r\n\r\noutside-vmg\n"),
            format!("{code} {out} {err}"),
        )
    };
    let (ok, said) = nc_get(&outside.addr, 8080);
    assert!(ok, "{said}\n{}", verse.ok(&["net", "show", "gv"]));
    let (ok, said) = nc_get("outside.test", 8081);
    assert!(ok, "name resolution through the gateway failed: {said}");

    rm_all(&verse, &["vm", "gv"]);
    assert_clean(&verse);
}

/// A networked env hibernates and resumes: its processes come back with their
/// memory, its network is wired again, and the host's policy still holds.
#[test]
fn a_networked_env_hibernates_and_resumes_with_its_network_and_policy() {
    if !can_network() || !have_criu() {
        return;
    }
    let outside = Outside::new("hib");
    let verse = Verse::start();
    verse.apply(
        r#"
[env.sleeper]
image = "busybox"
network = "nat"
command = "s=$(cat /proc/sys/kernel/random/uuid); while :; do echo $s > /tmp/secret; sleep 0.2; done"

[env.other]
image = "busybox"
network = "nat"
command = "busybox httpd -f -p 8080 -h /etc"
"#,
    );
    let url = format!("http://{}:8080/", outside.addr);
    assert_eq!(
        fetch(&verse, "sleeper", &url).as_deref(),
        Some("outside-hib\n")
    );
    let secret = verse.sh("sleeper", "cat /tmp/secret").1;
    let address = net_json(&verse, "sleeper")["address"].clone();

    let out = verse.ok(&["hibernate", "sleeper"]);
    assert!(out.contains("sleeper: hibernated"), "{out}");
    assert_eq!(verse.env("sleeper")["state"], "hibernated");
    let out = verse.ok(&["resume", "sleeper"]);
    assert!(out.contains("sleeper: running"), "{out}");

    // The same processes (the secret is only in the shell's memory)...
    assert_eq!(verse.sh("sleeper", "cat /tmp/secret").1, secret);
    // ...on the same address, out to the world again, and still kept from the other env.
    assert_eq!(net_json(&verse, "sleeper")["address"], address);
    assert_eq!(
        fetch_within(&verse, "sleeper", &url, 5).as_deref(),
        Some("outside-hib\n"),
        "no way out after resume:\n{}",
        verse.daemon_log_tail(20)
    );
    let other = net_json(&verse, "other")["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fetch(&verse, "sleeper", &format!("http://{other}:8080/hostname")),
        None,
        "after resume the env reached another env"
    );
    rm_all(&verse, &["sleeper", "other"]);
    assert_clean(&verse);
}
