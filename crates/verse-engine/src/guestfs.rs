//! Files inside a running vm env, through its agent: the daemon asks the
//! env's shim for a [`FileOp`] and the shim relays it to `verse-agent` over
//! the control port (see [`ShimRequest::GuestFile`]).
//!
//! The guest is untrusted, so nothing it sends is believed: a listing is
//! bounded (the agent protocol's message limits) and names that are not
//! plain file names are dropped; a read is cut off past the size the host
//! allows and must end with exactly the bytes its file had; a silent agent
//! is given up on after [`SILENCE`]. No guest-supplied name or path is ever
//! used on the host: the host writes only to files it names itself.

use crate::error::{EngineError, EngineResult};
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use verse_api::frame::{Frame, Kind};
use verse_runtime::ShimRequest;
use verse_runtime::agent_proto::{Control, Decoder, FileOp, GuestFile, Message, Stamp};

/// How long the agent may stay silent in the middle of an operation.
pub const SILENCE: Duration = Duration::from_secs(30);
/// The largest file taken out of (or copied from) a vm env.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// One running vm env, reached through its shim.
pub struct GuestFs {
    pub env: String,
    socket: std::path::PathBuf,
}

/// An operation's connection, after the shim's `ok`.
struct Op<'a> {
    fs: &'a GuestFs,
    stream: BufReader<UnixStream>,
    decoder: Decoder,
}

impl GuestFs {
    pub fn new(env: &str, socket: std::path::PathBuf) -> GuestFs {
        GuestFs {
            env: env.to_string(),
            socket,
        }
    }

    fn error(&self, what: impl std::fmt::Display) -> EngineError {
        EngineError::invalid(format!("env `{}`: {what}", self.env))
    }

    async fn start(&self, op: FileOp) -> EngineResult<Op<'_>> {
        let client = verse_runtime::ShimClient::new(&self.socket);
        let (_, stream) = client
            .request(&ShimRequest::GuestFile(op))
            .await
            .map_err(|e| self.error(e))?;
        Ok(Op {
            fs: self,
            stream,
            decoder: Decoder::default(),
        })
    }

    /// The regular files directly in `dir`, with the names that are plain
    /// file names (what the host may name back).
    pub async fn list(&self, dir: &str) -> EngineResult<Vec<GuestFile>> {
        let mut op = self.start(list_op(dir)).await?;
        match op.next().await? {
            Message::Control {
                control: Control::Listing { files },
                ..
            } => Ok(files
                .into_iter()
                .filter(|f| {
                    f.name.len() <= 255 && verse_guard::quarantine::safe_name(&f.name) == f.name
                })
                .collect()),
            other => Err(op.unexpected(other)),
        }
    }

    /// Copies the regular file `path` into `out` (at most `max_bytes`);
    /// returns the stamp of the file as it was read, whole.
    pub async fn read_into(
        &self,
        path: &str,
        nofollow: bool,
        max_bytes: u64,
        out: &mut std::fs::File,
    ) -> EngineResult<Stamp> {
        let mut op = self
            .start(FileOp::Read {
                path: path.into(),
                max_bytes,
                nofollow,
                uid: 0,
                gid: 0,
            })
            .await?;
        let mut got: u64 = 0;
        loop {
            match op.next().await? {
                Message::Stream { frame, .. } if frame.kind == Kind::Stdout => {
                    got += frame.payload.len() as u64;
                    if got > max_bytes {
                        return Err(self.error(format!(
                            "{path}: the guest sent more than the {max_bytes} bytes allowed"
                        )));
                    }
                    out.write_all(&frame.payload)
                        .map_err(|e| EngineError::internal(format!("staging {path}: {e}")))?;
                }
                Message::Control {
                    control: Control::ReadDone { stamp },
                    ..
                } if stamp.size == got => return Ok(stamp),
                Message::Control {
                    control: Control::ReadDone { stamp },
                    ..
                } => {
                    return Err(self.error(format!(
                        "{path}: the guest sent {got} bytes of a {} byte file",
                        stamp.size
                    )));
                }
                other => return Err(op.unexpected(other)),
            }
        }
    }

    /// Removes `path` in the guest if it is still the file `stamp` describes.
    pub async fn unlink(&self, path: &str, stamp: Stamp) -> EngineResult<()> {
        let mut op = self
            .start(FileOp::Unlink {
                path: path.into(),
                stamp,
                uid: 0,
                gid: 0,
            })
            .await?;
        match op.next().await? {
            Message::Control {
                control: Control::Done { .. },
                ..
            } => Ok(()),
            other => Err(op.unexpected(other)),
        }
    }

    /// Writes `input` as a new file named `name` in `dir` (made if missing),
    /// owned by the env's user; a taken name becomes `NAME (1)`... when
    /// `free_name`. Returns `ENV:/dir/name`.
    pub async fn write_new(
        &self,
        dir: &str,
        name: &str,
        free_name: bool,
        input: &mut std::fs::File,
    ) -> Result<String, verse_guard::quarantine::QuarantineError> {
        use verse_guard::quarantine::{QuarantineError, nth_name};
        let shown = |name: &str| format!("{}:{}/{name}", self.env, dir.trim_end_matches('/'));
        let failed = |name: &str, e: EngineError| QuarantineError::Io {
            what: "writing",
            path: shown(name),
            source: std::io::Error::other(e.message),
        };
        for n in 0..1000 {
            let candidate = nth_name(name, n);
            let mut op = self
                .start(FileOp::Write {
                    dir: dir.into(),
                    name: candidate.clone(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                })
                .await
                .map_err(|e| failed(&candidate, e))?;
            match op.next().await.map_err(|e| failed(&candidate, e))? {
                Message::Control {
                    control: Control::Created { .. },
                    ..
                } => {}
                Message::Control {
                    control: Control::Exists,
                    ..
                } if free_name => continue,
                Message::Control {
                    control: Control::Exists,
                    ..
                } => return Err(QuarantineError::Exists(shown(&candidate))),
                other => return Err(failed(&candidate, op.unexpected(other))),
            }
            let sent = op
                .send_file(input)
                .await
                .map_err(|e| failed(&candidate, e))?;
            return match op.next().await.map_err(|e| failed(&candidate, e))? {
                Message::Control {
                    control: Control::Done { bytes },
                    ..
                } if bytes == sent => Ok(shown(&candidate)),
                other => Err(failed(&candidate, op.unexpected(other))),
            };
        }
        Err(QuarantineError::Exists(format!(
            "{} and 999 numbered names like it",
            shown(name)
        )))
    }
}

fn list_op(dir: &str) -> FileOp {
    FileOp::List {
        dir: dir.into(),
        uid: 0,
        gid: 0,
    }
}

impl Op<'_> {
    /// The agent's next message on this operation; an error when it says
    /// Failed, goes away, or stays silent too long.
    async fn next(&mut self) -> EngineResult<Message> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.decoder.next_message() {
                Ok(Some(Message::Control {
                    control: Control::Failed { error },
                    ..
                })) => return Err(self.fs.error(bounded(&error))),
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => return Err(self.fs.error(format!("the guest agent: {e}"))),
            }
            let n = tokio::time::timeout(SILENCE, self.stream.read(&mut buf))
                .await
                .map_err(|_| {
                    self.fs.error(format!(
                        "the guest agent did not answer within {} s",
                        SILENCE.as_secs()
                    ))
                })?
                .map_err(|e| self.fs.error(format!("talking to the shim: {e}")))?;
            if n == 0 {
                return Err(self
                    .fs
                    .error("the env's shim closed the connection (did the env stop?)"));
            }
            self.decoder.feed(&buf[..n]);
        }
    }

    fn unexpected(&self, message: Message) -> EngineError {
        let what = match message {
            Message::Stream { frame, .. } => format!("a {:?} frame", frame.kind),
            Message::Control { control, .. } => {
                bounded(&serde_json::to_string(&control).unwrap_or_default())
            }
        };
        self.fs.error(format!("the guest agent answered {what}"))
    }

    /// Streams all of `input` as stdin frames, then stdin eof.
    async fn send_file(&mut self, input: &mut std::fs::File) -> EngineResult<u64> {
        use std::io::Read;
        let mut buf = vec![0u8; verse_api::frame::MAX_PAYLOAD];
        let mut sent = 0u64;
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| EngineError::internal(format!("reading the file to send: {e}")))?;
            let frame = if n == 0 {
                Frame::new(Kind::StdinEof, Vec::new())
            } else {
                Frame::new(Kind::Stdin, buf[..n].to_vec())
            };
            tokio::time::timeout(SILENCE, self.stream.get_mut().write_all(&frame.encode()))
                .await
                .map_err(|_| self.fs.error("the guest took no data for too long"))?
                .map_err(|e| self.fs.error(format!("sending the file: {e}")))?;
            if n == 0 {
                return Ok(sent);
            }
            sent += n as u64;
        }
    }
}

/// A guest's message cut to a size fit for an error line.
fn bounded(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(500).collect();
    clean
}
