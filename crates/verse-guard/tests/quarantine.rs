//! Real files through the quarantine: a zip bomb the test makes, a zip that
//! climbs out with `..`, a PDF renamed .txt, a clean file; nothing released
//! early or without --force when flagged, nothing lost, no symlink followed.

use std::io::Write;
use std::path::Path;
use verse_guard::quarantine::{Quarantine, QuarantineError, State};
use verse_guard::scan::ArchiveLimits;

fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// A minimal but real PDF header and body.
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

struct Setup {
    _tmp: tempfile::TempDir,
    downloads: std::path::PathBuf,
    dest: std::path::PathBuf,
    q: Quarantine,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = tmp.path().join("downloads");
    let dest = tmp.path().join("personal-home");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::create_dir_all(&dest).unwrap();
    let limits = ArchiveLimits {
        max_total: 64 << 20,
        ..ArchiveLimits::default()
    };
    let q = Quarantine::open(&tmp.path().join("quarantine"), limits).unwrap();
    Setup {
        _tmp: tmp,
        downloads,
        dest,
        q,
    }
}

#[test]
fn flagged_files_are_held_and_need_force() {
    let s = setup();
    // 8 MiB of zeros deflates ~1000:1.
    zip_with(
        &s.downloads.join("photos.zip"),
        &[("a.bin", &vec![0u8; 8 << 20])],
    );
    zip_with(
        &s.downloads.join("tools.zip"),
        &[("../../etc/cron.d/x", b"* * * * * root sh")],
    );
    std::fs::write(s.downloads.join("notes.txt"), PDF).unwrap();
    std::fs::write(
        s.downloads.join("letter.txt"),
        "Dear guild,\nchapter 3 is attached.\n",
    )
    .unwrap();

    let mut items = Vec::new();
    for name in ["photos.zip", "tools.zip", "notes.txt", "letter.txt"] {
        let src = s.downloads.join(name);
        let item = s.q.ingest(&src, "browser", name, 1000, 600).unwrap();
        assert!(!src.exists(), "{name} is still within the env's reach");
        items.push(item);
    }
    let messages = |i: usize| {
        items[i]
            .report
            .findings
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(messages(0).contains("archive bomb"), "{}", messages(0));
    assert!(
        messages(1).contains("`../../etc/cron.d/x` points outside"),
        "{}",
        messages(1)
    );
    assert!(
        messages(2).contains("application/pdf (.pdf) but the name says .txt"),
        "{}",
        messages(2)
    );
    assert!(items[3].report.clean(), "{:?}", items[3].report);

    // Nothing is due before the hold passes; then only the clean file.
    assert!(s.q.due(1599).unwrap().is_empty());
    let due = s.q.due(1600).unwrap();
    assert_eq!(
        due.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["letter.txt"]
    );

    // Flagged: refused without force, nothing written.
    let e = s.q.release(&items[2].id, &s.dest, false).unwrap_err();
    assert!(matches!(e, QuarantineError::Flagged { .. }), "{e}");
    assert!(e.to_string().contains("needs --force"), "{e}");
    assert!(!s.dest.join("notes.txt").exists());
    let released = s.q.release(&items[2].id, &s.dest, true).unwrap();
    assert!(released.forced && released.state == State::Released);
    assert_eq!(std::fs::read(s.dest.join("notes.txt")).unwrap(), PDF);

    // Clean one released, bomb rejected; the records stay.
    s.q.release(&items[3].id, &s.dest, false).unwrap();
    assert!(
        std::fs::read_to_string(s.dest.join("letter.txt"))
            .unwrap()
            .contains("chapter 3")
    );
    let rejected = s.q.reject(&items[0].id).unwrap();
    assert_eq!(rejected.state, State::Rejected);
    let e = s.q.release(&items[0].id, &s.dest, true).unwrap_err();
    assert!(e.to_string().contains("already rejected"), "{e}");
    assert_eq!(s.q.list().unwrap().len(), 4);
}

#[test]
fn release_never_follows_a_symlink_or_overwrites() {
    let s = setup();
    let victim = s.dest.parent().unwrap().join("host-secret");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, s.dest.join("report.txt")).unwrap();
    std::fs::write(s.downloads.join("report.txt"), "hello").unwrap();
    let item =
        s.q.ingest(&s.downloads.join("report.txt"), "work", "report.txt", 0, 0)
            .unwrap();
    let e = s.q.release(&item.id, &s.dest, false).unwrap_err();
    assert!(matches!(e, QuarantineError::Exists(_)), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    // Still held, content kept: nothing lost.
    assert_eq!(s.q.get(&item.id).unwrap().state, State::Held);
    std::fs::remove_file(s.dest.join("report.txt")).unwrap();
    s.q.release(&item.id, &s.dest, false).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.dest.join("report.txt")).unwrap(),
        "hello"
    );
    // Names from the env cannot climb out of the destination either.
    std::fs::write(s.downloads.join("x"), "x").unwrap();
    let item =
        s.q.ingest(&s.downloads.join("x"), "work", "../../escape", 0, 0)
            .unwrap();
    assert_eq!(item.name, "escape");
    assert!(s.q.get("../etc").is_err());
}
