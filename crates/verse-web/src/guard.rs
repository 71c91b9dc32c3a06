//! Who may use the web UI: a page on this machine that holds the daemon's secret.
//!
//! The UI listens on loopback only, but loopback is shared by every local user
//! and reachable from any web page through the browser. So each request must
//! - name a local host in `Host` (a DNS-rebinding page would send its own name),
//! - come from a local origin when the browser says where it comes from
//!   (`Origin`, always sent on WebSocket upgrades and cross-site requests), and
//! - carry the per-daemon secret: `?token=SECRET` in the URL `verse web` prints,
//!   after which the page keeps it in an HttpOnly, SameSite=Strict cookie.
//!
//! Only root can read the secret (it comes from the daemon's API socket), so
//! another local user's browser tab cannot drive the daemon.

use axum::http::{HeaderMap, StatusCode, header};

/// The check for one daemon's listener.
#[derive(Clone)]
pub struct Guard {
    secret: String,
    port: u16,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; when the secret came in the URL, set this cookie.
    Allow { set_cookie: Option<String> },
    /// Refuse it with this status and reason.
    Refuse(StatusCode, String),
}

impl Guard {
    pub fn new(secret: impl Into<String>, port: u16) -> Guard {
        Guard {
            secret: secret.into(),
            port,
        }
    }

    /// A fresh 256-bit secret, hex.
    pub fn random_secret() -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The cookie's name carries the port: cookies are shared by every port of
    /// a host, and two daemons side by side must not overwrite each other's.
    pub fn cookie_name(&self) -> String {
        format!("verse_token_{}", self.port)
    }

    /// The URL that opens the UI.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.secret)
    }

    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Verdict {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_local_authority(host) {
            return Verdict::Refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{host}` is not this machine: the Verse UI answers only requests to 127.0.0.1, localhost or [::1] (use an SSH tunnel for remote access)"
                ),
            );
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let local = origin.strip_prefix("http://").is_some_and(|authority| {
                is_local_authority(authority) && port_of(authority) == Some(self.port)
            });
            if !local {
                return Verdict::Refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from the page at `{origin}` are refused: only the Verse UI itself may call this daemon"
                    ),
                );
            }
        }
        let from_url = query
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="));
        if let Some(token) = from_url
            && constant_time_eq(token.as_bytes(), self.secret.as_bytes())
        {
            return Verdict::Allow {
                set_cookie: Some(format!(
                    "{}={}; HttpOnly; SameSite=Strict; Path=/",
                    self.cookie_name(),
                    self.secret
                )),
            };
        }
        let name = self.cookie_name();
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == name && constant_time_eq(v.as_bytes(), self.secret.as_bytes()));
        if from_cookie {
            Verdict::Allow { set_cookie: None }
        } else {
            Verdict::Refuse(
                StatusCode::UNAUTHORIZED,
                "this needs the daemon's secret: open the URL that `verse web` prints".into(),
            )
        }
    }
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_local_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn port_of(authority: &str) -> Option<u16> {
    let rest = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1,
        None => authority.split_once(':').map_or("", |(_, port)| port),
    };
    let port = rest.strip_prefix(':').unwrap_or(rest);
    if port.is_empty() {
        Some(80)
    } else {
        port.parse().ok()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_secret_in_the_url_sets_a_cookie_and_the_cookie_then_suffices() {
        let guard = Guard::new("s3cret", 7780);
        let h = headers(&[(header::HOST, "127.0.0.1:7780")]);
        match guard.check(&h, Some("token=s3cret")) {
            Verdict::Allow {
                set_cookie: Some(c),
            } => {
                assert!(c.starts_with("verse_token_7780=s3cret;"));
                assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
            }
            other => panic!("{other:?}"),
        }
        let h = headers(&[
            (header::HOST, "localhost:7780"),
            (header::COOKIE, "a=b; verse_token_7780=s3cret"),
            (header::ORIGIN, "http://localhost:7780"),
        ]);
        assert_eq!(guard.check(&h, None), Verdict::Allow { set_cookie: None });
    }

    #[test]
    fn missing_or_wrong_secret_is_refused() {
        let guard = Guard::new("s3cret", 7780);
        let h = headers(&[(header::HOST, "127.0.0.1:7780")]);
        assert!(matches!(
            guard.check(&h, None),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert!(matches!(
            guard.check(&h, Some("token=nope")),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        // Another daemon's cookie on the same host does not count.
        let h = headers(&[
            (header::HOST, "127.0.0.1:7780"),
            (header::COOKIE, "verse_token_7781=s3cret"),
        ]);
        assert!(matches!(
            guard.check(&h, None),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused_even_with_the_secret() {
        let guard = Guard::new("s3cret", 7780);
        let h = headers(&[(header::HOST, "evil.example:7780")]);
        assert!(matches!(
            guard.check(&h, Some("token=s3cret")),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:9999",
            "https://127.0.0.1:7780",
            "null",
        ] {
            let h = headers(&[(header::HOST, "127.0.0.1:7780"), (header::ORIGIN, origin)]);
            assert!(
                matches!(
                    guard.check(&h, Some("token=s3cret")),
                    Verdict::Refuse(StatusCode::FORBIDDEN, _)
                ),
                "{origin}"
            );
        }
        let h = headers(&[
            (header::HOST, "[::1]:7780"),
            (header::ORIGIN, "http://[::1]:7780"),
        ]);
        assert!(matches!(
            guard.check(&h, Some("token=s3cret")),
            Verdict::Allow { .. }
        ));
    }
}
