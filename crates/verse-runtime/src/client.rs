//! The daemon's async client of one shim's socket.

use crate::protocol::{Refusal, ShimRequest, ShimResponse};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ShimClientError {
    #[error("no shim is listening at {0}")]
    Gone(PathBuf),
    #[error("talking to the shim at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the shim at {path} answered something unreadable: {detail}")]
    Protocol { path: PathBuf, detail: String },
    #[error("{0}")]
    Refused(String),
    /// A refusal of a kind the caller tells apart (see [`Refusal`]).
    #[error("{message}")]
    Declined { refusal: Refusal, message: String },
}

pub struct ShimClient {
    path: PathBuf,
}

impl ShimClient {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    fn io(&self, source: std::io::Error) -> ShimClientError {
        ShimClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Sends one request and reads the response line. The stream is returned
    /// positioned after the response, for exec and attach frames.
    pub async fn request(
        &self,
        request: &ShimRequest,
    ) -> Result<(ShimResponse, BufReader<UnixStream>), ShimClientError> {
        let stream = match UnixStream::connect(&self.path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ShimClientError::Gone(self.path.clone()));
            }
            Err(e) => return Err(self.io(e)),
        };
        let mut stream = BufReader::new(stream);
        let mut line = serde_json::to_vec(request).expect("request serialises");
        line.push(b'\n');
        stream
            .get_mut()
            .write_all(&line)
            .await
            .map_err(|e| self.io(e))?;
        let mut response = String::new();
        let n = stream
            .read_line(&mut response)
            .await
            .map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(ShimClientError::Gone(self.path.clone()));
        }
        let response: ShimResponse =
            serde_json::from_str(response.trim()).map_err(|e| ShimClientError::Protocol {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        if !response.ok {
            let message = response.error.unwrap_or_else(|| "refused".into());
            return Err(match response.refusal {
                Some(refusal) => ShimClientError::Declined { refusal, message },
                None => ShimClientError::Refused(message),
            });
        }
        Ok((response, stream))
    }

    pub async fn call(&self, request: &ShimRequest) -> Result<ShimResponse, ShimClientError> {
        Ok(self.request(request).await?.0)
    }
}
