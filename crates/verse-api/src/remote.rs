//! The transport of [`Client::remote`](crate::Client::remote): the daemon's
//! token-only TLS API (`verse daemon --listen`). A client that must act with
//! a capability token's rights only (and not root's, as on the unix socket)
//! goes this way; the server checks the token on every request.

use crate::client::ClientError;
use http::HeaderValue;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

pub(crate) struct Remote {
    url: String,
    /// HOST:PORT to connect to.
    addr: String,
    server_name: rustls_pki_types::ServerName<'static>,
    connector: TlsConnector,
    authorization: HeaderValue,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

fn protocol(what: String) -> ClientError {
    ClientError::Protocol(what)
}

impl Remote {
    pub(crate) fn new(url: &str, ca: &Path, token: &str) -> Result<Remote, ClientError> {
        use rustls_pki_types::pem::PemObject;
        let addr = url
            .strip_prefix("https://")
            .ok_or_else(|| {
                protocol(format!(
                    "`{url}`: the TLS API's address is https://HOST:PORT"
                ))
            })?
            .trim_end_matches('/')
            .to_string();
        let host = match addr.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => {
                return Err(protocol(format!(
                    "`{url}`: give the port, https://HOST:PORT"
                )));
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| protocol(format!("`{url}`: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| protocol(format!("reading the CA certificate {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(protocol(format!(
                "{}: no PEM certificate in it",
                ca.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| protocol(format!("{}: {e}", ca.display())))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| protocol(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let token = token.trim();
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| protocol("the token has characters a header cannot carry".into()))?;
        authorization.set_sensitive(true);
        Ok(Remote {
            url: url.to_string(),
            addr,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            authorization,
        })
    }

    pub(crate) fn authorization(&self) -> HeaderValue {
        self.authorization.clone()
    }

    pub(crate) async fn connect(&self) -> Result<TlsStream<TcpStream>, ClientError> {
        let transport = |e: std::io::Error| ClientError::Transport {
            socket: self.url.clone().into(),
            source: Box::new(e),
        };
        let tcp = TcpStream::connect(&self.addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ClientError::NotRunning {
                    socket: self.url.clone().into(),
                }
            } else {
                transport(e)
            }
        })?;
        let _ = tcp.set_nodelay(true);
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(transport)
    }
}
