//! The shim ⇄ agent protocol, over one virtio-serial port (a byte stream).
//!
//! Several streams share the port, so every message carries a channel id:
//! `tag u8, channel u32 BE, length u32 BE, payload`. Tags 0..=7 are the
//! stream frames of [`verse_api::frame::Kind`] (stdin, stdout, stderr, resize,
//! exit, stdin eof, signal, error) of the process on that channel, exactly as
//! the shim relays them to the daemon; tag [`CONTROL`] carries a JSON
//! [`Control`] message. Channel 0 is the env's main command.

use serde::{Deserialize, Serialize};
use std::io;
use verse_api::frame::{Frame, Kind, MAX_PAYLOAD};

/// Tag of a JSON control message.
pub const CONTROL: u8 = 0x40;
/// Upper bound of a control message's JSON.
pub const MAX_CONTROL: usize = 1 << 20;
/// The channel of the env's main command.
pub const MAIN: u32 = 0;
/// Name of the virtio-serial port carrying this protocol.
pub const CONTROL_PORT: &str = "verse.ctl";
/// Name of the virtio-serial port the main command's output goes to.
pub const LOG_PORT: &str = "verse.log";
/// Kernel command line flag that makes the agent print [`PROBE_MARKER`] and
/// power off (used to time a tiny guest when choosing the accelerator).
pub const PROBE_FLAG: &str = "verse.probe";
pub const PROBE_MARKER: &str = "VERSE-AGENT-PROBE-OK";

/// What the guest runs: sent once, after [`Control::Ready`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootSpec {
    pub hostname: String,
    /// virtio-blk serials of the read-only layer disks, top-most first.
    pub layers: Vec<String>,
    /// virtio-blk serial of the writable disk (ext4).
    pub data: String,
    pub main: ExecSpec,
    /// The guest's `eth0` (its virtio-net NIC); `None`: no NIC (network = "none").
    #[serde(default)]
    pub net: Option<GuestNet>,
    /// `downloads = "quarantine"`: the directory the agent creates (owned by
    /// the env's user, mode 0755) for the host to take files from.
    #[serde(default)]
    pub downloads: Option<String>,
}

/// How the agent configures `eth0`: a /32 address with the host's tap (the gateway) reached
/// on-link, and the resolv.conf the env gets. The host enforces the env's policy on the tap;
/// nothing the guest changes here widens it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestNet {
    pub address: std::net::Ipv4Addr,
    pub gateway: std::net::Ipv4Addr,
    /// Written to the root's /etc/resolv.conf.
    pub resolv_conf: String,
}

/// One process to start inside the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub tty: bool,
    pub rows: u16,
    pub cols: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// guest → host: the agent runs and waits for its [`BootSpec`].
    Ready { kernel: String },
    /// host → guest: mount the root and start the main command (channel 0).
    Boot(BootSpec),
    /// host → guest: start a process on this message's channel.
    Exec(ExecSpec),
    /// guest → host: the process of this channel started.
    Started { pid: u32 },
    /// guest → host: the process of this channel (or the boot) failed to start.
    Failed { error: String },
    /// host → guest: stop the main command (SIGTERM, SIGKILL after the
    /// timeout), unmount and power off.
    Shutdown { timeout_ms: u64 },
    /// host → guest: one file operation on this message's channel (see [`FileOp`]).
    File(FileOp),
    /// guest → host: the directory listing a [`FileOp::List`] asked for.
    Listing { files: Vec<GuestFile> },
    /// guest → host: all of a [`FileOp::Read`]'s data was sent (as stdout
    /// frames before this), and the file it came from.
    ReadDone { stamp: Stamp },
    /// guest → host: a [`FileOp::Write`]'s file was created under `name`;
    /// send its data as stdin frames, then stdin eof.
    Created { name: String },
    /// guest → host: the file operation of this channel is complete
    /// (`bytes`: how many a write wrote).
    Done { bytes: u64 },
    /// guest → host: a [`FileOp::Write`]'s name is taken (nothing was written).
    Exists,
    /// host → guest: abandon the file operation of this channel (a write's
    /// half-written file is removed).
    Cancel,
}

/// File operations the host asks of the agent. Every one runs with the
/// agent's filesystem ids set to `uid`/`gid` (setfsuid/setfsgid): the guest
/// is untrusted, and the host acts in it only as the env's own user could, so
/// a symlink or a directory the env's user planted cannot make the agent
/// (root in the guest) read, remove or create anything the user could not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Tagged `file`: it travels inside the shim's requests, which are tagged `op`.
#[serde(tag = "file", rename_all = "snake_case")]
pub enum FileOp {
    /// The regular files directly in `dir` (opened with `O_NOFOLLOW`).
    List { dir: String, uid: u32, gid: u32 },
    /// Sends the regular file `path` as stdout frames, then
    /// [`Control::ReadDone`]. `nofollow`: a symlink as its last component is
    /// refused. A file larger than `max_bytes`, or one that changes while it
    /// is read, is refused.
    Read {
        path: String,
        max_bytes: u64,
        nofollow: bool,
        uid: u32,
        gid: u32,
    },
    /// Removes `path` (never following a symlink) only if it is still the
    /// file `stamp` describes, unchanged.
    Unlink {
        path: String,
        stamp: Stamp,
        uid: u32,
        gid: u32,
    },
    /// Creates a new file `name` in `dir` (made with missing parents, mode
    /// 0755), with `O_EXCL | O_NOFOLLOW` and `mode`; answers
    /// [`Control::Created`] (or [`Control::Exists`]), takes the data, fsyncs,
    /// answers [`Control::Done`].
    Write {
        dir: String,
        name: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl FileOp {
    /// Sets whose rights the operation runs with (the vm shim sets the env's
    /// user on every operation it relays, whatever the client sent).
    pub fn as_user(&mut self, user: u32, group: u32) {
        match self {
            FileOp::List { uid, gid, .. }
            | FileOp::Read { uid, gid, .. }
            | FileOp::Unlink { uid, gid, .. }
            | FileOp::Write { uid, gid, .. } => (*uid, *gid) = (user, group),
        }
    }
}

/// What identifies one version of a file: unchanged stamp, unchanged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// One regular file of a [`FileOp::List`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestFile {
    pub name: String,
    pub stamp: Stamp,
    /// Some guest process holds it open for writing.
    pub writing: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Stream { channel: u32, frame: Frame },
    Control { channel: u32, control: Control },
}

impl Message {
    pub fn control(channel: u32, control: Control) -> Self {
        Message::Control { channel, control }
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Stream { channel, frame } => {
                put_header(out, frame.kind as u8, *channel, frame.payload.len());
                out.extend_from_slice(&frame.payload);
            }
            Message::Control { channel, control } => {
                let json = serde_json::to_vec(control).expect("control messages serialise");
                put_header(out, CONTROL, *channel, json.len());
                out.extend_from_slice(&json);
            }
        }
    }
}

/// Encodes `data` as stream frames of `kind` on `channel`, split at [`MAX_PAYLOAD`].
pub fn encode_data(channel: u32, kind: Kind, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_PAYLOAD) {
        put_header(out, kind as u8, channel, chunk.len());
        out.extend_from_slice(chunk);
    }
}

fn put_header(out: &mut Vec<u8>, tag: u8, channel: u32, len: usize) {
    out.push(tag);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

/// Incremental decoder: feed bytes, take messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next_message(&mut self) -> io::Result<Option<Message>> {
        if self.buf.len() < 9 {
            return Ok(None);
        }
        let tag = self.buf[0];
        let channel = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(self.buf[5..9].try_into().expect("4 bytes")) as usize;
        let limit = if tag == CONTROL {
            MAX_CONTROL
        } else {
            MAX_PAYLOAD
        };
        if len > limit {
            return Err(bad(format!(
                "message of {len} bytes exceeds the {limit} byte limit"
            )));
        }
        if self.buf.len() < 9 + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buf[9..9 + len].to_vec();
        self.buf.drain(..9 + len);
        if tag == CONTROL {
            let control = serde_json::from_slice(&payload)
                .map_err(|e| bad(format!("unreadable control message: {e}")))?;
            return Ok(Some(Message::Control { channel, control }));
        }
        let kind = Kind::from_byte(tag).ok_or_else(|| bad(format!("unknown message tag {tag}")))?;
        Ok(Some(Message::Stream {
            channel,
            frame: Frame { kind, payload },
        }))
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_split_reads() {
        let mut out = Vec::new();
        Message::control(
            3,
            Control::Exec(ExecSpec {
                argv: vec!["/bin/sh".into()],
                env: vec![("A".into(), "b".into())],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                tty: true,
                rows: 24,
                cols: 80,
            }),
        )
        .encode_into(&mut out);
        encode_data(3, Kind::Stdout, &vec![7u8; MAX_PAYLOAD + 10], &mut out);
        Message::Stream {
            channel: 3,
            frame: Frame::exit(42),
        }
        .encode_into(&mut out);
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for byte in out.chunks(1000) {
            decoder.feed(byte);
            while let Some(m) = decoder.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 4);
        assert!(
            matches!(&got[0], Message::Control { channel: 3, control: Control::Exec(e) } if e.rows == 24)
        );
        assert!(matches!(&got[2], Message::Stream { frame, .. } if frame.payload.len() == 10));
        assert!(
            matches!(&got[3], Message::Stream { channel: 3, frame } if frame.as_i32() == Some(42))
        );
    }

    #[test]
    fn oversized_and_unknown_messages_are_refused() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        put_header(&mut out, 1, 0, MAX_PAYLOAD + 1);
        decoder.feed(&out);
        assert!(decoder.next_message().is_err());
        let mut decoder = Decoder::default();
        decoder.feed(&[9, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decoder.next_message().is_err());
    }
}
