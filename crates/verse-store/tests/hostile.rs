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

/// A tar header of `kind` for `name` declaring `size` bytes (no body appended).
fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = RawTar::header(name.as_bytes(), kind, size, b"");
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_cksum();
    }
    h.as_bytes().to_vec()
}

#[test]
fn duplicate_entries_are_refused() {
    refused(
        RawTar::new()
            .file("etc/passwd", b"root:x:0:0")
            .file("etc/passwd", b"evil::0:0")
            .finish(),
        "etc/passwd",
        "/etc/passwd appears twice",
    );
    refused(
        RawTar::new().file("x", b"a file").dir("x/").finish(),
        "x/",
        "appears twice",
    );
    // A directory may repeat (tar writes "./" and "." for the root, or a dir twice).
    let (tmp, store) = new_store();
    let path = tmp.path().join("ok.tar");
    fs::write(
        &path,
        RawTar::new()
            .dir("d/")
            .file("d/f", b"kept")
            .dir("d/")
            .finish(),
    )
    .unwrap();
    let layer = store.import_tar(&path, &mut NoProgress).unwrap();
    let co = store.checkout(&layer.root, 200_000).unwrap();
    assert_eq!(fs::read(co.join("d/f")).unwrap(), b"kept");
}

#[test]
fn device_nodes_are_never_created_and_refused_in_image_layers() {
    let mut tar = RawTar::new().file("ok", b"fine").unterminated();
    tar.extend(raw_header("dev/sda", tar::EntryType::Block, 0));
    tar.extend(raw_header("dev/mem", tar::EntryType::Char, 0));
    tar.extend([0u8; 1024]);
    // Plain import (a rootfs tar): recorded as data, never created in a checkout.
    let (tmp, store) = new_store();
    let path = tmp.path().join("devs.tar");
    fs::write(&path, &tar).unwrap();
    let layer = store.import_tar(&path, &mut NoProgress).unwrap();
    let co = store.checkout(&layer.root, 200_000).unwrap();
    assert!(co.join("ok").exists());
    assert!(fs::symlink_metadata(co.join("dev/sda")).is_err());
    assert!(fs::symlink_metadata(co.join("dev/mem")).is_err());
    // Image layers (OCI import) refuse them, naming the entry.
    let (tmp, store) = new_store();
    let path = tmp.path().join("devs.tar");
    fs::write(&path, &tar).unwrap();
    let options = verse_store::ImportOptions {
        whiteouts: true,
        refuse_devices: true,
        skip_devices: false,
        ..Default::default()
    };
    let err = store
        .import_tar_with(&path, options, &mut NoProgress)
        .unwrap_err();
    match &err {
        StoreError::Refused { entry, reason, .. } => {
            assert_eq!(entry, "dev/sda");
            assert!(reason.contains("block device"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(store.layers().unwrap().is_empty());

    // Another tool's image layer: left out, each named, the rest of the layer kept.
    let options = verse_store::ImportOptions {
        whiteouts: true,
        refuse_devices: true,
        skip_devices: true,
        ..Default::default()
    };
    let layer = store
        .import_tar_with(&path, options, &mut NoProgress)
        .unwrap();
    assert_eq!(layer.devices_left_out, ["/dev/sda", "/dev/mem"]);
    assert_eq!(layer.files, 1);
    let co = store.checkout(&layer.root, 200_000).unwrap();
    assert!(co.join("ok").exists() && fs::symlink_metadata(co.join("dev/sda")).is_err());
}

#[test]
fn a_failed_stream_check_records_nothing() {
    // The check (an image archive's digest) runs after the whole stream and before any tree
    // or layer is written: its refusal leaves only unreferenced content objects.
    let (_tmp, store) = new_store();
    let tar = RawTar::new().dir("etc").file("etc/f", b"content").finish();
    let mut seen = 0;
    let err = store
        .import_tar_stream(
            &mut tar.as_slice(),
            Path::new("blob"),
            tar.len() as u64,
            Default::default(),
            &mut NoProgress,
            &mut || {
                seen += 1;
                Err("blob sha256:00 has sha256:11; the archive is corrupt".into())
            },
        )
        .unwrap_err();
    assert_eq!(seen, 1);
    assert!(err.to_string().contains("blob: blob sha256:00"), "{err}");
    assert!(store.layers().unwrap().is_empty());
    assert_eq!(count_files(&store.dir().join("trees")), 0);
}

#[test]
fn enormous_header_is_refused_without_reading_it_into_memory() {
    // A PAX record declaring 1 GiB, compressed to almost nothing: refused once the reader has
    // seen MAX_HEADER_BYTES of it, naming the entry before it.
    let mut tar = RawTar::new().file("first", b"ok").unterminated();
    tar.extend(raw_header("PaxHeaders/x", tar::EntryType::XHeader, 1 << 30));
    tar.extend(vec![b'a'; 8 << 20]);
    refused(
        gzip(&tar),
        "first",
        "bytes of tar header data after entry \"first\"",
    );
    // Same as a GNU long name.
    let mut tar = RawTar::new().file("first", b"ok").unterminated();
    tar.extend(raw_header(
        "././@LongLink",
        tar::EntryType::GNULongName,
        1 << 30,
    ));
    tar.extend(vec![b'a'; 8 << 20]);
    refused(gzip(&tar), "first", "enormous");
}

#[test]
fn decompression_bomb_is_refused() {
    // One gzip member of 1 MiB of zeros, repeated: tiny on disk, MIN_BOMB_LIMIT + 16 MiB
    // once decompressed (gzip allows concatenated members).
    let zeros = gzip(&vec![0u8; 1 << 20]);
    let mut header = RawTar::new().unterminated();
    let declared = verse_store::MIN_BOMB_LIMIT + (16 << 20);
    header.extend(raw_header("bomb", tar::EntryType::Regular, declared));
    let mut bomb = gzip(&header);
    for _ in 0..(declared >> 20) + 2 {
        bomb.extend_from_slice(&zeros);
    }
    assert!(bomb.len() < (1 << 20), "the bomb is small: {}", bomb.len());
    refused(bomb, "bomb", "decompression bomb");
}
