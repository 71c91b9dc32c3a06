//! Interactive streams: exec, shell, run, and following logs.

use anyhow::Result;
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use tokio::io::AsyncReadExt;
use verse_api::frame::{Frame, Kind, tokio_io};
use verse_api::{Client, ExecRequest, RunRequest, client::Upgraded};

/// Exit code for failures of Verse itself (as opposed to the command's own code).
const VERSE_FAILED: u8 = 125;

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

pub fn terminal_size() -> (u16, u16) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; on a
    // non-terminal fd it fails and leaves the zeroes.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_row > 0 {
        (size.ws_row, size.ws_col)
    } else {
        (24, 80)
    }
}

pub async fn exec(client: &Client, name: &str, request: ExecRequest) -> Result<ExitCode> {
    let tty = request.tty;
    let stream = client
        .upgrade(&format!("/v1/envs/{name}/exec"), &request)
        .await?;
    finish(interact(stream, tty).await)
}

pub async fn run(client: &Client, request: RunRequest) -> Result<ExitCode> {
    let tty = request.tty;
    let stream = client.upgrade("/v1/run", &request).await?;
    finish(interact(stream, tty).await)
}

/// Exits the process: stdin's reader thread cannot be cancelled, and would
/// otherwise keep the runtime from shutting down.
fn finish(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(code))
}

/// Puts the local terminal in raw mode for `-t`, restoring it on drop.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

async fn interact(stream: Upgraded, tty: bool) -> u8 {
    let raw = if tty && stdin_is_tty() {
        RawMode::enable()
    } else {
        None
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (frames, mut outgoing) = tokio::sync::mpsc::channel::<Frame>(64);

    let stdin_frames = frames.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_frames
                        .send(Frame::new(Kind::StdinEof, Vec::new()))
                        .await;
                    break;
                }
                Ok(n) => {
                    if stdin_frames
                        .send(Frame::new(Kind::Stdin, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    if tty {
        let resize_frames = frames.clone();
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                let (rows, cols) = terminal_size();
                if resize_frames.send(Frame::resize(rows, cols)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(frames);
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if tokio_io::write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    });

    let code = loop {
        match tokio_io::read_frame(&mut reader).await {
            Ok(Some(frame)) => match frame.kind {
                Kind::Stdout => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&frame.payload);
                    let _ = out.flush();
                }
                Kind::Stderr => {
                    let _ = std::io::stderr().write_all(&frame.payload);
                }
                Kind::Exit => break frame.as_i32().map_or(VERSE_FAILED, |c| (c & 0xff) as u8),
                Kind::Error => {
                    drop(raw);
                    eprintln!("error: {}", String::from_utf8_lossy(&frame.payload));
                    return VERSE_FAILED;
                }
                _ => {}
            },
            Ok(None) | Err(_) => {
                drop(raw);
                eprintln!(
                    "error: the connection to the env closed before the command's exit code arrived"
                );
                return VERSE_FAILED;
            }
        }
    };
    drop(raw);
    code
}

pub async fn logs(client: &Client, name: &str, follow: bool) -> Result<()> {
    use http_body_util::BodyExt;
    let mut body = client
        .stream(&format!("/v1/envs/{name}/logs?follow={follow}"))
        .await?;
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            out.write_all(data)?;
            out.flush()?;
        }
    }
    Ok(())
}
