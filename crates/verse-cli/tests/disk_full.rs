//! An import that fills the disk: the store lives on a 4 MiB tmpfs; importing more than fits
//! fails with a clear error, records nothing, leaves no temporaries, and the store stays
//! consistent and usable (verify passes, a small import works, gc frees the partial objects).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::store_check::{gc_exactly, manifest_of, reachable};
use common::{Verse, can_run, stderr};

/// Lazily unmounts the tmpfs when the test ends, even on failure.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_import_leaves_the_store_consistent() {
    if !can_run() {
        return;
    }
    let mut v = Verse::start();
    let store = v.root().join("var/lib/verse/store");
    // Move the store (busybox in it) onto a small tmpfs.
    v.kill_daemon();
    let saved = v.root().join("store.saved");
    std::fs::rename(&store, &saved).unwrap();
    std::fs::create_dir(&store).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4m",
            "verse-test-full",
            store.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs");
    let _unmount = Unmount(store.clone());
    let st = Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", saved.display()),
            store.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    v.start_daemon();

    let big = v.root().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..3u8 {
        // Distinct content: nothing deduplicates.
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|n| (n.wrapping_mul(2654435761) >> 13) as u8 ^ i)
            .collect();
        std::fs::write(big.join(format!("part{i}")), data).unwrap();
    }
    let out = v.run(&["image", "import", "big", big.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("/big/part"), "names the file: {err}");
    assert!(
        err.contains("the filesystem holding the store is full"),
        "{err}"
    );
    assert!(!v.ok(&["image", "ls"]).contains("big"));
    assert_eq!(
        std::fs::read_dir(store.join("tmp")).unwrap().count(),
        0,
        "no temporaries"
    );
    assert!(
        std::fs::read_dir(store.join("layers")).unwrap().count() == 1,
        "only busybox"
    );

    // Consistent and usable.
    assert!(
        v.ok(&["image", "verify", "busybox"])
            .starts_with("ok: image")
    );
    let small = v.root().join("small");
    std::fs::create_dir(&small).unwrap();
    std::fs::write(small.join("f"), b"fits").unwrap();
    v.ok(&["image", "import", "small", small.to_str().unwrap()]);
    let kept = [manifest_of(&v, "busybox"), manifest_of(&v, "small")];
    let expected = reachable(&verse_store::Store::open(&store).unwrap(), &kept, &[]);
    gc_exactly(&v, &expected);
    assert_ne!(expected, BTreeSet::new());
}
