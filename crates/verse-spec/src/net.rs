//! Network destinations and proxy URLs as written in `network = { allow = [...] }` and
//! `network = { proxy = "..." }`. Pure parsing: names are resolved by the daemon.

use std::net::Ipv4Addr;

/// Where a destination points: an IPv4 network (a single address is a /32) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestHost {
    /// Address and prefix length.
    Net(Ipv4Addr, u8),
    /// A DNS name, resolved by Verse at apply time and kept current.
    Name(String),
}

/// One `allow` entry: host (address, CIDR or name) and an inclusive port range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub host: DestHost,
    /// First and last port; `*` is 1..=65535.
    pub ports: (u16, u16),
}

/// A proxy the env may reach, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    /// `socks5`, `socks5h` or `http`.
    pub scheme: String,
    pub host: DestHost,
    pub port: u16,
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn parse_host(host: &str) -> Result<DestHost, String> {
    if host.starts_with('[') || host.contains(':') {
        return Err("IPv6 destinations are not supported (envs have IPv6 off)".into());
    }
    if let Some((addr, len)) = host.split_once('/') {
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("`/{len}` is not a prefix length (0-32)"))?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "`{host}` has host bits set; write {}/{len}",
                Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        return Ok(DestHost::Net(addr, len));
    }
    if let Ok(addr) = host.parse::<Ipv4Addr>() {
        return Ok(DestHost::Net(addr, 32));
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{host}` is not an IPv4 address"));
    }
    if !is_dns_name(host) {
        return Err(format!(
            "`{host}` is neither an IPv4 address, a CIDR nor a DNS name"
        ));
    }
    Ok(DestHost::Name(host.to_ascii_lowercase()))
}

fn parse_port(port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))
}

/// Parses `"host:port"`, `"host:*"`, `"host:lo-hi"` where host is an IPv4 address, a CIDR or a
/// DNS name.
pub fn parse_destination(entry: &str) -> Result<Destination, String> {
    let Some((host, ports)) = entry.rsplit_once(':') else {
        return Err("write \"host:port\", \"host:*\" or \"10.0.0.0/8:*\"".into());
    };
    let host = parse_host(host)?;
    let ports = match ports {
        "*" => (1, 65535),
        p => match p.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
                if lo > hi {
                    return Err(format!("port range {lo}-{hi} is backwards"));
                }
                (lo, hi)
            }
            None => {
                let p = parse_port(p)?;
                (p, p)
            }
        },
    };
    Ok(Destination { host, ports })
}

/// Parses `"socks5://HOST:PORT"`, `"socks5h://..."` or `"http://HOST:PORT"`.
pub fn parse_proxy(url: &str) -> Result<ProxyUrl, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("write a URL such as \"socks5://10.0.0.1:1080\"".into());
    };
    if !matches!(scheme, "socks5" | "socks5h" | "http") {
        return Err(format!(
            "unknown proxy scheme `{scheme}`; allowed: socks5, socks5h, http"
        ));
    }
    let rest = rest.trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err("the proxy URL needs a port, e.g. \"socks5://10.0.0.1:1080\"".into());
    };
    let host = parse_host(host)?;
    if let DestHost::Net(_, len) = host
        && len != 32
    {
        return Err("a proxy is one address, not a network".into());
    }
    Ok(ProxyUrl {
        scheme: scheme.to_string(),
        host,
        port: parse_port(port)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = parse_destination("10.1.2.0/24:*").unwrap();
        assert_eq!(d.host, DestHost::Net(Ipv4Addr::new(10, 1, 2, 0), 24));
        assert_eq!(d.ports, (1, 65535));
        let d = parse_destination("Example.org:443").unwrap();
        assert_eq!(d.host, DestHost::Name("example.org".into()));
        assert_eq!(d.ports, (443, 443));
        assert_eq!(parse_destination("1.2.3.4:80-90").unwrap().ports, (80, 90));
        assert!(parse_destination("1.2.3.4").is_err());
        assert!(parse_destination("1.2.3.4:0").is_err());
        assert!(parse_destination("1.2.3.4:90-80").is_err());
        assert!(
            parse_destination("10.1.2.3/24:*")
                .unwrap_err()
                .contains("10.1.2.0/24")
        );
        assert!(parse_destination("[::1]:80").is_err());
        assert!(parse_destination("1.2.3.300:80").is_err());
        assert!(parse_destination("a_b:80").is_err());
    }

    #[test]
    fn proxies() {
        let p = parse_proxy("socks5://10.0.0.1:1080").unwrap();
        assert_eq!(p.port, 1080);
        assert_eq!(p.host, DestHost::Net(Ipv4Addr::new(10, 0, 0, 1), 32));
        assert!(parse_proxy("ftp://a:1").is_err());
        assert!(parse_proxy("socks5://a").is_err());
        assert!(parse_proxy("10.0.0.1:1080").is_err());
    }
}
