//! A daemon's connection to a shim, as both shims (container and vm) keep it:
//! one JSON request line, then stream frames both ways. Each shim has its own
//! connection states (`S`); reading, accepting and the last answer before a
//! shim exits are the same.

use crate::protocol::{ShimRequest, ShimResponse};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;
use verse_api::frame::Decoder;

/// Longest request line a client may send.
const MAX_REQUEST_LINE: usize = 1 << 20;

pub(crate) struct Conn<S> {
    pub stream: UnixStream,
    pub inbuf: Vec<u8>,
    pub decoder: Decoder,
    pub outbuf: Vec<u8>,
    pub state: S,
    pub eof: bool,
}

/// What one read from a client gave.
pub(crate) enum Received {
    /// Nothing to read now: nothing else to do.
    WouldBlock,
    /// The request line, once complete (or why it is not one).
    Request(Result<ShimRequest, String>),
    /// Bytes for the frame decoder, or the end of the connection (`eof`).
    More,
}

impl<S> Conn<S> {
    /// Reads once. While `handshake`, waits for the request line (the bytes
    /// after it go to the frame decoder); after it, every byte is a frame's.
    pub fn receive(&mut self, handshake: bool) -> Received {
        let mut buf = vec![0u8; 64 * 1024];
        match (&self.stream).read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(_) => self.eof = true,
        }
        if !handshake {
            let bytes = std::mem::take(&mut self.inbuf);
            self.decoder.feed(&bytes);
            return Received::More;
        }
        if let Some(newline) = self.inbuf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=newline).collect();
            let rest = std::mem::take(&mut self.inbuf);
            self.decoder.feed(&rest);
            return Received::Request(
                serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}")),
            );
        }
        if self.inbuf.len() > MAX_REQUEST_LINE {
            return Received::Request(Err("request line too long".into()));
        }
        Received::More
    }

    /// Queues a response line (sent by [`Conn::flush`]).
    pub fn queue(&mut self, response: &ShimResponse) {
        let mut line = serde_json::to_vec(response).expect("response serialises");
        line.push(b'\n');
        self.outbuf.extend_from_slice(&line);
    }

    /// Sends what is queued without blocking; true once nothing is left (all
    /// sent, or the client is gone and the rest dropped).
    pub fn flush(&mut self) -> bool {
        match send_queued(self.stream.as_raw_fd(), &mut self.outbuf) {
            Ok(done) => done,
            Err(_) => {
                self.eof = true;
                true
            }
        }
    }

    /// The `ok` of a shim about to exit (hibernated): written whole, blocking
    /// for at most 2 s, since no poll loop will flush it afterwards.
    pub fn answer_ok_before_exit(&mut self) {
        self.queue(&ShimResponse::ok());
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = (&self.stream).write_all(&self.outbuf);
    }
}

/// Sends what `buf` holds to socket `fd` without blocking, removing what
/// went; Ok(true) once all has. A peer that is gone drops the rest (`Err`).
pub(crate) fn send_queued(fd: std::os::fd::RawFd, buf: &mut Vec<u8>) -> Result<bool, Errno> {
    while !buf.is_empty() {
        // MSG_NOSIGNAL: a vanished peer must not kill the shim with SIGPIPE.
        match send(fd, buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => {
                buf.drain(..n);
            }
            Err(Errno::EAGAIN) => return Ok(false),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
    Ok(true)
}

/// Accepts every pending client as a new connection in `state`.
pub(crate) fn accept_all<S>(
    listener: &UnixListener,
    conns: &mut HashMap<u64, Conn<S>>,
    next_id: &mut u64,
    state: impl Fn() -> S,
) {
    while let Ok((stream, _)) = listener.accept() {
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        conns.insert(
            *next_id,
            Conn {
                stream,
                inbuf: Vec::new(),
                decoder: Decoder::default(),
                outbuf: Vec::new(),
                state: state(),
                eof: false,
            },
        );
        *next_id += 1;
    }
}
