//! WebSocket bridges between the browser and an env.
//!
//! - [`terminal`]: xterm.js ⇄ an `exec -t` stream of the shim. Browser → env:
//!   binary messages are keystrokes (Stdin frames), text messages are JSON
//!   controls (`{"resize":[rows,cols]}`). Env → browser: binary messages are
//!   terminal output, and one text message `{"exit":CODE}` or `{"error":MSG}`
//!   before the close.
//! - [`vnc`]: noVNC ⇄ the env's VNC unix socket: bytes both ways unchanged
//!   when the clipboard may cross both ways, otherwise through
//!   [`crate::rfb`]'s filter, which drops cut text the policy forbids.
//!
//! Both stop, and drop the env side, when the browser stops reading for
//! longer than [`Options::send_timeout`], so a stalled tab never pins memory
//! in the daemon or holds the env's display server: sends await the socket
//! (no queue grows), and a send that cannot finish in time ends the bridge.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use verse_api::frame::{Frame, Kind, encode_data, tokio_io};

use crate::rfb::{ClientSide, Filter, Policy, ServerSide};

/// Close codes the UI understands (4000-4999 are the application's).
pub mod close {
    /// The env has no such stream: not running, or no desktop.
    pub const UNAVAILABLE: u16 = 4404;
    /// The env side closed: the display server or the shell ended.
    pub const ENV_CLOSED: u16 = 4410;
    /// The browser did not read in time.
    pub const TOO_SLOW: u16 = 4408;
    /// The clipboard filter could not follow the VNC conversation.
    pub const PROTOCOL: u16 = 4400;
    /// The command in the terminal exited.
    pub const EXITED: u16 = 1000;
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long one message towards the browser may take to be accepted.
    pub send_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a bridge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The browser closed or went away.
    Client,
    /// The env side closed (display server gone, shell exited).
    Env(String),
    /// The browser stopped reading for longer than the send timeout.
    TooSlow,
    /// The env side was not there to begin with.
    Unavailable(String),
    /// The clipboard filter could not follow the VNC conversation.
    Protocol(String),
}

async fn send(
    tx: &mut (impl futures_util::Sink<Message, Error = axum::Error> + Unpin),
    message: Message,
    options: Options,
) -> Result<(), End> {
    match tokio::time::timeout(options.send_timeout, tx.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Client),
        Err(_) => Err(End::TooSlow),
    }
}

async fn close_with(
    tx: &mut (impl futures_util::Sink<Message, Error = axum::Error> + Unpin),
    code: u16,
    reason: &str,
    options: Options,
) {
    // Close reasons are limited to 123 bytes by the protocol.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = send(tx, Message::Close(Some(frame)), options).await;
}

/// Closes a WebSocket at once, saying why the stream is not available.
pub async fn refuse(mut ws: WebSocket, reason: &str, options: Options) -> End {
    close_with(&mut ws, close::UNAVAILABLE, reason, options).await;
    End::Unavailable(reason.to_string())
}

/// Connects to the unix socket at `path` without following a symlink there.
///
/// The socket's directory is writable by the env: a symlink planted in
/// place of the socket would otherwise make the daemon (root) connect the
/// browser to any socket on the host. Opening with `O_PATH | O_NOFOLLOW`,
/// checking the inode is a socket, and connecting through `/proc/self/fd`
/// leaves no window between the check and the connect.
pub fn connect_no_follow(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !handle.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a socket", path.display()),
        ));
    }
    let via = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let stream = std::os::unix::net::UnixStream::connect(via)?;
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

/// Connects the browser to the VNC server listening on `socket`; `what`
/// names the env in messages. Cut text crosses only as `policy` allows.
pub async fn vnc(
    mut ws: WebSocket,
    socket: &Path,
    what: &str,
    policy: Policy,
    options: Options,
) -> End {
    let stream = match connect_no_follow(socket) {
        Ok(stream) => stream,
        Err(e) => {
            let reason = format!("{what} has no desktop running ({e})");
            close_with(&mut ws, close::UNAVAILABLE, &reason, options).await;
            return End::Unavailable(reason);
        }
    };
    relay(ws, stream, what, policy, options).await
}

/// Bytes both ways between a WebSocket and a VNC stream, until either ends:
/// unchanged when `policy` is open, otherwise through the clipboard filter
/// (the browser's messages are parsed before they reach the env and the
/// env's before they reach the browser; what the filter cannot follow
/// closes the connection).
pub async fn relay<S>(ws: WebSocket, stream: S, what: &str, policy: Policy, options: Options) -> End
where
    S: AsyncRead + AsyncWrite + Send,
{
    let (filter, open) = (Filter::new(policy), policy.is_open());
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut env_rx, mut env_tx) = tokio::io::split(stream);
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<String>(1);
    let to_env = async {
        let mut side = ClientSide::default();
        let mut out = Vec::new();
        while let Some(Ok(message)) = ws_rx.next().await {
            match message {
                Message::Binary(bytes) => {
                    let out = if open {
                        &bytes[..]
                    } else {
                        out.clear();
                        if let Err(e) = side.feed(&filter, &bytes, &mut out) {
                            let _ = fail_tx.send(format!("{what}: browser side: {e}")).await;
                            return std::future::pending().await;
                        }
                        &out[..]
                    };
                    if !out.is_empty() && env_tx.write_all(out).await.is_err() {
                        return End::Env(format!("{what}: the display server stopped reading"));
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = env_tx.shutdown().await;
        End::Client
    };
    let to_browser = async {
        let mut side = ServerSide::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let read = tokio::select! {
                read = env_rx.read(&mut buf) => Ok(read),
                Some(reason) = fail_rx.recv() => Err(reason),
            };
            let n = match read {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => {
                    let reason = format!("{what}: the display server closed the connection");
                    close_with(&mut ws_tx, close::ENV_CLOSED, &reason, options).await;
                    return End::Env(reason);
                }
                Err(reason) => {
                    close_with(&mut ws_tx, close::PROTOCOL, &reason, options).await;
                    return End::Protocol(reason);
                }
            };
            out.clear();
            if open {
                out.extend_from_slice(&buf[..n]);
            } else if let Err(e) = side.feed(&filter, &buf[..n], &mut out) {
                let reason = format!("{what}: display side: {e}");
                close_with(&mut ws_tx, close::PROTOCOL, &reason, options).await;
                return End::Protocol(reason);
            }
            if out.is_empty() {
                continue;
            }
            let message = Message::Binary(std::mem::take(&mut out).into());
            if let Err(end) = send(&mut ws_tx, message, options).await {
                return end;
            }
        }
    };
    tokio::select! {
        end = to_env => end,
        end = to_browser => end,
    }
}

#[derive(serde::Deserialize)]
struct Control {
    resize: Option<(u16, u16)>,
}

/// Connects xterm.js to an exec stream of the shim (already past its
/// handshake, speaking frames).
pub async fn terminal<S>(ws: WebSocket, shim: S, what: &str, options: Options) -> End
where
    S: AsyncRead + AsyncWrite + Send,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut shim_rx, mut shim_tx) = tokio::io::split(shim);
    let to_env = async {
        while let Some(Ok(message)) = ws_rx.next().await {
            let mut wire = Vec::new();
            match message {
                Message::Binary(bytes) => encode_data(Kind::Stdin, &bytes, &mut wire),
                Message::Text(text) => match serde_json::from_str::<Control>(&text) {
                    Ok(Control {
                        resize: Some((rows, cols)),
                    }) => Frame::resize(rows, cols).encode_into(&mut wire),
                    _ => tracing::debug!("ignoring terminal control {text}"),
                },
                Message::Close(_) => break,
                _ => {}
            }
            if shim_tx.write_all(&wire).await.is_err() {
                return End::Env(format!("{what}: the terminal's process ended"));
            }
        }
        // The tab went away: hang up, as a closed terminal window does.
        let _ = tokio_io::write_frame(&mut shim_tx, &Frame::signal(1)).await;
        let _ = tokio_io::write_frame(&mut shim_tx, &Frame::new(Kind::StdinEof, Vec::new())).await;
        End::Client
    };
    let to_browser = async {
        loop {
            let frame = match tokio_io::read_frame(&mut shim_rx).await {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => {
                    let reason = format!("{what}: the env closed the terminal (did it stop?)");
                    close_with(&mut ws_tx, close::ENV_CLOSED, &reason, options).await;
                    return End::Env(reason);
                }
            };
            match frame.kind {
                Kind::Stdout | Kind::Stderr => {
                    let message = Message::Binary(frame.payload.into());
                    if let Err(end) = send(&mut ws_tx, message, options).await {
                        return end;
                    }
                }
                Kind::Exit => {
                    let code = frame.as_i32().unwrap_or(-1);
                    let text = serde_json::json!({ "exit": code }).to_string();
                    let _ = send(&mut ws_tx, Message::Text(text.into()), options).await;
                    close_with(
                        &mut ws_tx,
                        close::EXITED,
                        &format!("exited with {code}"),
                        options,
                    )
                    .await;
                    return End::Env(format!("{what}: the shell exited with {code}"));
                }
                Kind::Error => {
                    let message = String::from_utf8_lossy(&frame.payload).into_owned();
                    let text = serde_json::json!({ "error": message }).to_string();
                    let _ = send(&mut ws_tx, Message::Text(text.into()), options).await;
                    close_with(&mut ws_tx, close::ENV_CLOSED, &message, options).await;
                    return End::Env(message);
                }
                _ => {}
            }
        }
    };
    tokio::select! {
        end = to_env => end,
        end = to_browser => end,
    }
}
