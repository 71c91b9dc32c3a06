//! Runs YARA rules on a quarantined file through `verse-scan`, a separate
//! binary (yara-x is heavy, and the scanner should hold no privilege): it
//! gets the file as its stdin, a fresh network namespace with no interface
//! (`unshare(CLONE_NEWNET)` before exec), and installs its own seccomp
//! filter before it touches the content. It prints one JSON object.
//!
//! A scan that cannot run (no scanner, bad rules, a crash, a timeout) is a
//! finding: the file is flagged, never waved through.

use crate::scan::Finding;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One rule that matched, as `verse-scan` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatch {
    pub rule: String,
    pub namespace: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What `verse-scan` prints for one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanOutput {
    #[serde(default)]
    pub file: Option<String>,
    pub matches: Vec<RuleMatch>,
    #[serde(default)]
    pub error: Option<String>,
}

/// How to run the scanner.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// The `verse-scan` binary, if one was found.
    pub bin: Option<PathBuf>,
    /// Rule files or directories of `*.yar` / `*.yara` files.
    pub rules: Vec<PathBuf>,
    pub timeout: Duration,
}

fn finding(message: String) -> Finding {
    Finding {
        check: crate::scan::Check::Yara,
        message,
    }
}

impl Scanner {
    /// Scans `content`; every match, and any failure to scan, is a finding.
    pub fn scan(&self, content: &Path) -> Vec<Finding> {
        let Some(bin) = &self.bin else {
            return vec![finding(
                "the YARA scanner (verse-scan) is not installed, so the file was not checked against rules; install it next to `verse` or set VERSE_SCAN".into(),
            )];
        };
        match self.run(bin, content) {
            Ok(out) => {
                let mut findings: Vec<Finding> = out
                    .matches
                    .iter()
                    .map(|m| finding(format!("matches YARA rule {}:{}", m.namespace, m.rule)))
                    .collect();
                if let Some(e) = out.error {
                    findings.push(finding(format!("the YARA scan failed: {e}")));
                }
                findings
            }
            Err(e) => vec![finding(format!("the YARA scan failed: {e}"))],
        }
    }

    fn run(&self, bin: &Path, content: &Path) -> Result<ScanOutput, String> {
        let input = std::fs::File::open(content).map_err(|e| format!("opening the file: {e}"))?;
        let mut command = Command::new(bin);
        command.arg("--sandbox");
        for rules in &self.rules {
            command.arg("--rules").arg(rules);
        }
        command
            .stdin(Stdio::from(input))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear();
        // SAFETY: between fork and exec only async-signal-safe calls:
        // unshare(2). A new network namespace has no interface but a down
        // loopback: the scanner cannot reach any network even if its own
        // seccomp filter were bypassed. It fails without CAP_SYS_ADMIN (the
        // daemon runs as root; a user running the library in tests may not),
        // in which case the scanner's seccomp filter still refuses sockets.
        unsafe {
            command.pre_exec(|| {
                let _ = libc::unshare(libc::CLONE_NEWNET);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let err_reader = std::thread::spawn(move || {
            let mut err = Vec::new();
            let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err);
            err
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "it ran longer than {:?} and was killed",
                        self.timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for the scanner: {e}")),
            }
        };
        let out = reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            return Err(format!(
                "the scanner exited with {status}: {}",
                err.trim().lines().last().unwrap_or("")
            ));
        }
        serde_json::from_slice(&out).map_err(|e| format!("unreadable scanner output: {e}"))
    }
}
