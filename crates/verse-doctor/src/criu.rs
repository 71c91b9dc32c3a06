//! Which CRIU Verse uses for hibernate/resume, and whether it works here.
//!
//! Debian bookworm's criu 3.17 fails on kernels >= 6.13 (vDSO layout); Verse's
//! `scripts/install-criu.sh` puts trixie's 4.x under `/usr/local/lib/verse/criu`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;

/// Where Verse's own CRIU is installed by `scripts/install-criu.sh`.
pub const VERSE_CRIU: &str = "/usr/local/lib/verse/criu/criu";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuFacts {
    pub path: String,
    pub version: String,
    /// `criu check` passed.
    pub check_ok: bool,
    /// What `criu check` said when it failed (last line).
    pub check_error: Option<String>,
}

/// Candidates in order: `$VERSE_CRIU`, Verse's own install, `criu` on PATH.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("VERSE_CRIU") {
        out.push(PathBuf::from(p));
    }
    out.push(PathBuf::from(VERSE_CRIU));
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"] {
        out.push(PathBuf::from(dir).join("criu"));
    }
    out
}

/// The first candidate that runs, with its version.
pub fn locate() -> Option<(PathBuf, String)> {
    candidates().into_iter().find_map(|path| {
        let out = Command::new(&path).arg("--version").output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .unwrap_or("")
            .trim()
            .to_string();
        Some((path, version))
    })
}

/// The first CRIU that passes `criu check`, else the first that runs.
pub fn probe() -> Option<CriuFacts> {
    let mut first = None;
    for path in candidates() {
        let Ok(out) = Command::new(&path).arg("--version").output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        let check = Command::new(&path).arg("check").output();
        let (check_ok, check_error) = match check {
            Ok(o) if o.status.success() => (true, None),
            Ok(o) => (
                false,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string),
            ),
            Err(e) => (false, Some(e.to_string())),
        };
        let facts = CriuFacts {
            path: path.display().to_string(),
            version,
            check_ok,
            check_error,
        };
        if check_ok {
            return Some(facts);
        }
        first.get_or_insert(facts);
    }
    first
}
