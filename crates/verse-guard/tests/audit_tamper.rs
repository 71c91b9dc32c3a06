//! Every kind of tampering with a real audit log on disk is detected and
//! named at the record where it happened.

use ed25519_dalek::SigningKey;
use std::path::Path;
use verse_guard::audit::{
    self, AuditLog, Checkpoint, CheckpointExt, Durability, ProblemKind, Record, RecordExt,
};

fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

/// A log of `n` records with a checkpoint every `every`.
fn log(dir: &Path, n: u64, every: u64) -> AuditLog {
    let log = AuditLog::open(dir, key(7), Durability::Buffered)
        .unwrap()
        .with_checkpoint_every(every);
    for i in 1..=n {
        log.append(
            "local:uid=0",
            "exec",
            Some("novel"),
            &format!("argv=[\"ls\", \"{i}\"]"),
        )
        .unwrap();
    }
    log
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(AuditLog::log_path(dir))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    std::fs::write(AuditLog::log_path(dir), lines.join("\n") + "\n").unwrap();
}

fn record(line: &str) -> Record {
    serde_json::from_str(line).unwrap()
}

fn line(r: &Record) -> String {
    serde_json::to_string(r).unwrap()
}

fn first_problem(dir: &Path) -> audit::Problem {
    let report = audit::verify(dir, Some(&key(7).verifying_key()), None).unwrap();
    assert!(!report.ok(), "tampering went unnoticed: {report:?}");
    report.problems[0].clone()
}

#[test]
fn intact_log_verifies_and_reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 25, 10));
    let log = AuditLog::open(dir.path(), key(7), Durability::EveryRecord).unwrap();
    let next = log
        .append("daemon", "start", Some("novel"), "reattach")
        .unwrap();
    assert_eq!(next.seq, 26);
    assert_eq!(next.prev, record(&lines(dir.path())[24]).hash);
    let report = audit::verify(dir.path(), Some(&key(7).verifying_key()), None).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.verified, 26);
    assert_eq!(report.checkpoints, 2, "checkpoints at 10 and 20");
    let exported = log.checkpoint().unwrap().unwrap();
    assert_eq!(exported.seq, 26);
    let report = audit::verify(dir.path(), None, Some(&exported)).unwrap();
    assert!(report.ok() && report.checkpoints == 4, "{report:?}");
}

#[test]
fn changed_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 10, 100));
    let mut all = lines(dir.path());
    all[4] = all[4].replace("exec", "list");
    write_lines(dir.path(), &all);
    let p = first_problem(dir.path());
    assert_eq!(
        (p.kind, p.seq, p.line),
        (ProblemKind::Changed, Some(5), Some(5)),
        "{p:?}"
    );
    assert!(
        p.message.contains("record 5 (line 5) was changed"),
        "{}",
        p.message
    );
}

#[test]
fn changed_record_with_recomputed_hash_is_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 10, 100));
    let mut all = lines(dir.path());
    let mut r = record(&all[6]);
    r.actor = "someone-else".into();
    r.hash = r.compute_hash();
    all[6] = line(&r);
    write_lines(dir.path(), &all);
    let p = first_problem(dir.path());
    assert_eq!(
        (p.kind, p.seq, p.line),
        (ProblemKind::Changed, Some(7), Some(7)),
        "{p:?}"
    );
}

#[test]
fn unparseable_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 5, 100));
    let mut all = lines(dir.path());
    all[2].truncate(30);
    write_lines(dir.path(), &all);
    let p = first_problem(dir.path());
    assert_eq!((p.kind, p.line), (ProblemKind::Changed, Some(3)), "{p:?}");
}

#[test]
fn removed_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 10, 100));
    let mut all = lines(dir.path());
    all.remove(3);
    write_lines(dir.path(), &all);
    let p = first_problem(dir.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Removed, Some(4)), "{p:?}");
    assert!(p.message.contains("record 4 was removed"), "{}", p.message);

    // The first record too.
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 3, 100));
    let all = lines(dir.path());
    write_lines(dir.path(), &all[1..]);
    let p = first_problem(dir.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Removed, Some(1)), "{p:?}");
}

#[test]
fn removed_tail_is_caught_by_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 20, 10));
    let all = lines(dir.path());
    write_lines(dir.path(), &all[..16]);
    let p = first_problem(dir.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Removed, Some(17)), "{p:?}");
    assert!(
        p.message
            .contains("records 17 to 20 were removed from the end"),
        "{}",
        p.message
    );
}

#[test]
fn reordered_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 10, 100));
    let mut all = lines(dir.path());
    all.swap(5, 6);
    write_lines(dir.path(), &all);
    let p = first_problem(dir.path());
    assert_eq!(
        (p.kind, p.seq, p.line),
        (ProblemKind::Reordered, Some(7), Some(6)),
        "{p:?}"
    );
    assert!(p.message.contains("comes before record 6"), "{}", p.message);
}

/// A 10-record log with a line inserted at `at` (0-based): a forged copy
/// of record 5 with valid hashes, or a plain copy of line `copy_of`.
fn with_insertion(at: usize, copy_of: Option<usize>) -> audit::Problem {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 10, 100));
    let mut all = lines(dir.path());
    let inserted = match copy_of {
        Some(i) => all[i].clone(),
        None => {
            let mut forged = record(&all[4]);
            forged.detail = "nothing to see".into();
            forged.hash = forged.compute_hash();
            line(&forged)
        }
    };
    all.insert(at, inserted);
    write_lines(dir.path(), &all);
    first_problem(dir.path())
}

#[test]
fn inserted_record_is_named() {
    // A forged record 5 before the real one: the real one goes on from record 4.
    let p = with_insertion(4, None);
    assert_eq!(
        (p.kind, p.seq, p.line),
        (ProblemKind::Inserted, Some(5), Some(5)),
        "{p:?}"
    );
    // The same forged record after the real one.
    let p = with_insertion(5, None);
    assert_eq!(
        (p.kind, p.seq, p.line),
        (ProblemKind::Inserted, Some(5), Some(6)),
        "{p:?}"
    );
    // A copy of a genuine record.
    let p = with_insertion(7, Some(2));
    assert_eq!((p.kind, p.line), (ProblemKind::Inserted, Some(8)), "{p:?}");
}

/// Rewrites records from `from` (0-based) on with valid hashes, as someone
/// who knows the format would.
fn rewrite_chain(dir: &Path, from: usize) {
    let mut all: Vec<Record> = lines(dir).iter().map(|l| record(l)).collect();
    for i in from..all.len() {
        if i == from {
            all[i].detail = "rewritten".into();
        }
        all[i].prev = if i == 0 {
            audit::GENESIS.into()
        } else {
            all[i - 1].hash.clone()
        };
        all[i].hash = all[i].compute_hash();
    }
    write_lines(dir, &all.iter().map(line).collect::<Vec<_>>());
}

#[test]
fn rewritten_chain_is_caught_by_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 30, 10));
    rewrite_chain(dir.path(), 14);
    let p = first_problem(dir.path());
    assert_eq!(
        (p.kind, p.seq),
        (ProblemKind::Checkpoint, Some(20)),
        "{p:?}"
    );
    assert!(
        p.message
            .contains("rewritten between record 11 and record 20"),
        "{}",
        p.message
    );
}

#[test]
fn rewrite_resigned_with_the_host_key_is_caught_by_an_exported_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path(), 30, 10);
    let exported = log.checkpoint().unwrap().unwrap();
    let file = dir.path().join("exported.json");
    std::fs::write(&file, serde_json::to_string(&exported).unwrap()).unwrap();
    drop(log);
    // The attacker holds the host key: rewrite, drop the old checkpoints,
    // and sign new ones.
    rewrite_chain(dir.path(), 3);
    std::fs::remove_file(AuditLog::checkpoints_path(dir.path())).unwrap();
    AuditLog::open(dir.path(), key(7), Durability::Buffered)
        .unwrap()
        .checkpoint()
        .unwrap();
    let alone = audit::verify(dir.path(), Some(&key(7).verifying_key()), None).unwrap();
    assert!(
        alone.ok(),
        "without the exported checkpoint the rewrite passes: {alone:?}"
    );
    let exported = Checkpoint::load(&file).unwrap();
    let report = audit::verify(dir.path(), None, Some(&exported)).unwrap();
    assert!(!report.ok());
    let p = &report.problems[0];
    assert_eq!(
        (p.kind, p.seq),
        (ProblemKind::Checkpoint, Some(30)),
        "{p:?}"
    );
    assert!(
        p.message.contains("the exported checkpoint")
            && p.message.contains("between record 1 and record 30"),
        "{}",
        p.message
    );
}

#[test]
fn forged_or_foreign_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path(), 5, 100);
    let mut cp = log.checkpoint().unwrap().unwrap();
    // Claim another head: the signature no longer matches.
    cp.hash = audit::GENESIS.into();
    let report = audit::verify(dir.path(), None, Some(&cp)).unwrap();
    assert!(
        report.problems[0]
            .message
            .contains("signature does not match"),
        "{report:?}"
    );
    // A checkpoint by another key, checked against the host key.
    let other_dir = tempfile::tempdir().unwrap();
    let other = AuditLog::open(other_dir.path(), key(9), Durability::Buffered).unwrap();
    other.append("x", "y", None, "z").unwrap();
    let foreign = other.checkpoint().unwrap().unwrap();
    let report = audit::verify(dir.path(), Some(&key(7).verifying_key()), Some(&foreign)).unwrap();
    assert!(
        report.problems[0]
            .message
            .contains("not by this host's key"),
        "{report:?}"
    );
}

#[test]
fn torn_last_line_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    drop(log(dir.path(), 3, 100));
    let mut text = std::fs::read_to_string(AuditLog::log_path(dir.path())).unwrap();
    text.push_str("{\"seq\":4,\"time\":\"20");
    std::fs::write(AuditLog::log_path(dir.path()), text).unwrap();
    let log = AuditLog::open(dir.path(), key(7), Durability::Buffered).unwrap();
    assert_eq!(log.append("a", "b", None, "c").unwrap().seq, 4);
    let p = first_problem(dir.path());
    assert_eq!((p.kind, p.line), (ProblemKind::Changed, Some(4)), "{p:?}");
}

#[test]
fn host_key_is_made_once_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/verse/host.key");
    let a = audit::load_or_create_host_key(&path).unwrap();
    let b = audit::load_or_create_host_key(&path).unwrap();
    assert_eq!(a.to_bytes(), b.to_bytes());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(&path, "short").unwrap();
    let err = audit::load_or_create_host_key(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("host.key") && err.contains("64 hex digits"),
        "{err}"
    );
}
