//! Capability tokens: biscuits that grant exactly the API rights they name.
//!
//! A right is `KIND:NAME:OPS`: `env:novel:exec,read`, `env:*:read`,
//! `image:*:write`. The daemon mints a token with `right(KIND, NAME, OP)`
//! facts in its authority block, signed by the token root key
//! (`etc/verse/token.key`). Anyone holding a token can attenuate it offline
//! by appending a block of checks: every block's checks must pass, so an
//! attenuated token can only ever do less than its parent. A token is
//! refused when any of its blocks' revocation ids is on the daemon's
//! revocation list, or when a time check in any block has passed.

use biscuit_auth::builder::{AuthorizerBuilder, BlockBuilder};
use biscuit_auth::{Biscuit, KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};
pub use verse_api::guard::Minted;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("`{0}` is not a right: write KIND:NAME:OPS, e.g. env:novel:exec,read or image:*:read")]
    BadRight(String),
    #[error("`{0}` is not a duration: write e.g. 90s, 30m, 1h, 7d")]
    BadTtl(String),
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token was revoked (id {0})")]
    Revoked(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token does not allow {0}")]
    Denied(String),
    #[error("the token root key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// One right: a kind of resource, a name (or `*`) and the operations on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    pub kind: String,
    pub name: String,
    pub ops: Vec<String>,
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.ops.join(","))
    }
}

/// Kinds, names and operations are plain words: they go into Datalog string
/// literals, so nothing that could close a literal is let through.
fn word(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b) || extra.contains(&b))
}

/// Parses `--allow` text: grants separated by `;` or spaces, each
/// `KIND:NAME:OPS` with OPS comma-separated. NAME may contain `:` (image
/// names do): the first `:` ends KIND and the last starts OPS.
pub fn parse_rights(text: &str) -> Result<Vec<Right>, TokenError> {
    let mut rights = Vec::new();
    for grant in text.split([';', ' ']).filter(|g| !g.is_empty()) {
        let bad = || TokenError::BadRight(grant.to_string());
        let (kind, rest) = grant.split_once(':').ok_or_else(bad)?;
        let (name, ops) = rest.rsplit_once(':').ok_or_else(bad)?;
        let ops: Vec<String> = ops.split(',').map(str::to_string).collect();
        if !word(kind, b"") || !word(name, b":") || !ops.iter().all(|o| word(o, b"")) {
            return Err(bad());
        }
        rights.push(Right {
            kind: kind.into(),
            name: name.into(),
            ops,
        });
    }
    if rights.is_empty() {
        return Err(TokenError::BadRight(text.to_string()));
    }
    Ok(rights)
}

/// Parses a TTL such as `90s`, `30m`, `1h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, TokenError> {
    humantime::parse_duration(text).map_err(|_| TokenError::BadTtl(text.to_string()))
}

fn expiry_check(ttl: Duration) -> (String, String) {
    let until = SystemTime::now() + ttl;
    let date = humantime::format_rfc3339_seconds(until).to_string();
    (format!("check if time($t), $t <= {date};\n"), date)
}

/// The token root key pair: `etc/verse/token.key`, the private key in hex,
/// mode 0600, made on first use.
pub fn load_or_create_root_key(path: &Path) -> Result<KeyPair, TokenError> {
    let err = |reason: String| TokenError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let private: PrivateKey = text
                .trim()
                .parse()
                .map_err(|e| err(format!("not a private key: {e}")))?;
            Ok(KeyPair::from(&private))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            let pair = KeyPair::new();
            let tmp = path.with_extension("key.tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| err(e.to_string()))?;
            writeln!(file, "{}", pair.private().to_prefixed_string())
                .and_then(|()| file.sync_all())
                .map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(pair)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn invalid(e: impl fmt::Display) -> TokenError {
    TokenError::Invalid(e.to_string())
}

/// Mints a token with `rights`, valid for `ttl` (forever if `None`).
pub fn mint(root: &KeyPair, rights: &[Right], ttl: Option<Duration>) -> Result<Minted, TokenError> {
    let mut code = String::new();
    for right in rights {
        for op in &right.ops {
            code.push_str(&format!(
                "right(\"{}\", \"{}\", \"{op}\");\n",
                right.kind, right.name
            ));
        }
    }
    let mut expires = None;
    if let Some(ttl) = ttl {
        let (check, date) = expiry_check(ttl);
        code.push_str(&check);
        expires = Some(date);
    }
    let biscuit = Biscuit::builder()
        .code(&code)
        .map_err(invalid)?
        .build(root)
        .map_err(invalid)?;
    Ok(Minted {
        token: biscuit.to_base64().map_err(invalid)?,
        id: crate::audit::to_hex(&biscuit.revocation_identifiers()[0]),
        rights: rights.iter().map(Right::to_string).collect(),
        expires,
    })
}

/// Attenuates a token offline: the result allows only what both the token
/// and `rights` allow, until `ttl` from now at the latest. Needs no key.
pub fn attenuate(
    token: &str,
    rights: &[Right],
    ttl: Option<Duration>,
) -> Result<Minted, TokenError> {
    let parent = UnverifiedBiscuit::from_base64(token.trim()).map_err(invalid)?;
    let alternatives: Vec<String> = rights
        .iter()
        .map(|r| {
            let mut clause = format!("resource(\"{}\", $name), operation($op)", r.kind);
            if r.name != "*" {
                clause.push_str(&format!(", $name == \"{}\"", r.name));
            }
            if !r.ops.iter().any(|o| o == "*") {
                let ops: Vec<String> = r.ops.iter().map(|o| format!("$op == \"{o}\"")).collect();
                clause.push_str(&format!(", {}", ops.join(" || ")));
            }
            clause
        })
        .collect();
    let mut code = format!("check if {};\n", alternatives.join(" or "));
    let mut expires = None;
    if let Some(ttl) = ttl {
        let (check, date) = expiry_check(ttl);
        code.push_str(&check);
        expires = Some(date);
    }
    let block = BlockBuilder::new().code(&code).map_err(invalid)?;
    let child = parent.append(block).map_err(invalid)?;
    Ok(Minted {
        token: child.to_base64().map_err(invalid)?,
        id: crate::audit::to_hex(child.revocation_identifiers().last().expect("has blocks")),
        rights: rights.iter().map(Right::to_string).collect(),
        expires,
    })
}

/// What a request asks for: one operation on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: String,
    pub name: String,
    pub op: String,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.op)
    }
}

/// A token that passed: its revocation ids (the first names it in the audit log).
#[derive(Debug, Clone)]
pub struct Authorized {
    pub ids: Vec<String>,
}

/// Checks a token for one request: signed by `root`, no block revoked,
/// every check of every block passing (time included), and a right that
/// covers the request.
pub fn authorize(
    token: &str,
    root: PublicKey,
    request: &Request,
    is_revoked: impl Fn(&str) -> bool,
) -> Result<Authorized, TokenError> {
    let biscuit = Biscuit::from_base64(token.trim(), root).map_err(invalid)?;
    let ids: Vec<String> = biscuit
        .revocation_identifiers()
        .iter()
        .map(|id| crate::audit::to_hex(id))
        .collect();
    if let Some(id) = ids.iter().find(|id| is_revoked(id)) {
        return Err(TokenError::Revoked(id.clone()));
    }
    if !word(&request.kind, b"") || !word(&request.name, b":") || !word(&request.op, b"") {
        return Err(TokenError::Denied(request.to_string()));
    }
    let code = format!(
        "resource(\"{kind}\", \"{name}\");\noperation(\"{op}\");\n\
         allow if resource($k, $rn), operation($op), right($k, $n, $o), \
         $n == \"*\" || $n == $rn, $o == \"*\" || $o == $op;\n\
         deny if true;\n",
        kind = request.kind,
        name = request.name,
        op = request.op
    );
    let mut authorizer = AuthorizerBuilder::new()
        .code(&code)
        .map_err(invalid)?
        .time()
        // The default budget (1 ms) is too tight for a loaded host or a
        // debug build; tokens are small, so 250 ms is never reached honestly.
        .set_limits(biscuit_auth::AuthorizerLimits {
            max_time: std::time::Duration::from_millis(250),
            ..Default::default()
        })
        .build(&biscuit)
        .map_err(invalid)?;
    authorizer.authorize().map_err(|e| {
        // A failed check on time() in any block means it has expired.
        let text = format!("{e:?}");
        if text.contains("time($t)") {
            TokenError::Expired
        } else if text.contains("RunLimit") {
            TokenError::Invalid(format!("authorizing took too long: {e}"))
        } else {
            TokenError::Denied(request.to_string())
        }
    })?;
    Ok(Authorized { ids })
}
