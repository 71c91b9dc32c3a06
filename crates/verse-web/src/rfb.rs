//! Following an RFB (VNC) conversation just far enough to enforce an env's
//! clipboard policy.
//!
//! Cut text travels as its own message in each direction (ClientCutText, type
//! 6, browser → env; ServerCutText, type 3, env → browser). Dropping one needs
//! the message boundaries, and the server's stream is mostly framebuffer
//! updates whose length depends on the encoding. So the filter restricts the
//! encodings the client may ask for (its SetEncodings is rewritten) to those
//! whose length can be known without decoding: Raw, CopyRect, ZRLE (length
//! prefixed) and a few pseudo-encodings. Anything it cannot follow (an unknown
//! message, a security type other than None or VNC password, a pixel-format
//! change of size) is an error, and the proxy closes the connection rather
//! than pass bytes it cannot see.

use std::sync::Mutex;

/// Which way cut text may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Browser → env (ClientCutText).
    pub to_env: bool,
    /// Env → browser (ServerCutText).
    pub to_browser: bool,
}

impl Policy {
    /// Both ways: nothing to filter, the bytes pass unchanged.
    pub fn is_open(self) -> bool {
        self.to_env && self.to_browser
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RfbError {
    #[error("not an RFB version message: {0:?}")]
    Version(String),
    #[error("security type {0} cannot be followed (only None and VNC password)")]
    Security(u8),
    #[error("the server sent a message before the client chose how to authenticate")]
    OutOfOrder,
    #[error("unknown {side} message type {kind}")]
    UnknownMessage { side: &'static str, kind: u8 },
    #[error("the server used encoding {0}, which the client was not allowed to ask for")]
    Encoding(i32),
    #[error("the client changed bits per pixel from {from} to {to}")]
    PixelSize { from: u8, to: u8 },
    #[error("a SetEncodings with {0} encodings (at most 1024)")]
    TooManyEncodings(u16),
}

/// Encodings whose rectangles the filter can skip over.
const RAW: i32 = 0;
const COPY_RECT: i32 = 1;
const ZRLE: i32 = 16;
const DESKTOP_SIZE: i32 = -223;
const LAST_RECT: i32 = -224;
const CURSOR: i32 = -239;
const X_CURSOR: i32 = -240;
const DESKTOP_NAME: i32 = -307;
const EXTENDED_DESKTOP_SIZE: i32 = -308;
const QEMU_KEY: i32 = -258;
const FENCE: i32 = -312;
const CONTINUOUS_UPDATES: i32 = -313;

/// Whether the client may ask for `encoding`.
pub fn followable(encoding: i32) -> bool {
    matches!(
        encoding,
        RAW | COPY_RECT
            | ZRLE
            | DESKTOP_SIZE
            | LAST_RECT
            | CURSOR
            | X_CURSOR
            | DESKTOP_NAME
            | EXTENDED_DESKTOP_SIZE
            | QEMU_KEY
            | FENCE
            | CONTINUOUS_UPDATES
    )
        // Quality and compression levels carry no data.
        || (-32..=-23).contains(&encoding)
        || (-256..=-247).contains(&encoding)
}

/// What both directions learn from each other.
#[derive(Debug, Default)]
struct Shared {
    /// Minor version the client chose (3, 7 or 8).
    minor: Option<u8>,
    /// Security type in use.
    security: Option<u8>,
    /// Bits per pixel of the framebuffer.
    bpp: Option<u8>,
}

/// Both directions of one connection.
#[derive(Debug)]
pub struct Filter {
    policy: Policy,
    shared: Mutex<Shared>,
}

impl Filter {
    pub fn new(policy: Policy) -> Filter {
        Filter {
            policy,
            shared: Mutex::new(Shared::default()),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    Version,
    SecType33,
    SecCount,
    SecList,
    AwaitChoice,
    Challenge,
    SecResult,
    FailReason,
    Init,
    Message,
    Rect {
        left: u16,
    },
    RectLen {
        left: u16,
    },
    RectScreens {
        left: u16,
    },
    /// Past a failure: the server closes after its reason.
    Through,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    Version,
    AwaitType,
    Choice,
    Response,
    Init,
    Message,
}

/// One direction's progress: a header being gathered, then bytes passed or
/// dropped whole.
#[derive(Debug)]
struct Cursor<T> {
    state: T,
    hdr: Vec<u8>,
    want: usize,
    pass: u64,
    drop: u64,
}

impl<T> Cursor<T> {
    fn new(state: T, want: usize) -> Self {
        Cursor {
            state,
            hdr: Vec::new(),
            want,
            pass: 0,
            drop: 0,
        }
    }

    /// Moves opaque bytes along; returns false when `input` is used up or a
    /// header is still incomplete.
    fn advance(&mut self, input: &mut &[u8], out: &mut Vec<u8>) -> bool {
        loop {
            if self.pass > 0 {
                let n = (self.pass.min(input.len() as u64)) as usize;
                out.extend_from_slice(&input[..n]);
                *input = &input[n..];
                self.pass -= n as u64;
                if self.pass > 0 {
                    return false;
                }
                continue;
            }
            if self.drop > 0 {
                let n = (self.drop.min(input.len() as u64)) as usize;
                *input = &input[n..];
                self.drop -= n as u64;
                if self.drop > 0 {
                    return false;
                }
                continue;
            }
            if self.hdr.len() < self.want {
                let n = (self.want - self.hdr.len()).min(input.len());
                self.hdr.extend_from_slice(&input[..n]);
                *input = &input[n..];
            }
            return self.hdr.len() >= self.want;
        }
    }

    /// The header is done: emit it (or not), then pass or drop `body` bytes.
    fn next(&mut self, state: T, want: usize, out: Option<&mut Vec<u8>>, body: u64, keep: bool) {
        if let Some(out) = out {
            out.extend_from_slice(&self.hdr);
        }
        self.hdr.clear();
        self.state = state;
        self.want = want;
        if keep {
            self.pass = body;
        } else {
            self.drop = body;
        }
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn i32_at(b: &[u8], i: usize) -> i32 {
    u32_at(b, i) as i32
}

fn minor_of(version: &[u8]) -> Result<u8, RfbError> {
    let text = String::from_utf8_lossy(version).to_string();
    let ok = version.len() == 12 && version.starts_with(b"RFB ") && version[11] == b'\n';
    let minor = ok
        .then(|| text[8..11].parse::<u16>().ok())
        .flatten()
        .ok_or_else(|| RfbError::Version(text.clone()))?;
    // 3.7 and 3.8 as themselves; anything older as 3.3; newer as 3.8.
    Ok(match minor {
        7 => 7,
        m if m >= 8 => 8,
        _ => 3,
    })
}

fn check_security(kind: u8) -> Result<u8, RfbError> {
    match kind {
        1 | 2 => Ok(kind),
        other => Err(RfbError::Security(other)),
    }
}

/// The env → browser direction.
#[derive(Debug)]
pub struct ServerSide(Cursor<S>);

/// The browser → env direction.
#[derive(Debug)]
pub struct ClientSide(Cursor<C>);

impl Default for ServerSide {
    fn default() -> Self {
        ServerSide(Cursor::new(S::Version, 12))
    }
}

impl Default for ClientSide {
    fn default() -> Self {
        ClientSide(Cursor::new(C::Version, 12))
    }
}

impl ServerSide {
    /// Appends to `out` what of `input` may reach the browser.
    pub fn feed(
        &mut self,
        f: &Filter,
        mut input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RfbError> {
        loop {
            let c = &mut self.0;
            if c.state == S::Through {
                out.extend_from_slice(input);
                return Ok(());
            }
            if c.state == S::AwaitChoice {
                if input.is_empty() {
                    return Ok(());
                }
                let (minor, security) = {
                    let sh = f.shared();
                    (sh.minor, sh.security)
                };
                match (security, minor) {
                    (Some(2), _) => c.next(S::Challenge, 16, None, 0, true),
                    (Some(_), Some(8)) => c.next(S::SecResult, 4, None, 0, true),
                    (Some(_), _) => c.next(S::Init, 24, None, 0, true),
                    (None, _) => return Err(RfbError::OutOfOrder),
                }
                continue;
            }
            if !c.advance(&mut input, out) {
                return Ok(());
            }
            let h = c.hdr.clone();
            match c.state {
                S::Version => {
                    minor_of(&h)?;
                    // What follows depends on the version the client picks;
                    // the server speaks only after it.
                    let minor = f.shared().minor;
                    match minor {
                        Some(3) => c.next(S::SecType33, 4, Some(out), 0, true),
                        Some(_) => c.next(S::SecCount, 1, Some(out), 0, true),
                        // Not yet known: decide on the next byte.
                        None => c.next(S::SecCount, 1, Some(out), 0, true),
                    }
                }
                S::SecType33 => {
                    let kind = u32_at(&h, 0);
                    if kind == 0 {
                        c.next(S::FailReason, 4, Some(out), 0, true);
                    } else {
                        let kind = check_security(kind.min(255) as u8)?;
                        f.shared().security = Some(kind);
                        let (s, w) = if kind == 2 {
                            (S::Challenge, 16)
                        } else {
                            (S::Init, 24)
                        };
                        c.next(s, w, Some(out), 0, true);
                    }
                }
                S::SecCount => {
                    if f.shared().minor == Some(3) {
                        // The byte belongs to a 3.3 security type (4 bytes).
                        c.state = S::SecType33;
                        c.want = 4;
                        continue;
                    }
                    match h[0] {
                        0 => c.next(S::FailReason, 4, Some(out), 0, true),
                        n => c.next(S::SecList, n as usize, Some(out), 0, true),
                    }
                }
                S::SecList => c.next(S::AwaitChoice, 0, Some(out), 0, true),
                S::Challenge => c.next(S::SecResult, 4, Some(out), 0, true),
                S::SecResult => {
                    let failed = u32_at(&h, 0) != 0;
                    let minor = f.shared().minor;
                    match (failed, minor) {
                        (false, _) => c.next(S::Init, 24, Some(out), 0, true),
                        (true, Some(8)) => c.next(S::FailReason, 4, Some(out), 0, true),
                        (true, _) => c.next(S::Through, 0, Some(out), 0, true),
                    }
                }
                S::FailReason => {
                    let len = u32_at(&h, 0) as u64;
                    c.next(S::Through, 0, Some(out), len, true);
                }
                S::Init => {
                    f.shared().bpp = Some(h[4]);
                    let name = u32_at(&h, 20) as u64;
                    c.next(S::Message, 1, Some(out), name, true);
                }
                S::Message => server_message(c, f, &h, out)?,
                S::Rect { left } => {
                    let (w, hgt) = (u16_at(&h, 4) as u64, u16_at(&h, 6) as u64);
                    let bytes_pp = (f.shared().bpp.unwrap_or(32) as u64).div_ceil(8);
                    let after = |left: u16| {
                        if left <= 1 {
                            (S::Message, 1)
                        } else {
                            (S::Rect { left: left - 1 }, 12)
                        }
                    };
                    match i32_at(&h, 8) {
                        RAW => {
                            let (s, w2) = after(left);
                            c.next(s, w2, Some(out), w * hgt * bytes_pp, true);
                        }
                        COPY_RECT => {
                            let (s, w2) = after(left);
                            c.next(s, w2, Some(out), 4, true);
                        }
                        CURSOR => {
                            let (s, w2) = after(left);
                            let body = w * hgt * bytes_pp + w.div_ceil(8) * hgt;
                            c.next(s, w2, Some(out), body, true);
                        }
                        X_CURSOR => {
                            let (s, w2) = after(left);
                            let body = if w * hgt > 0 {
                                6 + 2 * w.div_ceil(8) * hgt
                            } else {
                                0
                            };
                            c.next(s, w2, Some(out), body, true);
                        }
                        DESKTOP_SIZE | QEMU_KEY => {
                            let (s, w2) = after(left);
                            c.next(s, w2, Some(out), 0, true);
                        }
                        LAST_RECT => c.next(S::Message, 1, Some(out), 0, true),
                        ZRLE | DESKTOP_NAME => c.next(S::RectLen { left }, 4, Some(out), 0, true),
                        EXTENDED_DESKTOP_SIZE => {
                            c.next(S::RectScreens { left }, 4, Some(out), 0, true)
                        }
                        other => return Err(RfbError::Encoding(other)),
                    }
                }
                S::RectLen { left } | S::RectScreens { left } => {
                    let body = if matches!(c.state, S::RectLen { .. }) {
                        u32_at(&h, 0) as u64
                    } else {
                        16 * h[0] as u64
                    };
                    let (s, w) = if left <= 1 {
                        (S::Message, 1)
                    } else {
                        (S::Rect { left: left - 1 }, 12)
                    };
                    c.next(s, w, Some(out), body, true);
                }
                S::AwaitChoice | S::Through => unreachable!("handled above"),
            }
        }
    }
}

fn server_message(
    c: &mut Cursor<S>,
    f: &Filter,
    h: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RfbError> {
    {
        let more = |c: &mut Cursor<S>, n: usize| c.want = n;
        match (h[0], h.len()) {
            // FramebufferUpdate: type, pad, count.
            (0, 1) => more(c, 4),
            (0, _) => match u16_at(h, 2) {
                0 => c.next(S::Message, 1, Some(out), 0, true),
                n => c.next(S::Rect { left: n }, 12, Some(out), 0, true),
            },
            // SetColourMapEntries: type, pad, first, count, 6 bytes each.
            (1, 1) => more(c, 6),
            (1, _) => {
                let n = u16_at(h, 4) as u64;
                c.next(S::Message, 1, Some(out), 6 * n, true);
            }
            // Bell, EndOfContinuousUpdates.
            (2 | 150, _) => c.next(S::Message, 1, Some(out), 0, true),
            // ServerCutText: type, 3 pad, length (negative: extended clipboard).
            (3, 1) => more(c, 8),
            (3, _) => {
                let len = i32_at(h, 4).unsigned_abs() as u64;
                let keep = f.policy.to_browser;
                if !keep {
                    tracing::info!(bytes = len, "clipboard: cut text from the env dropped");
                }
                c.next(S::Message, 1, keep.then_some(out), len, keep);
            }
            // ServerFence: type, 3 pad, flags, length, payload.
            (248, 1) => more(c, 9),
            (248, _) => c.next(S::Message, 1, Some(out), h[8] as u64, true),
            (kind, _) => {
                return Err(RfbError::UnknownMessage {
                    side: "server",
                    kind,
                });
            }
        }
    }
    Ok(())
}

impl ClientSide {
    /// Appends to `out` what of `input` may reach the env.
    pub fn feed(
        &mut self,
        f: &Filter,
        mut input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RfbError> {
        let c = &mut self.0;
        loop {
            if c.state == C::AwaitType {
                if input.is_empty() {
                    return Ok(());
                }
                match f.shared().security {
                    Some(2) => c.next(C::Response, 16, None, 0, true),
                    Some(_) => c.next(C::Init, 1, None, 0, true),
                    None => return Err(RfbError::OutOfOrder),
                }
                continue;
            }
            if !c.advance(&mut input, out) {
                return Ok(());
            }
            let h = c.hdr.clone();
            match c.state {
                C::Version => {
                    let minor = minor_of(&h)?;
                    f.shared().minor = Some(minor);
                    if minor == 3 {
                        c.next(C::AwaitType, 0, Some(out), 0, true);
                    } else {
                        c.next(C::Choice, 1, Some(out), 0, true);
                    }
                }
                C::Choice => {
                    let kind = check_security(h[0])?;
                    f.shared().security = Some(kind);
                    if kind == 2 {
                        c.next(C::Response, 16, Some(out), 0, true);
                    } else {
                        c.next(C::Init, 1, Some(out), 0, true);
                    }
                }
                C::Response => c.next(C::Init, 1, Some(out), 0, true),
                C::Init => c.next(C::Message, 1, Some(out), 0, true),
                C::AwaitType => unreachable!("handled above"),
                C::Message => {
                    let more = |c: &mut Cursor<C>, n: usize| c.want = n;
                    match (h[0], h.len()) {
                        // SetPixelFormat: the size of a pixel must not change.
                        (0, 1) => more(c, 20),
                        (0, _) => {
                            let to = h[4];
                            let from = f.shared().bpp.unwrap_or(to);
                            if from != to {
                                return Err(RfbError::PixelSize { from, to });
                            }
                            c.next(C::Message, 1, Some(out), 0, true);
                        }
                        // SetEncodings: rewritten to what the filter can follow.
                        (2, 1) => more(c, 4),
                        (2, 4) => {
                            let n = u16_at(&h, 2);
                            if n > 1024 {
                                return Err(RfbError::TooManyEncodings(n));
                            }
                            more(c, 4 + 4 * n as usize);
                            if n == 0 {
                                c.next(C::Message, 1, Some(out), 0, true);
                            }
                        }
                        (2, _) => {
                            let mut kept: Vec<i32> = h[4..]
                                .chunks_exact(4)
                                .map(|b| i32_at(b, 0))
                                .filter(|e| followable(*e))
                                .collect();
                            if !kept.contains(&RAW) {
                                kept.push(RAW);
                            }
                            out.extend_from_slice(&[2, 0]);
                            out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
                            for e in kept {
                                out.extend_from_slice(&e.to_be_bytes());
                            }
                            c.next(C::Message, 1, None, 0, true);
                        }
                        // FramebufferUpdateRequest, EnableContinuousUpdates.
                        (3 | 150, 1) => more(c, 10),
                        // KeyEvent.
                        (4, 1) => more(c, 8),
                        // PointerEvent.
                        (5, 1) => more(c, 6),
                        (3 | 4 | 5 | 150, _) => c.next(C::Message, 1, Some(out), 0, true),
                        // ClientCutText: type, 3 pad, length.
                        (6, 1) => more(c, 8),
                        (6, _) => {
                            let len = i32_at(&h, 4).unsigned_abs() as u64;
                            let keep = f.policy.to_env;
                            if !keep {
                                tracing::info!(
                                    bytes = len,
                                    "clipboard: cut text to the env dropped"
                                );
                            }
                            c.next(C::Message, 1, keep.then_some(out), len, keep);
                        }
                        // ClientFence: type, 3 pad, flags, length, payload.
                        (248, 1) => more(c, 9),
                        (248, _) => c.next(C::Message, 1, Some(out), h[8] as u64, true),
                        // SetDesktopSize: type, pad, w, h, screens, pad, 16 each.
                        (251, 1) => more(c, 8),
                        (251, _) => c.next(C::Message, 1, Some(out), 16 * h[6] as u64, true),
                        // QEMU extended key event (sub-type 0, 12 bytes).
                        (255, 1) => more(c, 2),
                        (255, 2) if h[1] == 0 => more(c, 12),
                        (255, 12) => c.next(C::Message, 1, Some(out), 0, true),
                        (kind, _) => {
                            return Err(RfbError::UnknownMessage {
                                side: "client",
                                kind,
                            });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(to_env: bool, to_browser: bool) -> Policy {
        Policy { to_env, to_browser }
    }

    /// A recorded 3.8 handshake with security None and a 32 bpp, 4x2 "x" desktop.
    fn server_hello() -> Vec<u8> {
        let mut b = b"RFB 003.008\n".to_vec();
        b.extend([1, 1]); // one security type: None
        b.extend([0, 0, 0, 0]); // SecurityResult OK
        b.extend([0, 4, 0, 2]); // 4x2
        b.extend([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        b.extend([0, 0, 0, 1, b'x']);
        b
    }
    const CLIENT_HELLO: &[u8] = b"RFB 003.008\n\x01\x01";

    fn cut(kind: u8, text: &[u8]) -> Vec<u8> {
        let mut b = vec![kind, 0, 0, 0];
        b.extend((text.len() as u32).to_be_bytes());
        b.extend(text);
        b
    }

    /// A FramebufferUpdate with a Raw 2x1 rect, a CopyRect, a ZRLE rect
    /// and a cursor, whose payloads happen to contain cut-text look-alikes.
    fn update() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 4];
        b.extend([0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0]); // Raw 2x1
        b.extend([3, 0, 0, 0, 3, 0, 0, 0]); // 2 pixels that look like a ServerCutText
        b.extend([0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]); // CopyRect
        b.extend([0, 0, 0, 0]);
        b.extend([0, 0, 0, 0, 0, 4, 0, 2, 0, 0, 0, 16]); // ZRLE
        b.extend([0, 0, 0, 5, 3, 3, 3, 3, 3]);
        b.extend([0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0x11]); // Cursor 1x1
        b.extend([1, 2, 3, 4, 0x80]);
        b
    }

    /// Runs a conversation (client bytes first, then server bytes) through the
    /// filter, `chunk` bytes at a time, and returns what each side received.
    fn run(p: Policy, client: &[u8], server: &[u8], chunk: usize) -> (Vec<u8>, Vec<u8>) {
        let f = Filter::new(p);
        let (mut cs, mut ss) = (ClientSide::default(), ServerSide::default());
        let (mut to_env, mut to_browser) = (Vec::new(), Vec::new());
        // The server speaks first (its version), then the client; feeding the
        // client's hello before the rest of the server's is what the network
        // ordering guarantees.
        ss.feed(&f, &server[..12], &mut to_browser).unwrap();
        for piece in client.chunks(chunk) {
            cs.feed(&f, piece, &mut to_env).unwrap();
        }
        for piece in server[12..].chunks(chunk) {
            ss.feed(&f, piece, &mut to_browser).unwrap();
        }
        (to_env, to_browser)
    }

    #[test]
    fn cut_text_from_the_env_is_dropped_unless_out_is_allowed() {
        let mut server = server_hello();
        server.extend(update());
        server.extend(cut(3, b"secret"));
        server.push(2); // Bell after it: the stream stays in step
        for chunk in [1, 3, 1000] {
            let (_, got) = run(policy(true, false), CLIENT_HELLO, &server, chunk);
            let mut want = server_hello();
            want.extend(update());
            want.push(2);
            assert_eq!(got, want, "chunk {chunk}");
            let (_, got) = run(policy(false, true), CLIENT_HELLO, &server, chunk);
            assert_eq!(got, server, "chunk {chunk}");
        }
    }

    #[test]
    fn cut_text_from_the_browser_is_dropped_unless_in_is_allowed() {
        let mut client = CLIENT_HELLO.to_vec();
        client.extend([5, 0, 0, 10, 0, 20]); // pointer
        client.extend(cut(6, b"pasted"));
        client.extend([4, 1, 0, 0, 0, 0, 0, 0x61]); // key 'a'
        for chunk in [1, 5, 1000] {
            let (got, _) = run(policy(false, true), &client, &server_hello(), chunk);
            let mut want = CLIENT_HELLO.to_vec();
            want.extend([5, 0, 0, 10, 0, 20]);
            want.extend([4, 1, 0, 0, 0, 0, 0, 0x61]);
            assert_eq!(got, want, "chunk {chunk}");
            let (got, _) = run(policy(true, false), &client, &server_hello(), chunk);
            assert_eq!(got, client, "chunk {chunk}");
        }
    }

    #[test]
    fn set_encodings_keeps_only_what_can_be_followed() {
        let mut client = CLIENT_HELLO.to_vec();
        // Tight(7), ZRLE(16), Hextile(5), DesktopSize(-223), ExtendedClipboard, CopyRect(1)
        let asked: [i32; 6] = [7, 16, 5, -223, 0xC0A1E5CEu32 as i32, 1];
        client.extend([2, 0, 0, 6]);
        for e in asked {
            client.extend(e.to_be_bytes());
        }
        let (got, _) = run(policy(false, false), &client, &server_hello(), 2);
        let mut want = CLIENT_HELLO.to_vec();
        want.extend([2, 0, 0, 4]);
        for e in [16i32, -223, 1, 0] {
            want.extend(e.to_be_bytes());
        }
        assert_eq!(got, want);
    }

    #[test]
    fn what_cannot_be_followed_is_an_error() {
        let f = Filter::new(policy(false, false));
        let (mut cs, mut ss) = (ClientSide::default(), ServerSide::default());
        let mut out = Vec::new();
        ss.feed(&f, &server_hello(), &mut out).unwrap_err();
        assert_eq!(
            cs.feed(&f, b"RFB 003.008\n\x13", &mut out),
            Err(RfbError::Security(19))
        );
        // A Tight rectangle the client could not have asked for.
        let f = Filter::new(policy(false, false));
        let (mut cs, mut ss) = (ClientSide::default(), ServerSide::default());
        ss.feed(&f, &server_hello()[..12], &mut out).unwrap();
        cs.feed(&f, CLIENT_HELLO, &mut out).unwrap();
        ss.feed(&f, &server_hello()[12..], &mut out).unwrap();
        let tight = [0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 7];
        assert_eq!(ss.feed(&f, &tight, &mut out), Err(RfbError::Encoding(7)));
        // A pixel format of another size.
        let mut spf = vec![0, 0, 0, 0, 16, 16, 0, 1];
        spf.extend([0; 12]);
        assert_eq!(
            cs.feed(&f, &spf, &mut out),
            Err(RfbError::PixelSize { from: 32, to: 16 })
        );
        let (f, mut cs) = (Filter::new(policy(true, true)), ClientSide::default());
        cs.feed(&f, CLIENT_HELLO, &mut out).unwrap();
        assert_eq!(
            cs.feed(&f, &[0x77], &mut out),
            Err(RfbError::UnknownMessage {
                side: "client",
                kind: 0x77
            })
        );
    }

    #[test]
    fn vnc_password_and_version_3_3_are_followed() {
        // 3.3: the server picks VNC auth, a challenge, the result, then init.
        let mut server = b"RFB 003.003\n".to_vec();
        server.extend([0, 0, 0, 2]);
        server.extend([7; 16]);
        server.extend([0, 0, 0, 0]);
        server.extend(&server_hello()[18..]);
        server.extend(cut(3, b"gone"));
        let mut client = b"RFB 003.003\n".to_vec();
        client.extend([9; 16]);
        client.push(1);
        let f = Filter::new(policy(false, false));
        let (mut cs, mut ss) = (ClientSide::default(), ServerSide::default());
        let (mut to_env, mut to_browser) = (Vec::new(), Vec::new());
        ss.feed(&f, &server[..12], &mut to_browser).unwrap();
        cs.feed(&f, &client[..12], &mut to_env).unwrap();
        ss.feed(&f, &server[12..], &mut to_browser).unwrap();
        cs.feed(&f, &client[12..], &mut to_env).unwrap();
        assert_eq!(to_env, client);
        assert_eq!(to_browser, server[..server.len() - 12]);
    }
}
