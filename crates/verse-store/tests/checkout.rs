mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use common::*;
use verse_store::{ChangeKind, Hash, Store};

const BASE: u32 = 100_000;

fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

#[test]
fn checkout_shifts_owners_and_keeps_modes() {
    let (tmp, store) = new_store();
    let rootfs = busybox_copy(tmp.path());
    // Extra cases: an id beyond the env range, setuid, a fifo.
    fs::write(rootfs.join("bin/suid"), b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("bin/suid"), Some(0), Some(0)).unwrap();
    fs::set_permissions(rootfs.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(rootfs.join("home/far"), b"far away").unwrap();
    std::os::unix::fs::chown(rootfs.join("home/far"), Some(70_000), Some(80_000)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        rootfs.join("run/pipe").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    fs::set_permissions(rootfs.join("run/pipe"), fs::Permissions::from_mode(0o620)).unwrap();
    let layer = import(&store, &rootfs);
    let co = store.checkout(&layer.root, BASE).unwrap();
    assert_eq!(co, store.checkout_path(&layer.root, BASE));

    let root = lstat(&co);
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o7777),
        (BASE, BASE, 0o700)
    );
    let home = lstat(&co.join("home/user"));
    assert_eq!((home.uid(), home.gid()), (BASE + 1000, BASE + 1000));
    assert_eq!(lstat(&co.join("tmp")).mode() & 0o7777, 0o1777);
    let sh = lstat(&co.join("bin/sh"));
    assert!(sh.file_type().is_symlink());
    assert_eq!((sh.uid(), sh.gid()), (BASE, BASE));
    assert_eq!(
        fs::read_link(co.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let bb = lstat(&co.join("bin/busybox"));
    assert_eq!((bb.uid(), bb.mode() & 0o7777), (BASE, 0o755));
    assert_eq!(bb.nlink(), 2, "checkout file is a link of its pool inode");
    assert_eq!(lstat(&co.join("bin/suid")).mode() & 0o7777, 0o4755);
    let far = lstat(&co.join("home/far"));
    assert_eq!((far.uid(), far.gid()), (BASE + 65534, BASE + 65534));
    let pipe = lstat(&co.join("run/pipe"));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&pipe.file_type()));
    assert_eq!(pipe.mode() & 0o7777, 0o620);

    assert_eq!(store.quick_check(&layer.root, BASE), Ok(()));
    assert_eq!(store.verify(&layer.root).unwrap(), vec![]);

    // Idempotent: the verified checkout is reused as is.
    let ino = lstat(&co).ino();
    assert_eq!(store.checkout(&layer.root, BASE).unwrap(), co);
    assert_eq!(lstat(&co).ino(), ino);

    assert!(
        store.checkout(&layer.root, u32::MAX - 10).is_err(),
        "uid base too large"
    );
}

#[test]
fn layers_share_pool_inodes_without_breaking_each_other() {
    let (tmp, store) = new_store();
    let rootfs = busybox_copy(tmp.path());
    let a = import(&store, &rootfs);
    fs::write(rootfs.join("etc/extra"), b"only in b").unwrap();
    let b = import(&store, &rootfs);
    assert_ne!(a.root, b.root);
    let co_a = store.checkout(&a.root, BASE).unwrap();
    let co_b = store.checkout(&b.root, BASE).unwrap();
    assert_eq!(
        lstat(&co_a.join("bin/busybox")).ino(),
        lstat(&co_b.join("bin/busybox")).ino()
    );
    // Linking the shared inode into b changed its ctime; a's record moved along.
    assert_eq!(store.quick_check(&a.root, BASE), Ok(()));
    assert_eq!(store.quick_check(&b.root, BASE), Ok(()));
    // A different uid base gets its own inodes.
    let co_c = store.checkout(&a.root, BASE + 65536).unwrap();
    assert_ne!(
        lstat(&co_a.join("bin/busybox")).ino(),
        lstat(&co_c.join("bin/busybox")).ino()
    );
    store.remove_checkout(&b.root, BASE).unwrap();
    assert!(!co_b.exists());
    assert_eq!(store.quick_check(&a.root, BASE), Ok(()));
    assert_eq!(store.quick_check(&a.root, BASE + 65536), Ok(()));
    assert!(
        store.quick_check(&b.root, BASE).is_err(),
        "a removed checkout does not pass"
    );
}

#[test]
fn quick_check_is_fast_on_busybox() {
    let (_tmp, store) = new_store();
    let layer = import(&store, &busybox_dir());
    let t = Instant::now();
    store.checkout(&layer.root, BASE).unwrap();
    eprintln!("checkout busybox: {:?}", t.elapsed());
    let t = Instant::now();
    let n = 200;
    for _ in 0..n {
        store.quick_check(&layer.root, BASE).unwrap();
    }
    let each = t.elapsed() / n;
    let t = Instant::now();
    assert!(store.verify(&layer.root).unwrap().is_empty());
    eprintln!(
        "quick_check busybox: {each:?} per call; verify: {:?}",
        t.elapsed()
    );
    assert!(each.as_millis() < 50, "quick_check took {each:?}");
}

/// Applies one tampering to a fresh checkout, then checks that verify names exactly
/// `expect` and quick_check flags it, and that a new checkout repairs it.
fn tamper_case(
    tamper: impl FnOnce(&Store, &Path, &Hash),
    expect: &[(&str, ChangeKind)],
    quick_path: &str,
) {
    let (tmp, store) = new_store();
    let rootfs = busybox_copy(tmp.path());
    let layer = import(&store, &rootfs);
    let co = store.checkout(&layer.root, BASE).unwrap();
    assert_eq!(store.quick_check(&layer.root, BASE), Ok(()));
    tamper(&store, &co, &layer.root);

    let changes = store.verify(&layer.root).unwrap();
    let got: Vec<(&str, ChangeKind)> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(got, expect, "verify reported {changes:#?}");

    let quick = store
        .quick_check(&layer.root, BASE)
        .expect_err("quick_check must flag tampering");
    assert!(
        quick.iter().any(|c| c.path == quick_path),
        "quick_check should name {quick_path}: {quick:#?}"
    );
}

#[test]
fn tamper_content() {
    tamper_case(
        |_, co, _| {
            let p = co.join("etc/motd");
            let mut bytes = fs::read(&p).unwrap();
            bytes[0] ^= 1;
            fs::write(&p, bytes).unwrap();
        },
        &[("/etc/motd", ChangeKind::Changed)],
        "/etc/motd",
    );
}

#[test]
fn tamper_content_keeping_size_and_mtime() {
    tamper_case(
        |_, co, _| {
            let p = co.join("etc/hostname");
            let before = lstat(&p);
            let mut bytes = fs::read(&p).unwrap();
            bytes[0] = b'B';
            fs::write(&p, bytes).unwrap();
            // Put the mtime back: only ctime can tell now.
            let f = fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(before.modified().unwrap()).unwrap();
        },
        &[("/etc/hostname", ChangeKind::Changed)],
        "/etc/hostname",
    );
}

#[test]
fn tamper_mode() {
    tamper_case(
        |_, co, _| {
            fs::set_permissions(co.join("etc/passwd"), fs::Permissions::from_mode(0o666)).unwrap()
        },
        &[("/etc/passwd", ChangeKind::Changed)],
        "/etc/passwd",
    );
}

#[test]
fn tamper_added_file() {
    tamper_case(
        |_, co, _| fs::write(co.join("etc/evil"), b"x").unwrap(),
        &[("/etc/evil", ChangeKind::Added)],
        "/etc",
    );
}

#[test]
fn tamper_deleted_file() {
    tamper_case(
        |_, co, _| fs::remove_file(co.join("etc/group")).unwrap(),
        &[("/etc/group", ChangeKind::Missing)],
        "/etc/group",
    );
}

#[test]
fn tamper_symlink_target() {
    tamper_case(
        |_, co, _| {
            fs::remove_file(co.join("bin/ls")).unwrap();
            std::os::unix::fs::symlink("/tmp/evil", co.join("bin/ls")).unwrap();
            std::os::unix::fs::lchown(co.join("bin/ls"), Some(BASE), Some(BASE)).unwrap();
        },
        &[("/bin/ls", ChangeKind::Changed)],
        "/bin/ls",
    );
}

#[test]
fn tamper_object() {
    tamper_case(
        |store, _, _| {
            let obj = store.object_path(&Hash::of(
                &fs::read(busybox_dir().join("etc/passwd")).unwrap(),
            ));
            let mut bytes = fs::read(&obj).unwrap();
            bytes[0] ^= 1;
            fs::write(&obj, bytes).unwrap();
        },
        &[("/etc/passwd", ChangeKind::Changed)],
        "/etc/passwd",
    );
}

#[test]
fn tampered_checkout_is_rebuilt_and_tampered_object_refused() {
    let (tmp, store) = new_store();
    let rootfs = busybox_copy(tmp.path());
    let layer = import(&store, &rootfs);
    let co = store.checkout(&layer.root, BASE).unwrap();
    fs::write(co.join("etc/motd"), b"owned\n").unwrap();
    fs::write(co.join("etc/evil"), b"x").unwrap();
    assert!(store.quick_check(&layer.root, BASE).is_err());
    // checkout rebuilds it, replacing the tampered pool inode too.
    let co = store.checkout(&layer.root, BASE).unwrap();
    assert_eq!(store.quick_check(&layer.root, BASE), Ok(()));
    assert_eq!(store.verify(&layer.root).unwrap(), vec![]);
    assert_eq!(
        fs::read(co.join("etc/motd")).unwrap(),
        fs::read(rootfs.join("etc/motd")).unwrap()
    );
    assert!(!co.join("etc/evil").exists());

    // A corrupt object stops a new checkout.
    let obj = store.object_path(&Hash::of(&fs::read(rootfs.join("etc/passwd")).unwrap()));
    fs::write(&obj, b"root::0:0::/:/bin/sh\n").unwrap();
    store.remove_checkout(&layer.root, BASE).unwrap();
    let err = store.checkout(&layer.root, BASE).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(!store.checkout_path(&layer.root, BASE).exists());
}

#[test]
fn concurrent_handles_agree() {
    let (_tmp, store) = new_store();
    let layer = import(&store, &busybox_dir());
    let dir = store.dir().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let dir = dir.clone();
            let root = layer.root;
            std::thread::spawn(move || {
                // Separate handles lock through separate open files, as separate processes do.
                let store = Store::open(&dir).unwrap();
                let base = BASE + (i % 2) * 65536;
                let co = store.checkout(&root, base).unwrap();
                store.quick_check(&root, base).unwrap();
                co
            })
        })
        .collect();
    let paths: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(paths[0], paths[2]);
    assert_eq!(paths[1], paths[3]);
    assert_eq!(store.quick_check(&layer.root, BASE), Ok(()));
    assert_eq!(store.quick_check(&layer.root, BASE + 65536), Ok(()));
    assert_eq!(store.verify(&layer.root).unwrap(), vec![]);
}

#[test]
fn pool_reuse_trusts_recorded_inodes_and_replaces_tampered_ones() {
    let (tmp, store) = new_store();
    let rootfs = busybox_copy(tmp.path());
    let layer = import(&store, &rootfs);
    let co = store.checkout(&layer.root, BASE).unwrap();
    let busybox_ino = lstat(&co.join("bin/busybox")).ino();
    let motd_ino = lstat(&co.join("etc/motd")).ino();
    store.remove_checkout(&layer.root, BASE).unwrap();

    // While no checkout links it, someone rewrites a pool inode in place (same size).
    let pool = store.dir().join("pool");
    let tampered = fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| lstat(p).ino() == motd_ino)
        .expect("the pool inode of /etc/motd");
    let mut bytes = fs::read(&tampered).unwrap();
    bytes[0] ^= 1;
    fs::write(&tampered, &bytes).unwrap();

    let co = store.checkout(&layer.root, BASE).unwrap();
    // The untouched pool inode is reused as is; the tampered one is replaced by a good copy.
    assert_eq!(lstat(&co.join("bin/busybox")).ino(), busybox_ino);
    assert_ne!(lstat(&co.join("etc/motd")).ino(), motd_ino);
    assert_eq!(
        fs::read(co.join("etc/motd")).unwrap(),
        fs::read(rootfs.join("etc/motd")).unwrap()
    );
    assert_eq!(store.quick_check(&layer.root, BASE), Ok(()));

    // A corrupt object behind a recorded (otherwise trusted) pool inode still stops a new
    // checkout.
    store.remove_checkout(&layer.root, BASE).unwrap();
    let obj = store.object_path(&Hash::of(&fs::read(rootfs.join("bin/busybox")).unwrap()));
    let mut bytes = fs::read(&obj).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&obj, bytes).unwrap();
    let err = store.checkout(&layer.root, BASE).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn a_host_dir_comes_back_with_its_owners_exactly_as_imported() {
    let (tmp, store) = new_store();
    let dir = tmp.path().join("vol");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/f"), b"data").unwrap();
    fs::write(dir.join(".wh..wh..opq"), b"just a name").unwrap();
    // Owners far outside any env's 65536 ids must survive as they are.
    std::os::unix::fs::chown(&dir, Some(100_000_000), Some(100_000_000)).unwrap();
    std::os::unix::fs::chown(dir.join("sub/f"), Some(100_001_000), Some(70_000)).unwrap();
    fs::set_permissions(dir.join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
    let options = verse_store::ImportOptions {
        id_base: 0,
        whiteouts: false,
        refuse_devices: true,
        skip_devices: false,
    };
    let layer = store
        .import_dir_with(&dir, options, &mut verse_store::NoProgress)
        .unwrap();
    let dest = tmp.path().join("vol.restoring");
    store.materialize_host_dir(&layer.root, &dest).unwrap();
    assert_eq!(
        (lstat(&dest).uid(), lstat(&dest).gid()),
        (100_000_000, 100_000_000)
    );
    let f = lstat(&dest.join("sub/f"));
    assert_eq!(
        (f.uid(), f.gid(), f.mode() & 0o7777),
        (100_001_000, 70_000, 0o640)
    );
    assert_eq!(fs::read(dest.join("sub/f")).unwrap(), b"data");
    assert_eq!(fs::read(dest.join(".wh..wh..opq")).unwrap(), b"just a name");
    // Never over an existing directory.
    assert!(store.materialize_host_dir(&layer.root, &dest).is_err());
}
