mod common;

use std::fs;
use std::time::Instant;

use common::*;
use verse_store::{Hash, NoProgress, Store};

#[test]
fn dir_and_tars_give_the_same_root() {
    let (tmp, store) = new_store();
    let dir = busybox_dir();
    let t = Instant::now();
    let mut calls = 0u64;
    let mut last = (0, 0);
    let layer = store
        .import_dir(&dir, &mut |files, bytes| {
            calls += 1;
            last = (files, bytes);
        })
        .unwrap();
    eprintln!(
        "import_dir busybox: {:?} ({} files, {} bytes)",
        t.elapsed(),
        layer.files,
        layer.size
    );
    assert!(
        calls > 0 && last == (layer.files, layer.size),
        "progress reports every file"
    );
    assert!(layer.files >= 2 && layer.size > 500_000);
    assert_eq!(
        layer.new_bytes, layer.size,
        "a fresh store stores every distinct byte"
    );
    assert!(store.has(&layer.root));
    let info = store.layer_info(&layer.root).unwrap();
    assert_eq!((info.size, info.files), (layer.size, layer.files));

    let plain = tar_of(&dir);
    for (name, bytes) in [
        ("plain", plain.clone()),
        ("gzip", gzip(&plain)),
        ("zstd", zstd(&plain)),
    ] {
        let path = tmp.path().join(format!("rootfs.{name}"));
        fs::write(&path, bytes).unwrap();
        let t = Instant::now();
        let from_tar = store.import_tar(&path, &mut NoProgress).unwrap();
        eprintln!("import_tar busybox ({name}): {:?}", t.elapsed());
        assert_eq!(
            from_tar.root, layer.root,
            "{name} tar gives the dir's root hash"
        );
        assert_eq!(
            from_tar.new_bytes, 0,
            "{name}: nothing new after the dir import"
        );
        assert_eq!((from_tar.files, from_tar.size), (layer.files, layer.size));
    }

    // Re-import stores nothing new.
    let again = import(&store, &dir);
    assert_eq!(again.root, layer.root);
    assert_eq!(again.new_bytes, 0);
}

#[test]
fn script_tar_matches_its_directory() {
    let (tmp, store) = new_store();
    let copy = busybox_copy(tmp.path());
    let from_dir = import(&store, &copy);
    let tar = busybox_dir().with_extension("tar");
    let from_tar = store.import_tar(&tar, &mut NoProgress).unwrap();
    assert_eq!(from_dir.root, from_tar.root);
}

#[test]
fn identical_contents_are_stored_once() {
    let (tmp, store) = new_store();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a"), b"same content").unwrap();
    fs::write(src.join("sub/b"), b"same content").unwrap();
    fs::write(src.join("c"), b"other").unwrap();
    fs::hard_link(src.join("c"), src.join("c-link")).unwrap();
    let layer = import(&store, &src);
    assert_eq!(layer.files, 4);
    assert_eq!(layer.size, 12 + 12 + 5 + 5);
    assert_eq!(layer.new_bytes, 12 + 5);
    assert_eq!(count_files(&store.dir().join("objects")), 2);
    assert!(store.has_object(&Hash::of(b"same content")));
}

#[test]
fn hash_display_parses_back() {
    let (tmp, store) = new_store();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let layer = import(&store, &src);
    let text = layer.root.to_string();
    assert_eq!(text.parse::<Hash>().unwrap(), layer.root);
    let reopened = Store::open(store.dir()).unwrap();
    assert!(reopened.has(&text.parse().unwrap()));
}

#[test]
fn duplicate_tar_entries_are_refused() {
    // Which of two entries an extractor keeps differs between tools; a layer's content must
    // not depend on it (tests/hostile.rs has the cases, and the repeated directory allowed).
    let (tmp, store) = new_store();
    let tar = RawTar::new()
        .dir("d/")
        .file("d/f", b"one")
        .file("d/f", b"two")
        .finish();
    let path = tmp.path().join("dup.tar");
    fs::write(&path, tar).unwrap();
    let err = store.import_tar(&path, &mut NoProgress).unwrap_err();
    assert!(err.to_string().contains("/d/f appears twice"), "{err}");
    assert!(store.layers().unwrap().is_empty());
}
