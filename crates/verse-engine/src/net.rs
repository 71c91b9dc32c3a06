//! Network policy: from the envs' plans to the host's rules (via `verse_net`).

use std::net::{Ipv4Addr, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;

use verse_api::{Diagnostic, NetInfo};
use verse_net::{EnvPolicy, Mode};
use verse_spec::{DestHost, Network, Spec};

use crate::Engine;
use crate::db::EnvRow;
use crate::error::{EngineError, EngineResult};

/// One rule swap at a time (apply, start, rm and the name refresher all sync).
static SYNC: Mutex<()> = Mutex::new(());

/// IPv4 addresses of `name`, by the host's resolver.
fn resolve(name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let addrs: Vec<Ipv4Addr> = (name, 0u16)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    if addrs.is_empty() {
        return Err("it has no IPv4 address".into());
    }
    Ok(addrs)
}

fn resolve_host(host: &DestHost) -> Result<Vec<(Ipv4Addr, u8)>, String> {
    match host {
        DestHost::Net(a, len) => Ok(vec![(*a, *len)]),
        DestHost::Name(n) => Ok(resolve(n)?.into_iter().map(|a| (a, 32)).collect()),
    }
}

/// The proxy's resolved address and port, and the URL the env is given.
pub fn proxy_endpoint(url: &str) -> Result<(Ipv4Addr, u16, String), String> {
    let proxy = verse_spec::parse_proxy(url)?;
    let (addr, _) = resolve_host(&proxy.host)?
        .into_iter()
        .next()
        .ok_or("no address")?;
    Ok((
        addr,
        proxy.port,
        format!("{}://{addr}:{}", proxy.scheme, proxy.port),
    ))
}

/// 1-based (line, column) of the first `"needle"` after `[env.NAME]`.
fn locate(source: &str, env: &str, needle: &str) -> (usize, usize) {
    let quoted = format!("\"{needle}\"");
    let start = source.find(&format!("[env.{env}]")).unwrap_or(0);
    let at = source[start..]
        .find(&quoted)
        .map(|i| i + start)
        .unwrap_or(start);
    let line = source[..at].matches('\n').count() + 1;
    let column = source[..at]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        + 1;
    (line, column)
}

/// Apply-time check of what the spec parser cannot know: every name in `allow` and `proxy`
/// resolves. Nothing is changed when one does not.
pub async fn check_names(spec: &Spec, file_name: &str, source: &str) -> EngineResult<()> {
    let mut wanted = Vec::new();
    for (env, e) in &spec.envs {
        match &e.network {
            Network::Allow(entries) => {
                for entry in entries {
                    if let Ok(d) = verse_spec::parse_destination(entry)
                        && let DestHost::Name(n) = d.host
                    {
                        wanted.push((env.clone(), entry.clone(), n, "network.allow"));
                    }
                }
            }
            Network::Proxy(url) => {
                if let Ok(p) = verse_spec::parse_proxy(url)
                    && let DestHost::Name(n) = p.host
                {
                    wanted.push((env.clone(), url.clone(), n, "network.proxy"));
                }
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let failures = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .filter_map(|(env, entry, name, key)| {
                resolve(&name).err().map(|why| (env, entry, name, key, why))
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(EngineError::internal)?;
    if failures.is_empty() {
        return Ok(());
    }
    let diagnostics: Vec<Diagnostic> = failures
        .into_iter()
        .map(|(env, entry, name, key, why)| {
            let (line, column) = locate(source, &env, &entry);
            Diagnostic {
                file: file_name.to_string(),
                line,
                column,
                message: format!(
                    "env `{env}`: {key} names `{name}`, which does not resolve ({why}); fix the name or write an address"
                ),
            }
        })
        .collect();
    Err(crate::error::rejected(diagnostics))
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("network: {e}"))
}

/// Every networked env's policy, resolved to addresses (names resolved now).
fn policies(daemon: &Engine, rows: &[EnvRow]) -> EngineResult<Vec<EnvPolicy>> {
    let networked: Vec<&EnvRow> = rows
        .iter()
        .filter(|r| r.plan.network != Network::None)
        .collect();
    let mut out = Vec::new();
    for row in &networked {
        let net = daemon
            .net
            .env_net(&row.name, row.plan.router)
            .map_err(internal)?;
        let index = daemon
            .net
            .existing(&row.name)
            .map(|(i, _, _)| i)
            .ok_or_else(|| internal("address vanished"))?;
        let mode = match &row.plan.network {
            Network::None => continue,
            Network::Nat => Mode::Nat,
            Network::Allow(entries) => {
                let mut resolved = Vec::new();
                for entry in entries {
                    let Ok(d) = verse_spec::parse_destination(entry) else {
                        continue;
                    };
                    match resolve_host(&d.host) {
                        Ok(nets) => resolved
                            .extend(nets.into_iter().map(|(a, l)| (a, l, d.ports.0, d.ports.1))),
                        Err(why) => {
                            tracing::warn!(env = %row.name, %entry, "not resolvable now: {why}")
                        }
                    }
                }
                Mode::Allow(resolved)
            }
            Network::Proxy(url) => match proxy_endpoint(url) {
                Ok((addr, port, _)) => Mode::Proxy(addr, port),
                Err(why) => {
                    tracing::warn!(env = %row.name, %url, "proxy not resolvable now: {why}");
                    Mode::Allow(Vec::new())
                }
            },
            Network::Via(router) => {
                let Some(r) = networked.iter().find(|r| &r.name == router) else {
                    // A router without a network: nothing leaves.
                    out.push(EnvPolicy {
                        name: row.name.clone(),
                        index,
                        ifname: net.host_ifname.clone(),
                        address: net.address,
                        mode: Mode::Allow(Vec::new()),
                        reach: Vec::new(),
                        router: row.plan.router,
                    });
                    continue;
                };
                let rn = daemon
                    .net
                    .env_net(&r.name, r.plan.router)
                    .map_err(internal)?;
                Mode::Via {
                    ifname: rn.host_ifname,
                    address: rn.address,
                }
            }
        };
        let mut reach = Vec::new();
        for (other, port) in &row.plan.reach {
            if networked.iter().any(|r| &r.name == other) {
                let o = daemon.net.env_net(other, false).map_err(internal)?;
                reach.push((o.address, *port));
            }
        }
        out.push(EnvPolicy {
            name: row.name.clone(),
            index,
            ifname: net.host_ifname,
            address: net.address,
            mode,
            reach,
            router: row.plan.router,
        });
    }
    Ok(out)
}

/// Makes the host's rules match every env's plan; starts the DNS forwarder when envs have
/// a network. Blocking (runs `nft` and `ip`).
pub fn sync_blocking(daemon: &Engine) -> EngineResult<()> {
    let _guard = SYNC.lock().unwrap_or_else(|e| e.into_inner());
    let rows = daemon.db.envs()?;
    let policies = policies(daemon, &rows)?;
    daemon.net.apply(&policies).map_err(internal)?;
    let mut dns = daemon.dns.lock().unwrap_or_else(|e| e.into_inner());
    if policies.is_empty() {
        *dns = None;
    } else if dns.is_none()
        && let Some(gw) = daemon.net.gateway()
    {
        match verse_net::DnsForwarder::start(gw) {
            Ok(f) => *dns = Some(f),
            Err(e) => tracing::warn!("DNS forwarder on {gw}:53: {e}"),
        }
    }
    Ok(())
}

/// [`sync_blocking`] from async code.
pub async fn sync(daemon: &Engine) -> EngineResult<()> {
    tokio::task::block_in_place(|| sync_blocking(daemon))
}

/// The shim's network config and the extra environment variables (proxy settings).
pub type PreparedNet = (verse_net::EnvNet, Vec<(String, String)>);

/// The resolv.conf bind-mounted into container and gvisor envs. It lives under
/// `run/verse-net/NAME/`, whose parent is traversable (0711) but not listable,
/// rather than in the root-only state directory: CRIU re-creates the env's bind
/// mounts from inside the env's user namespace when it resumes a hibernated env,
/// and needs to reach the file from there.
pub fn resolv_conf(paths: &verse_api::Paths, name: &str) -> std::path::PathBuf {
    paths
        .root
        .join("run/verse-net")
        .join(name)
        .join("resolv.conf")
}

/// Removes the resolv.conf directory of a deleted env.
pub fn remove_resolv_conf(paths: &verse_api::Paths, name: &str) {
    if let Some(dir) = resolv_conf(paths, name).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn write_resolv_conf(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("resolv.conf has a directory");
    let parent = dir.parent().expect("the env's directory has a parent");
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(path, text)
}

/// What the shim needs for env `row`, the resolv.conf to give it and extra environment
/// variables; `None` for loopback-only envs.
pub fn prepare_env(
    daemon: &Engine,
    row: &EnvRow,
    env_dir: &Path,
) -> EngineResult<Option<PreparedNet>> {
    if row.plan.network == Network::None {
        return Ok(None);
    }
    let net = daemon
        .net
        .env_net(&row.name, row.plan.router)
        .map_err(internal)?;
    // Rules first: the env's interface exists only after this.
    sync_blocking(daemon)?;
    let nameserver = match &row.plan.network {
        // DNS of a routed env is its router's business (e.g. Tor's DNSPort).
        Network::Via(router) => daemon
            .net
            .existing(router)
            .map_or(net.gateway, |(_, _, a)| a),
        _ => net.gateway,
    };
    let text = format!("# written by Verse\nnameserver {nameserver}\n");
    write_resolv_conf(&resolv_conf(&daemon.paths, &row.name), &text).map_err(internal)?;
    // A vm env's shim hands it to the guest's agent from the env's directory.
    std::fs::write(env_dir.join("resolv.conf"), &text).map_err(internal)?;
    let mut vars = Vec::new();
    if let Network::Proxy(url) = &row.plan.network {
        let (_, _, env_url) = proxy_endpoint(url).map_err(internal)?;
        for key in ["ALL_PROXY", "all_proxy"] {
            vars.push((key.to_string(), env_url.clone()));
        }
        if env_url.starts_with("http://") {
            for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                vars.push((key.to_string(), env_url.clone()));
            }
        }
    }
    Ok(Some((net, vars)))
}

/// `verse net show NAME`.
pub fn show(daemon: &Engine, row: &EnvRow) -> NetInfo {
    let mode = row.plan.network.mode().to_string();
    let mut info = NetInfo {
        env: row.name.clone(),
        mode,
        address: None,
        gateway: None,
        interface: None,
        policy: Vec::new(),
        rules: Vec::new(),
        allowed: 0,
        dropped: 0,
        router: row.plan.router,
    };
    info.policy = describe(row);
    if let Some((index, ifname, address)) = daemon.net.existing(&row.name) {
        info.address = Some(address.to_string());
        info.gateway = daemon.net.gateway().map(|g| g.to_string());
        info.interface = Some(ifname);
        let c = daemon.net.counters(index);
        info.allowed = c.allowed;
        info.dropped = c.dropped;
        info.rules = daemon.net.env_rules(index);
    }
    info
}

/// The env's policy in words.
fn describe(row: &EnvRow) -> Vec<String> {
    let mut out = Vec::new();
    match &row.plan.network {
        Network::None => out.push("loopback only: no interface but lo".into()),
        Network::Nat => out.push(
            "any destination outside Verse, NAT through the host's uplink; DNS via the gateway"
                .into(),
        ),
        Network::Allow(entries) => {
            out.push(format!(
                "only {} (TCP and UDP); everything else dropped and counted; DNS via the gateway",
                entries.join(", ")
            ));
        }
        Network::Proxy(url) => out.push(format!(
            "only the proxy {url} (TCP); ALL_PROXY set in the environment; no DNS"
        )),
        Network::Via(r) => out.push(format!(
            "all traffic through router env `{r}`; cut off (not rerouted) while `{r}` is down; DNS from `{r}`"
        )),
    }
    for (env, port) in &row.plan.reach {
        out.push(format!("may connect to env `{env}` on port {port}"));
    }
    if row.plan.router {
        out.push("router: forwards and masquerades traffic of envs with via = this env".into());
    }
    out.push("no connections from other envs or the host's services; no IPv6".into());
    out
}

/// Engine shutdown: with no networked env left running, everything of Verse's leaves the
/// host. Envs that keep running (they outlive the daemon) keep their rules: removing them
/// would leave their interfaces unfiltered.
pub async fn shutdown(daemon: &Engine) {
    *daemon.dns.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let rows = daemon.db.envs().unwrap_or_default();
    for row in rows.iter().filter(|r| r.plan.network != Network::None) {
        if crate::envs::is_running(daemon, &row.name).await {
            tracing::info!(env = %row.name, "networked env still running; its rules stay");
            return;
        }
    }
    if let Err(e) = tokio::task::block_in_place(|| daemon.net.teardown()) {
        tracing::warn!("removing network rules: {e}");
    }
}
