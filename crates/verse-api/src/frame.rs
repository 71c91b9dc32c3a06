//! The framing of interactive streams (exec, run, attach).
//!
//! After the HTTP upgrade (client ⇄ daemon) and after the JSON handshake line
//! (daemon ⇄ shim), both directions carry frames: one kind byte, a big-endian
//! u32 payload length, the payload. The daemon only relays bytes; the shim and
//! the client speak frames.

use std::io::{self, Read, Write};

/// Upper bound of one frame's payload; larger writes are split.
pub const MAX_PAYLOAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// client → env: bytes for the process' stdin.
    Stdin = 0,
    /// env → client.
    Stdout = 1,
    /// env → client.
    Stderr = 2,
    /// client → env: terminal size, payload rows u16 BE, cols u16 BE.
    Resize = 3,
    /// env → client: the process ended; payload exit code i32 BE (128+signal if killed).
    Exit = 4,
    /// client → env: stdin reached end of file.
    StdinEof = 5,
    /// client → env: deliver a signal, payload i32 BE.
    Signal = 6,
    /// env → client: the stream failed; payload is a UTF-8 message.
    Error = 7,
}

impl Kind {
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Resize,
            4 => Kind::Exit,
            5 => Kind::StdinEof,
            6 => Kind::Signal,
            7 => Kind::Error,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: Kind, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            payload: payload.into(),
        }
    }
    pub fn exit(code: i32) -> Self {
        Self::new(Kind::Exit, code.to_be_bytes())
    }
    pub fn resize(rows: u16, cols: u16) -> Self {
        let mut payload = rows.to_be_bytes().to_vec();
        payload.extend_from_slice(&cols.to_be_bytes());
        Self::new(Kind::Resize, payload)
    }
    pub fn signal(sig: i32) -> Self {
        Self::new(Kind::Signal, sig.to_be_bytes())
    }
    /// The i32 carried by Exit and Signal frames.
    pub fn as_i32(&self) -> Option<i32> {
        let bytes: [u8; 4] = self.payload.as_slice().try_into().ok()?;
        Some(i32::from_be_bytes(bytes))
    }
    /// (rows, cols) of a Resize frame.
    pub fn as_size(&self) -> Option<(u16, u16)> {
        let bytes: [u8; 4] = self.payload.as_slice().try_into().ok()?;
        Some((
            u16::from_be_bytes([bytes[0], bytes[1]]),
            u16::from_be_bytes([bytes[2], bytes[3]]),
        ))
    }

    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.payload.len());
        self.encode_into(&mut out);
        out
    }
}

/// Encodes `data` as frames of `kind`, splitting at [`MAX_PAYLOAD`].
pub fn encode_data(kind: Kind, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_PAYLOAD) {
        out.push(kind as u8);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Incremental decoder for non-blocking readers: feed bytes, take frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let kind = Kind::from_byte(self.buf[0]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown frame kind {}", self.buf[0]),
            )
        })?;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds the {MAX_PAYLOAD} byte limit"),
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some(Frame { kind, payload }))
    }
}

/// Blocking read of one frame; `Ok(None)` on a clean end of stream.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 5];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut decoder = Decoder::default();
    decoder.feed(&header);
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return decoder.next_frame();
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload)?;
    decoder.feed(&payload);
    decoder.next_frame()
}

/// Blocking write of one frame.
pub fn write_frame(writer: &mut impl Write, frame: &Frame) -> io::Result<()> {
    writer.write_all(&frame.encode())
}

/// Async counterparts for tokio streams.
#[cfg(feature = "client")]
pub mod tokio_io {
    use super::{Decoder, Frame, MAX_PAYLOAD};
    use std::io;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    pub async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Frame>> {
        let mut header = [0u8; 5];
        match reader.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut decoder = Decoder::default();
        decoder.feed(&header);
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_PAYLOAD {
            return decoder.next_frame();
        }
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await?;
        decoder.feed(&payload);
        decoder.next_frame()
    }

    pub async fn write_frame(
        writer: &mut (impl AsyncWrite + Unpin),
        frame: &Frame,
    ) -> io::Result<()> {
        writer.write_all(&frame.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_decoder_byte_by_byte() {
        let frames = [
            Frame::new(Kind::Stdout, b"hello".to_vec()),
            Frame::exit(-3),
            Frame::resize(24, 80),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.encode_into(&mut wire);
        }
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for byte in wire {
            decoder.feed(&[byte]);
            while let Some(f) = decoder.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(got[1].as_i32(), Some(-3));
        assert_eq!(got[2].as_size(), Some((24, 80)));
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused() {
        let mut decoder = Decoder::default();
        decoder.feed(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(decoder.next_frame().is_err());
        let mut decoder = Decoder::default();
        decoder.feed(&[99, 0, 0, 0, 0]);
        assert!(decoder.next_frame().is_err());
    }

    #[test]
    fn large_data_is_split() {
        let data = vec![7u8; MAX_PAYLOAD * 2 + 10];
        let mut wire = Vec::new();
        encode_data(Kind::Stdin, &data, &mut wire);
        let mut decoder = Decoder::default();
        decoder.feed(&wire);
        let mut total = 0;
        while let Some(f) = decoder.next_frame().unwrap() {
            total += f.payload.len();
        }
        assert_eq!(total, data.len());
    }
}
