//! The tamper-evident audit log.
//!
//! `audit.log` is a file of JSON lines, one record per security-relevant act.
//! Each record carries the BLAKE3 hash of the one before (`prev`) and its own
//! hash over its canonical bytes, so changing, removing, reordering or
//! inserting a record breaks the chain at that record. Every
//! [`CHECKPOINT_EVERY`] records (and on demand) the daemon signs the head of the
//! chain with the host's ed25519 key and appends the signature to
//! `checkpoints.log`; a checkpoint exported off the machine pins everything up
//! to it even against someone who later holds the host key and rewrites the
//! whole chain.
//!
//! Durability: each record is written with a single `write(2)` on an
//! `O_APPEND` file, so a daemon crash never loses a record it reported. With
//! [`Durability::EveryRecord`] (what the daemon uses) it is also
//! `fdatasync`ed before `append` returns, so a power loss does not either;
//! [`Durability::Buffered`] leaves that to the kernel (for benchmarks and bulk
//! imports). Checkpoints are always fsynced.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
pub use verse_api::guard::{Checkpoint, Problem, ProblemKind, Record, VerifyReport};

/// A checkpoint is signed after this many records.
pub const CHECKPOINT_EVERY: u64 = 1000;
/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const RECORD_DOMAIN: &[u8] = b"verse-audit-record-v1\n";
const CHECKPOINT_DOMAIN: &str = "verse-audit-checkpoint-v1";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the host key {path} is not valid: {reason}")]
    BadKey { path: String, reason: String },
    #[error("the checkpoint in {path} is not valid: {reason}")]
    BadCheckpoint { path: String, reason: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The hashed part of a record, in a fixed field order: its compact JSON is
/// the record's canonical bytes.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    env: Option<&'a str>,
    detail: &'a str,
    prev: &'a str,
}

/// What the guard computes of a [`Record`] (its type is a wire type, in `verse-api`).
pub trait RecordExt {
    /// The hash this record's content calls for.
    fn compute_hash(&self) -> String;
}

impl RecordExt for Record {
    fn compute_hash(&self) -> String {
        let canonical = Canonical {
            seq: self.seq,
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            env: self.env.as_deref(),
            detail: &self.detail,
            prev: &self.prev,
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(RECORD_DOMAIN);
        hasher.update(&serde_json::to_vec(&canonical).expect("plain struct serialises"));
        hasher.finalize().to_hex().to_string()
    }
}

/// Signing, checking and loading a [`Checkpoint`] (its type is a wire type, in `verse-api`).
pub trait CheckpointExt: Sized {
    /// Checks the signature against the key the checkpoint names and, when
    /// given, against the key that must have signed it.
    fn check_signature(&self, trusted: Option<&VerifyingKey>) -> Result<(), String>;
    /// Reads a checkpoint exported with `verse audit checkpoint --export`.
    fn load(path: &Path) -> Result<Self, AuditError>;
}

/// The bytes a checkpoint's signature covers.
fn checkpoint_message(seq: u64, hash: &str, time: &str) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}\n{seq}\n{hash}\n{time}\n").into_bytes()
}

fn sign_checkpoint(key: &SigningKey, seq: u64, hash: &str) -> Checkpoint {
    let time = now_rfc3339();
    let signature = key.sign(&checkpoint_message(seq, hash, &time));
    Checkpoint {
        seq,
        hash: hash.to_string(),
        time,
        key: to_hex(key.verifying_key().as_bytes()),
        signature: to_hex(&signature.to_bytes()),
    }
}

impl CheckpointExt for Checkpoint {
    fn check_signature(&self, trusted: Option<&VerifyingKey>) -> Result<(), String> {
        let key_bytes: [u8; 32] = from_hex(&self.key)
            .and_then(|b| b.try_into().ok())
            .ok_or("its key is not 32 hex bytes")?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|e| format!("its key: {e}"))?;
        if let Some(trusted) = trusted
            && trusted != &key
        {
            return Err(format!(
                "it was signed by key {}, not by this host's key {}",
                self.key,
                to_hex(trusted.as_bytes())
            ));
        }
        let sig_bytes: [u8; 64] = from_hex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or("its signature is not 64 hex bytes")?;
        key.verify(
            &checkpoint_message(self.seq, &self.hash, &self.time),
            &Signature::from_bytes(&sig_bytes),
        )
        .map_err(|_| "its signature does not match its content".to_string())
    }

    fn load(path: &Path) -> Result<Checkpoint, AuditError> {
        let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
        serde_json::from_str(&text).map_err(|e| AuditError::BadCheckpoint {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

/// Whether `append` waits for the record to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` after every record: survives power loss.
    EveryRecord,
    /// Written at once (survives a daemon crash), synced by the kernel later.
    Buffered,
}

/// The host's signing key: `etc/verse/host.key`, 32 random bytes in hex,
/// mode 0600, made on first use.
pub fn load_or_create_host_key(path: &Path) -> Result<SigningKey, AuditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes: [u8; 32] = from_hex(text.trim())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| AuditError::BadKey {
                    path: path.display().to_string(),
                    reason: "expected 64 hex digits".into(),
                })?;
            Ok(SigningKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
            }
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| AuditError::BadKey {
                path: path.display().to_string(),
                reason: format!("no randomness for a new key: {e}"),
            })?;
            // Written to a private temp file and renamed, so a crash never
            // leaves a half-written key that would be read back next start.
            let tmp = path.with_extension("key.tmp");
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("creating", &tmp))?;
            writeln!(file, "{}", to_hex(&seed)).map_err(io("writing", &tmp))?;
            file.sync_all().map_err(io("syncing", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io("installing", path))?;
            tracing::info!(path = %path.display(), "generated the host key");
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io("reading", path)(e)),
    }
}

struct Head {
    file: File,
    seq: u64,
    hash: String,
    since_checkpoint: u64,
}

/// The open log of one daemon.
pub struct AuditLog {
    dir: PathBuf,
    key: SigningKey,
    durability: Durability,
    checkpoint_every: u64,
    head: Mutex<Head>,
}

impl AuditLog {
    pub fn log_path(dir: &Path) -> PathBuf {
        dir.join("audit.log")
    }

    pub fn checkpoints_path(dir: &Path) -> PathBuf {
        dir.join("checkpoints.log")
    }

    /// Opens (or starts) the log in `dir`, continuing the chain from its last record.
    pub fn open(dir: &Path, key: SigningKey, durability: Durability) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let path = Self::log_path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("opening", &path))?;
        let (seq, hash, torn) = last_record(&mut file).map_err(io("reading", &path))?;
        if torn {
            // A line cut short by a crash mid-write: end it, so the next
            // record starts on its own line. The torn line stays, and
            // `verify` reports it: nothing is silently dropped.
            file.write_all(b"\n").map_err(io("repairing", &path))?;
        }
        let since_checkpoint = seq.saturating_sub(last_checkpoint_seq(dir));
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            key,
            durability,
            checkpoint_every: CHECKPOINT_EVERY,
            head: Mutex::new(Head {
                file,
                seq,
                hash,
                since_checkpoint,
            }),
        })
    }

    /// Changes how often checkpoints are signed (tests and benchmarks).
    pub fn with_checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = every.max(1);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Appends one record; returns it as written.
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        env: Option<&str>,
        detail: &str,
    ) -> Result<Record, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = Record {
            seq: head.seq + 1,
            time: now_rfc3339(),
            actor: actor.to_string(),
            action: action.to_string(),
            env: env.map(str::to_string),
            detail: detail.to_string(),
            prev: head.hash.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let mut line = serde_json::to_vec(&record).expect("record serialises");
        line.push(b'\n');
        let path = Self::log_path(&self.dir);
        // One write on an O_APPEND file: the line lands whole or not at all
        // as far as other readers and a crashed daemon are concerned.
        head.file
            .write_all(&line)
            .map_err(io("appending to", &path))?;
        if self.durability == Durability::EveryRecord {
            head.file.sync_data().map_err(io("syncing", &path))?;
        }
        head.seq = record.seq;
        head.hash = record.hash.clone();
        head.since_checkpoint += 1;
        if head.since_checkpoint >= self.checkpoint_every {
            self.checkpoint_locked(&mut head)?;
        }
        Ok(record)
    }

    /// Signs the current head now (if anything was logged) and returns the checkpoint.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        if head.seq == 0 {
            return Ok(None);
        }
        self.checkpoint_locked(&mut head).map(Some)
    }

    fn checkpoint_locked(&self, head: &mut Head) -> Result<Checkpoint, AuditError> {
        // The records it covers must be on disk before the signature is.
        let log = Self::log_path(&self.dir);
        head.file.sync_data().map_err(io("syncing", &log))?;
        let checkpoint = sign_checkpoint(&self.key, head.seq, &head.hash);
        let path = Self::checkpoints_path(&self.dir);
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("opening", &path))?;
        let mut line = serde_json::to_vec(&checkpoint).expect("checkpoint serialises");
        line.push(b'\n');
        file.write_all(&line).map_err(io("appending to", &path))?;
        file.sync_data().map_err(io("syncing", &path))?;
        head.since_checkpoint = 0;
        Ok(checkpoint)
    }
}

/// The last record's seq and hash, and whether the file ends in a torn line.
fn last_record(file: &mut File) -> std::io::Result<(u64, String, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_string(), false));
    }
    // Records are small; read backwards in growing windows until a whole
    // line is in view.
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.take(len - start).read_to_end(&mut buf)?;
        let torn = buf.last() != Some(&b'\n');
        let lines: Vec<&[u8]> = buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        // The first line of a window that does not start the file may be partial.
        let complete = if start == 0 {
            &lines[..]
        } else {
            lines.get(1..).unwrap_or(&[])
        };
        let candidates = if torn {
            complete.split_last().map_or(&[][..], |(_, rest)| rest)
        } else {
            complete
        };
        for line in candidates.iter().rev() {
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                return Ok((record.seq, record.hash, torn));
            }
        }
        if start == 0 {
            return Ok((0, GENESIS.to_string(), torn));
        }
        window *= 4;
    }
}

fn last_checkpoint_seq(dir: &Path) -> u64 {
    let Ok(file) = File::open(AuditLog::checkpoints_path(dir)) else {
        return 0;
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Checkpoint>(&l).ok())
        .map(|c| c.seq)
        .max()
        .unwrap_or(0)
}

/// Reads the records of a log, skipping lines that do not parse (verify
/// reports those). `env` keeps only records about that env.
pub fn read_records(dir: &Path, env: Option<&str>) -> Result<Vec<Record>, AuditError> {
    let path = AuditLog::log_path(dir);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("opening", &path)(e)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io("reading", &path))?;
        if let Ok(record) = serde_json::from_str::<Record>(&line)
            && (env.is_none() || record.env.as_deref() == env)
        {
            out.push(record);
        }
    }
    Ok(out)
}

struct Entry {
    line: usize,
    seq: u64,
    hash: [u8; 32],
    prev: [u8; 32],
    hash_ok: bool,
}

fn hash_bytes(hex: &str) -> Option<[u8; 32]> {
    from_hex(hex).and_then(|b| b.try_into().ok())
}

/// Walks the chain of the log in `dir` and checks every checkpoint in
/// `checkpoints.log` (and `exported`, if given) against it. `host_key`, when
/// given, is the only key whose checkpoints count.
pub fn verify(
    dir: &Path,
    host_key: Option<&VerifyingKey>,
    exported: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let path = AuditLog::log_path(dir);
    let mut entries: Vec<Result<Entry, usize>> = Vec::new();
    match File::open(&path) {
        Ok(file) => {
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                if reader.read_line(&mut line).map_err(io("reading", &path))? == 0 {
                    break;
                }
                number += 1;
                let text = line.trim_end_matches('\n');
                if text.is_empty() {
                    continue;
                }
                let parsed = serde_json::from_str::<Record>(text).ok().and_then(|r| {
                    Some(Entry {
                        line: number,
                        seq: r.seq,
                        hash: hash_bytes(&r.hash)?,
                        prev: hash_bytes(&r.prev)?,
                        hash_ok: r.compute_hash() == r.hash,
                    })
                });
                entries.push(parsed.ok_or(number));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("opening", &path)(e)),
    }
    let records = entries.len();
    let genesis = [0u8; 32];
    let mut chain: Vec<[u8; 32]> = Vec::with_capacity(records);
    let mut problems = Vec::new();

    for (index, entry) in entries.iter().enumerate() {
        let entry = match entry {
            Ok(e) => e,
            Err(line) => {
                problems.push(Problem {
                    kind: ProblemKind::Changed,
                    seq: None,
                    line: Some(*line),
                    message: format!("line {line} is not a valid record: it was changed"),
                });
                break;
            }
        };
        let expected = chain.len() as u64 + 1;
        let last = chain.last().copied().unwrap_or(genesis);
        if !entry.hash_ok {
            problems.push(Problem {
                kind: ProblemKind::Changed,
                seq: Some(entry.seq),
                line: Some(entry.line),
                message: format!(
                    "record {} (line {}) was changed: its content does not match its hash",
                    entry.seq, entry.line
                ),
            });
            break;
        }
        if entry.seq == expected && entry.prev == last {
            chain.push(entry.hash);
            continue;
        }
        let later = |seq: u64| {
            entries[index + 1..]
                .iter()
                .flatten()
                .find(|e| e.seq == seq)
                .map(|e| e.line)
        };
        let problem = if entry.seq > expected {
            match later(expected) {
                Some(line) => Problem {
                    kind: ProblemKind::Reordered,
                    seq: Some(entry.seq),
                    line: Some(entry.line),
                    message: format!(
                        "record {} (line {}) comes before record {expected} (line {line}): records were reordered",
                        entry.seq, entry.line
                    ),
                },
                None => Problem {
                    kind: ProblemKind::Removed,
                    seq: Some(expected),
                    line: Some(entry.line),
                    message: if entry.seq - expected == 1 {
                        format!(
                            "record {expected} was removed (it belonged before line {})",
                            entry.line
                        )
                    } else {
                        format!(
                            "records {expected} to {} were removed (they belonged before line {})",
                            entry.seq - 1,
                            entry.line
                        )
                    },
                },
            }
        } else {
            // A record that does not follow the one before it.
            let next_prev = entries
                .get(index + 1)
                .and_then(|e| e.as_ref().ok())
                .map(|e| e.prev);
            let chained_to = if entry.prev == genesis {
                Some(0)
            } else {
                chain.iter().rposition(|h| *h == entry.prev).map(|i| i + 1)
            };
            let line_of = |seq: u64| {
                entries
                    .iter()
                    .flatten()
                    .find(|e| e.hash == chain[seq as usize - 1])
                    .map_or(entry.line, |e| e.line)
            };
            if next_prev == Some(last) || entry.prev == last {
                // The chain goes on from the head, past this entry.
                Problem {
                    kind: ProblemKind::Inserted,
                    seq: Some(entry.seq),
                    line: Some(entry.line),
                    message: format!(
                        "record {} (line {}) was inserted: the chain goes on from record {} past it",
                        entry.seq,
                        entry.line,
                        expected - 1
                    ),
                }
            } else if let Some(at) = chained_to.filter(|at| (*at as u64) < expected - 1) {
                // It continues from an earlier record: the ones accepted
                // since then were not part of the real chain.
                let first = at as u64 + 1;
                let line = line_of(first);
                Problem {
                    kind: ProblemKind::Inserted,
                    seq: Some(first),
                    line: Some(line),
                    message: format!(
                        "record {first} (line {line}) was inserted: record {} at line {} continues the chain from record {at}",
                        entry.seq, entry.line
                    ),
                }
            } else if entry.seq < expected {
                Problem {
                    kind: ProblemKind::Reordered,
                    seq: Some(entry.seq),
                    line: Some(entry.line),
                    message: format!(
                        "record {} (line {}) comes after record {}: records were reordered",
                        entry.seq,
                        entry.line,
                        expected - 1
                    ),
                }
            } else {
                // Same seq, but it chains to a record we never saw: the
                // record before it was replaced (its hash recomputed).
                let replaced = expected - 1;
                let line = if replaced == 0 {
                    entry.line
                } else {
                    line_of(replaced)
                };
                Problem {
                    kind: ProblemKind::Changed,
                    seq: Some(replaced),
                    line: Some(line),
                    message: format!(
                        "record {replaced} (line {line}) was changed and its hash recomputed: record {} at line {} chains to a different record {replaced}",
                        entry.seq, entry.line
                    ),
                }
            }
        };
        problems.push(problem);
        break;
    }

    // Checkpoints: each must carry a good signature by the host key, and
    // agree with the chain at its seq.
    let mut checkpoints = Vec::new();
    let cp_path = AuditLog::checkpoints_path(dir);
    if let Ok(file) = File::open(&cp_path) {
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io("reading", &cp_path))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Checkpoint>(&line) {
                Ok(c) => checkpoints.push((format!("checkpoint {} of checkpoints.log", n + 1), c)),
                Err(_) => problems.push(Problem {
                    kind: ProblemKind::Checkpoint,
                    seq: None,
                    line: None,
                    message: format!("line {} of checkpoints.log is not a checkpoint", n + 1),
                }),
            }
        }
    }
    if let Some(c) = exported {
        checkpoints.push(("the exported checkpoint".to_string(), c.clone()));
    }
    let chain_broken = !problems.is_empty();
    let mut matched = 0;
    let mut last_good = 0u64;
    checkpoints.sort_by_key(|(_, c)| c.seq);
    for (name, c) in &checkpoints {
        if let Err(reason) = c.check_signature(host_key) {
            problems.push(Problem {
                kind: ProblemKind::Checkpoint,
                seq: Some(c.seq),
                line: None,
                message: format!("{name} (record {}) is not trustworthy: {reason}", c.seq),
            });
            continue;
        }
        match chain.get(c.seq.wrapping_sub(1) as usize) {
            Some(hash) if to_hex(hash) == c.hash => {
                matched += 1;
                last_good = c.seq;
            }
            Some(_) => problems.push(Problem {
                kind: ProblemKind::Checkpoint,
                seq: Some(c.seq),
                line: None,
                message: format!(
                    "record {} does not match {name}, signed {}: the log was rewritten between record {} and record {}",
                    c.seq,
                    c.time,
                    if last_good < c.seq { last_good + 1 } else { 1 },
                    c.seq
                ),
            }),
            None if chain_broken => {}
            None => problems.push(Problem {
                kind: ProblemKind::Removed,
                seq: Some(chain.len() as u64 + 1),
                line: None,
                message: format!(
                    "records {} to {} were removed from the end: {name}, signed {}, covers record {}",
                    chain.len() + 1,
                    c.seq,
                    c.time,
                    c.seq
                ),
            }),
        }
    }
    Ok(VerifyReport {
        records,
        verified: chain.len() as u64,
        checkpoints: matched,
        head_hash: chain.last().map_or(GENESIS.to_string(), |h| to_hex(h)),
        problems,
    })
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
