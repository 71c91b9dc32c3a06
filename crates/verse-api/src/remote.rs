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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
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
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| protocol(format!("{}: {e}", ca.display())))?;
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| protocol(format!("{}: {e}", ca.display())))?;
        let verifier = Pinned {
            certs,
            webpki,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| protocol(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
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

/// Trusts the server's certificate when it is one of the given certificates
/// exactly (a self-signed certificate made with `openssl req -x509`, which
/// marks itself a CA and so fails path validation as its own end entity), and
/// otherwise as a certificate chained to them. The handshake's signature is
/// checked either way: only the holder of that certificate's key gets in.
#[derive(Debug)]
struct Pinned {
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
