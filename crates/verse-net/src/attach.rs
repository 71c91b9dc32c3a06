//! Wiring one env's network namespace, from the host, before the env's command runs.

use crate::{ENV_IFNAME, EnvNet, NetError, run};

/// The router's own table inside its namespace: masquerade what it forwards, and count it
/// (`verse net show` and tests read the counter to see traffic pass through the router).
const ROUTER_TABLE: &str = "
table ip verse_router {
  counter forwarded { }
  chain forward { type filter hook forward priority filter; policy accept; counter name forwarded; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname \"eth0\" masquerade; }
}
";

/// Creates the veth pair of the env whose init is `pid` and configures both ends: the host
/// end gets the gateway address, a /32 route to the env and IPv4 forwarding (only on this
/// interface); inside, `eth0` gets the env's /32 address and a default route via the gateway,
/// and IPv6 is disabled so that no path exists that the IPv4 policy does not cover.
///
/// Runs as host root on the env's namespace from outside: the env's own root has no
/// `CAP_NET_ADMIN` there (the namespace belongs to the initial user namespace) and can
/// undo none of it. On failure the host end is deleted (which removes its peer too).
pub fn attach(pid: i32, net: &EnvNet) -> Result<(), NetError> {
    attach_netns(&format!("/proc/{pid}/ns/net"), net)
}

/// [`attach`] to the network namespace at `netns` (a `/proc/PID/ns/net` or a file that
/// namespace is bind-mounted on, e.g. the one a gvisor env's shim prepares for runsc).
pub fn attach_netns(netns: &str, net: &EnvNet) -> Result<(), NetError> {
    let result = attach_inner(netns, net);
    if result.is_err() {
        let _ = run("ip", &["link", "del", &net.host_ifname], None);
    }
    result
}

fn attach_inner(netns: &str, net: &EnvNet) -> Result<(), NetError> {
    let host = net.host_ifname.as_str();
    let gw = net.gateway.to_string();
    let addr = net.address.to_string();
    // A stale host end (an env that died with the shim killed) would block the name.
    let _ = run("ip", &["link", "del", host], None);
    run(
        "ip",
        &[
            "link", "add", host, "type", "veth", "peer", "name", ENV_IFNAME, "netns", netns,
        ],
        None,
    )?;
    configure_host_end(net)?;

    let mut script = format!(
        "set -e
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ip addr add {addr}/32 dev {ENV_IFNAME}
ip link set {ENV_IFNAME} up
ip route add {gw} dev {ENV_IFNAME} scope link
ip route add default via {gw} dev {ENV_IFNAME}
"
    );
    if net.router {
        script.push_str(
            "echo 1 > /proc/sys/net/ipv4/ip_forward
echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects
echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects
",
        );
    }
    let ns = format!("--net={netns}");
    run("nsenter", &[&ns, "sh", "-c", &script], None)?;
    if net.router {
        run("nsenter", &[&ns, "nft", "-f", "-"], Some(ROUTER_TABLE))?;
    }
    Ok(())
}

/// The host end of an env's link (a veth, or a vm env's tap): no IPv6, the gateway address,
/// up, a /32 route to the env, and IPv4 forwarding for packets arriving on it only (the
/// host's global switch and other interfaces are left as they are).
pub(crate) fn configure_host_end(net: &EnvNet) -> Result<(), NetError> {
    let host = net.host_ifname.as_str();
    let gw = net.gateway.to_string();
    let addr = net.address.to_string();
    write_sysctl(&format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1")?;
    run(
        "ip",
        &["addr", "add", &format!("{gw}/32"), "dev", host],
        None,
    )?;
    run("ip", &["link", "set", host, "up"], None)?;
    run(
        "ip",
        &[
            "route",
            "replace",
            &format!("{addr}/32"),
            "dev",
            host,
            "scope",
            "link",
        ],
        None,
    )?;
    write_sysctl(&format!("/proc/sys/net/ipv4/conf/{host}/forwarding"), "1")
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path, value)
        .map_err(|e| NetError::Other(format!("writing {value} to {path}: {e}")))
}

/// Packets the router env `pid` has forwarded (its `verse_router` counter), if it is a router.
pub fn router_forwarded(pid: i32) -> Option<u64> {
    let ns = format!("--net=/proc/{pid}/ns/net");
    let out = run(
        "nsenter",
        &[
            &ns,
            "nft",
            "-j",
            "list",
            "counter",
            "ip",
            "verse_router",
            "forwarded",
        ],
        None,
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v["nftables"]
        .as_array()?
        .iter()
        .find_map(|o| o["counter"]["packets"].as_u64())
}

/// Deletes the env's veth pair (by its host end), if it still exists.
pub fn detach(net: &EnvNet) {
    if std::path::Path::new("/sys/class/net")
        .join(&net.host_ifname)
        .exists()
    {
        let _ = run("ip", &["link", "del", &net.host_ifname], None);
    }
}
