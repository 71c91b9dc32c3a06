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
    let (code, out, _) = verse.sh(env, &format!("timeout 2 wget -q -O - {url}"));
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
    let verse = Verse::start();
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
    let (_, resolv, _) = verse.sh("web", "cat /etc/resolv.conf");
    assert!(
        resolv.contains(&format!("nameserver {gateway}")),
        "{resolv}"
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
