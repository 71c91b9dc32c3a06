mod common;

use std::fs;
use std::path::Path;

use common::*;
use verse_store::{NoProgress, Store, StoreError};

/// Imports `tar` and expects a refusal naming `entry` and containing `why`; checks that no
/// tree or layer was written and nothing appeared outside the store.
fn refused(tar: Vec<u8>, entry: &str, why: &str) {
    let (tmp, store) = new_store();
    let path = tmp.path().join("hostile.tar");
    fs::write(&path, tar).unwrap();
    let before = listing(tmp.path());
    let err = store.import_tar(&path, &mut NoProgress).unwrap_err();
    let msg = err.to_string();
    match &err {
        StoreError::Refused { entry: e, .. } => assert_eq!(e, entry, "{msg}"),
        other => panic!("expected a refusal of {entry}, got {other:?}"),
    }
    assert!(msg.contains(why), "{msg:?} should say {why:?}");
    assert!(
        msg.contains("hostile.tar"),
        "{msg:?} should name the archive"
    );
    assert!(store.layers().unwrap().is_empty(), "no layer recorded");
    assert_eq!(
        count_files(&store.dir().join("trees")),
        0,
        "no tree written"
    );
    assert_eq!(
        count_files(&store.dir().join("tmp")),
        0,
        "no temporary left"
    );
    assert_eq!(
        listing(tmp.path()),
        before,
        "nothing written outside the store"
    );
    assert!(!Path::new("/etc/passwd-verse-test").exists());
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn parent_dir_escape() {
    refused(
        RawTar::new()
            .file("ok", b"fine")
            .file("../../etc/passwd-verse-test", b"root::0:0")
            .finish(),
        "../../etc/passwd-verse-test",
        "'..'",
    );
    refused(
        RawTar::new().file("a/../../b", b"x").finish(),
        "a/../../b",
        "'..'",
    );
}

#[test]
fn absolute_path() {
    refused(
        RawTar::new().file("/etc/passwd-verse-test", b"x").finish(),
        "/etc/passwd-verse-test",
        "absolute",
    );
}

#[test]
fn write_through_symlink() {
    refused(
        RawTar::new()
            .symlink("a", "/etc")
            .file("a/passwd-verse-test", b"x")
            .finish(),
        "a/passwd-verse-test",
        "parent /a is a symlink",
    );
}

#[test]
fn hardlink_outside_or_unseen() {
    refused(
        RawTar::new().hardlink("x", "../../etc/passwd").finish(),
        "x",
        "'..'",
    );
    refused(
        RawTar::new().hardlink("x", "/etc/passwd").finish(),
        "x",
        "absolute",
    );
    refused(
        RawTar::new()
            .hardlink("x", "later")
            .file("later", b"y")
            .finish(),
        "x",
        "not a regular file seen earlier",
    );
    refused(
        RawTar::new().dir("d/").hardlink("x", "d").finish(),
        "x",
        "not a regular file seen earlier",
    );
}

#[test]
fn absurd_and_short_sizes() {
    refused(
        RawTar::new()
            .short_file("huge", 1 << 41, b"tiny")
            .unterminated(),
        "huge",
        "exceeds the limit",
    );
    refused(
        RawTar::new()
            .short_file("short", 100_000, b"only a few bytes")
            .unterminated(),
        "short",
        "declared size",
    );
}

#[test]
fn good_hardlinks_and_symlinks_are_kept_as_data() {
    let (tmp, store) = new_store();
    let tar = RawTar::new()
        .file("f", b"content")
        .hardlink("g", "./f")
        .symlink("escape", "../../../../etc/shadow")
        .finish();
    let path = tmp.path().join("ok.tar");
    fs::write(&path, gzip(&tar)).unwrap();
    let layer = store.import_tar(&path, &mut NoProgress).unwrap();
    assert_eq!((layer.files, layer.size, layer.new_bytes), (2, 14, 7));
    let co = store.checkout(&layer.root, 200_000).unwrap();
    assert_eq!(
        fs::read_link(co.join("escape")).unwrap(),
        Path::new("../../../../etc/shadow")
    );
    assert_eq!(fs::read(co.join("g")).unwrap(), b"content");
    assert!(store.verify(&layer.root).unwrap().is_empty());
    let _ = Store::open(store.dir()).unwrap();
}
