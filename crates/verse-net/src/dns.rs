//! A small DNS forwarder on the gateway address: envs ask it, it asks the host's resolvers.
//!
//! Envs cannot reach the host's own resolver directly (it may listen on the host's loopback,
//! which envs never reach), so the daemon relays UDP queries from the gateway address to the
//! resolvers of the host's `/etc/resolv.conf` (or `VERSE_DNS_UPSTREAM`, `IP:PORT`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// The host's resolvers: `VERSE_DNS_UPSTREAM` if set, else the IPv4 `nameserver` lines of
/// `/etc/resolv.conf`.
pub fn host_resolvers() -> Vec<SocketAddr> {
    if let Ok(up) = std::env::var("VERSE_DNS_UPSTREAM")
        && let Ok(addr) = up.parse::<SocketAddr>()
    {
        return vec![addr];
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .map(|a| SocketAddr::V4(SocketAddrV4::new(a, 53)))
        .collect()
}

/// The running forwarder; dropping it stops it.
pub struct DnsForwarder {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsForwarder {
    /// Listens on `gateway:53`. The gateway address exists only while an env runs (it sits on
    /// the host ends of veths), so the socket is bound with IP_FREEBIND.
    pub fn start(gateway: Ipv4Addr) -> std::io::Result<DnsForwarder> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_freebind_v4(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(gateway, 53)).into())?;
        let socket = Arc::new(UdpSocket::from_std(socket.into())?);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, client)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let query = buf[..n].to_vec();
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    if let Some(answer) = forward(&query).await {
                        let _ = socket.send_to(&answer, client).await;
                    }
                });
            }
        });
        Ok(DnsForwarder { task })
    }
}

async fn forward(query: &[u8]) -> Option<Vec<u8>> {
    for upstream in host_resolvers() {
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(socket) = UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.send_to(query, upstream).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}
