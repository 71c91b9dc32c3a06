//! A real disk on a real loop device: made, filled, grown, refused a shrink,
//! unmounted with nothing left attached.

use std::path::Path;

/// Root and a usable loop device, or a loud skip (a failure under CI=true).
fn can_run() -> bool {
    let why = if !nix::unistd::Uid::effective().is_root() {
        Some("not root".to_string())
    } else {
        verse_disk::check_loop().err().map(|e| e.to_string())
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and this host cannot set up loop devices: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

/// Loop devices whose backing file is below `dir`.
fn loops_backed_by(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(file) = std::fs::read_to_string(&backing)
            && file.starts_with(&*dir.to_string_lossy())
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Unmounts what a failed test left mounted in its temp dir.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        verse_disk::unmount_under(self.0);
    }
}

#[test]
fn a_disk_limits_writes_grows_and_goes_without_a_trace() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env_dir = dir.path();
    let _guard = Unmount(env_dir);
    verse_disk::ensure(env_dir, 32 << 20).unwrap();
    let layer = verse_disk::layer_dir(env_dir);
    assert_eq!(layer, env_dir.join("disk"));
    assert!(verse_disk::is_mounted(&layer));
    assert_eq!(loops_backed_by(env_dir).len(), 1);
    // Mounting again is a no-op.
    verse_disk::ensure(env_dir, 32 << 20).unwrap();
    assert_eq!(loops_backed_by(env_dir).len(), 1);

    // Writing 64 MiB into 32 fails with ENOSPC.
    let big = vec![7u8; 1 << 20];
    let mut file = std::fs::File::create(layer.join("fill")).unwrap();
    let mut written = 0;
    let error = loop {
        match std::io::Write::write_all(&mut file, &big) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 64, "wrote 64 MiB into a 32 MiB disk");
    };
    assert_eq!(error.raw_os_error(), Some(libc_enospc()));
    drop(file);
    let used = verse_disk::usage(env_dir).unwrap();
    assert_eq!(used.size, 32 << 20);

    // Growing works (offline: unmounted, resized, mounted again), data kept.
    verse_disk::ensure(env_dir, 48 << 20).unwrap();
    assert_eq!(verse_disk::usage(env_dir).unwrap().size, 48 << 20);
    assert!(layer.join("fill").is_file());
    // Shrinking below what is in use is refused, and changes nothing.
    let shrink = verse_disk::check_resize(env_dir, 32 << 20).unwrap_err();
    assert!(shrink.to_string().contains("in use"), "{shrink}");
    let shrink = verse_disk::ensure(env_dir, 16 << 20).unwrap_err();
    assert!(shrink.to_string().contains("shrinking"), "{shrink}");
    assert_eq!(verse_disk::usage(env_dir).unwrap().size, 48 << 20);
    assert!(layer.join("fill").is_file());
    // Once the data fits, shrinking works.
    std::fs::remove_file(layer.join("fill")).unwrap();
    std::fs::write(layer.join("small"), b"kept").unwrap();
    verse_disk::check_resize(env_dir, 24 << 20).unwrap();
    verse_disk::ensure(env_dir, 24 << 20).unwrap();
    assert_eq!(verse_disk::usage(env_dir).unwrap().size, 24 << 20);
    assert_eq!(std::fs::read(layer.join("small")).unwrap(), b"kept");

    // Unmounted, its loop device detaches by itself; mounted again, the data is there.
    verse_disk::unmount(env_dir).unwrap();
    assert!(!verse_disk::is_mounted(&layer));
    assert!(loops_backed_by(env_dir).is_empty());
    verse_disk::ensure(env_dir, 24 << 20).unwrap();
    assert!(layer.join("small").is_file());
    verse_disk::unmount_under(env_dir);
    assert!(loops_backed_by(env_dir).is_empty());
}

#[test]
fn a_failed_creation_leaves_nothing() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Too small for ext4 with a journal: mkfs.ext4 refuses.
    let error = verse_disk::ensure(dir.path(), 64 << 10).unwrap_err();
    assert!(error.to_string().contains("mkfs.ext4"), "{error}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(loops_backed_by(dir.path()).is_empty());
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}
