//! A small HTTP/1.1 client for the daemon's unix socket.

use crate::paths::Paths;
use crate::types::ErrorBody;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Verse daemon is running at {socket} (start one with `verse daemon`, or set VERSE_ROOT to the root of a running one)"
    )]
    NotRunning { socket: PathBuf },
    #[error("permission denied on {socket}: the local API socket is for root only")]
    PermissionDenied { socket: PathBuf },
    #[error("{}", .body.error)]
    Api { status: StatusCode, body: ErrorBody },
    #[error("talking to the daemon at {socket}: {source}")]
    Transport {
        socket: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the daemon sent a response this client does not understand: {0}")]
    Protocol(String),
}

/// The raw byte stream of an upgraded connection (exec, run).
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    /// Set: the TLS API with a bearer token instead of the unix socket.
    #[cfg(feature = "tls")]
    remote: Option<std::sync::Arc<crate::remote::Remote>>,
}

impl Client {
    pub fn new(paths: &Paths) -> Self {
        Self {
            socket: paths.socket(),
            #[cfg(feature = "tls")]
            remote: None,
        }
    }

    /// A client of the token-only TLS API (`verse daemon --listen`) at `url`
    /// (`https://HOST:PORT`), trusting the PEM certificate(s) in `ca`, acting
    /// with `token`'s rights only.
    #[cfg(feature = "tls")]
    pub fn remote(url: &str, ca: &std::path::Path, token: &str) -> Result<Self, ClientError> {
        let remote = crate::remote::Remote::new(url, ca, token)?;
        Ok(Self {
            socket: PathBuf::from(url),
            remote: Some(std::sync::Arc::new(remote)),
        })
    }

    pub fn socket(&self) -> &PathBuf {
        &self.socket
    }

    fn transport<E: std::error::Error + Send + Sync + 'static>(&self, e: E) -> ClientError {
        ClientError::Transport {
            socket: self.socket.clone(),
            source: Box::new(e),
        }
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        #[cfg(feature = "tls")]
        if let Some(remote) = &self.remote {
            let stream = remote.connect().await?;
            return self.handshake(stream).await;
        }
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                        ClientError::NotRunning {
                            socket: self.socket.clone(),
                        }
                    }
                    std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                        socket: self.socket.clone(),
                    },
                    _ => self.transport(e),
                });
            }
        };
        self.handshake(stream).await
    }

    async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(e))?;
        tokio::spawn(async move {
            // Errors surface on the request future; the connection task just ends.
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }

    fn request(method: Method, path: &str, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "verse");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("static request parts are valid")
    }

    async fn send(
        &self,
        #[allow(unused_mut)] mut request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        #[cfg(feature = "tls")]
        if let Some(remote) = &self.remote {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, remote.authorization());
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.transport(e))?;
        if response.status().is_success() || response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes();
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            error: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            hint: None,
            diagnostics: Vec::new(),
            changes: Vec::new(),
        });
        Err(ClientError::Api { status, body })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let bytes = self.body(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Self::request(Method::GET, path, None)).await
    }

    /// A GET whose answer is raw bytes, not JSON.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self.send(Self::request(Method::GET, path, None)).await?;
        Ok(self.body(response).await?.to_vec())
    }

    async fn body(&self, response: hyper::Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes())
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call(Self::request(Method::POST, path, Some(bytes)))
            .await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Self::request(Method::DELETE, path, None)).await
    }

    /// A GET whose body is read as it arrives (logs -f).
    pub async fn stream(&self, path: &str) -> Result<Incoming, ClientError> {
        Ok(self
            .send(Self::request(Method::GET, path, None))
            .await?
            .into_body())
    }

    /// POSTs `body` to an endpoint that streams [`crate::ProgressEvent`]s (JSON lines),
    /// calling `on_event` for each progress event; returns the final `done` result.
    pub async fn post_progress<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        on_event: &mut dyn FnMut(&crate::ProgressEvent),
    ) -> Result<T, ClientError> {
        use crate::ProgressEvent;
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut incoming = self
            .send(Self::request(Method::POST, path, Some(bytes)))
            .await?
            .into_body();
        let mut pending = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| self.transport(e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: ProgressEvent = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(format!("progress event: {e}")))?;
                match event {
                    ProgressEvent::Done { result } => {
                        return serde_json::from_value(result)
                            .map_err(|e| ClientError::Protocol(e.to_string()));
                    }
                    ProgressEvent::Error { error } => {
                        return Err(ClientError::Api {
                            status: StatusCode::BAD_REQUEST,
                            body: error,
                        });
                    }
                    other => on_event(&other),
                }
            }
        }
        Err(ClientError::Protocol(
            "the daemon ended the progress stream without a result".into(),
        ))
    }

    /// POSTs `body` asking to upgrade the connection to a frame stream.
    pub async fn upgrade<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Upgraded, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut request = Self::request(Method::POST, path, Some(bytes));
        request
            .headers_mut()
            .insert(header::CONNECTION, "upgrade".parse().expect("valid header"));
        request.headers_mut().insert(
            header::UPGRADE,
            "verse-stream".parse().expect("valid header"),
        );
        let response = self.send(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ClientError::Protocol(format!(
                "expected 101 Switching Protocols, got {}",
                response.status()
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| self.transport(e))?;
        Ok(TokioIo::new(upgraded))
    }
}
