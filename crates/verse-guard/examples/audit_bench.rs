//! Audit-log benchmark: appends per second (buffered and fdatasync'ed per
//! record) and the time to verify a log of N records (default 1,000,000).
//!
//!   cargo run --release -p verse-guard --example audit_bench -- [N] [DIR]
//!
//! DIR (default: a temp dir under /var/tmp) should be on the disk the
//! daemon's /var/lib/verse uses.

use ed25519_dalek::SigningKey;
use std::time::Instant;
use verse_guard::audit::{self, AuditLog, Durability};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("N is a number"));
    let base = args.next().unwrap_or_else(|| "/var/tmp".into());
    let key = SigningKey::from_bytes(&[7; 32]);

    let dir = tempfile::Builder::new()
        .prefix("audit-bench-")
        .tempdir_in(&base)
        .unwrap();
    let log = AuditLog::open(dir.path(), key.clone(), Durability::Buffered).unwrap();
    let started = Instant::now();
    for i in 0..n {
        log.append(
            "local:uid=0",
            "exec",
            Some("novel"),
            &format!("argv=[\"/bin/sh\",\"-c\",\"job {i}\"]"),
        )
        .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "buffered appends: {n} in {secs:.2} s = {:.0}/s (checkpoint every {})",
        n as f64 / secs,
        audit::CHECKPOINT_EVERY
    );
    drop(log);
    let size = std::fs::metadata(AuditLog::log_path(dir.path()))
        .unwrap()
        .len();

    let started = Instant::now();
    let report = audit::verify(dir.path(), Some(&key.verifying_key()), None).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(report.ok(), "{report:?}");
    println!(
        "verify: {} records ({:.0} MiB), {} checkpoints, in {secs:.2} s = {:.0} records/s",
        report.verified,
        size as f64 / (1 << 20) as f64,
        report.checkpoints,
        report.verified as f64 / secs
    );

    let synced = n.min(2000);
    let dir = tempfile::Builder::new()
        .prefix("audit-bench-")
        .tempdir_in(&base)
        .unwrap();
    let log = AuditLog::open(dir.path(), key, Durability::EveryRecord).unwrap();
    let started = Instant::now();
    for i in 0..synced {
        log.append(
            "local:uid=0",
            "exec",
            Some("novel"),
            &format!("argv=[\"job {i}\"]"),
        )
        .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fdatasync'ed appends (the daemon's setting): {synced} in {secs:.2} s = {:.0}/s",
        synced as f64 / secs
    );
}
