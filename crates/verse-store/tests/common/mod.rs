//! Shared helpers for the store's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use verse_store::{Layer, NoProgress, Store};

/// The busybox rootfs built by scripts/busybox-rootfs.sh (cached after the first call).
pub fn busybox_dir() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run busybox-rootfs.sh");
    assert!(
        out.status.success(),
        "busybox-rootfs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A copy of the busybox rootfs without the script's cache stamp (which its .tar omits).
pub fn busybox_copy(dest: &Path) -> PathBuf {
    let src = busybox_dir();
    let dst = dest.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    for e in std::fs::read_dir(&dst).unwrap() {
        let e = e.unwrap();
        if e.file_name()
            .to_string_lossy()
            .starts_with(".verse-rootfs-")
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    dst
}

pub fn new_store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    (tmp, store)
}

pub fn import(store: &Store, dir: &Path) -> Layer {
    store.import_dir(dir, &mut NoProgress).unwrap()
}

/// A tar of `dir` made with the tar crate (root entry "./", symlinks kept as symlinks).
pub fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Raw tar entries, written by hand so hostile names survive (the tar crate's builder
/// refuses them, as it should).
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        RawTar(Vec::new())
    }

    pub fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    pub fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.0.extend_from_slice(
            Self::header(
                name.as_bytes(),
                tar::EntryType::Regular,
                data.len() as u64,
                b"",
            )
            .as_bytes(),
        );
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    /// A file header declaring `declared` bytes followed by only `data`, then EOF.
    pub fn short_file(mut self, name: &str, declared: u64, data: &[u8]) -> Self {
        self.0.extend_from_slice(
            Self::header(name.as_bytes(), tar::EntryType::Regular, declared, b"").as_bytes(),
        );
        self.0.extend_from_slice(data);
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.0.extend_from_slice(
            Self::header(
                name.as_bytes(),
                tar::EntryType::Symlink,
                0,
                target.as_bytes(),
            )
            .as_bytes(),
        );
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.0.extend_from_slice(
            Self::header(name.as_bytes(), tar::EntryType::Link, 0, target.as_bytes()).as_bytes(),
        );
        self
    }

    pub fn dir(mut self, name: &str) -> Self {
        let mut h = Self::header(name.as_bytes(), tar::EntryType::Directory, 0, b"");
        h.set_mode(0o755);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }

    pub fn unterminated(self) -> Vec<u8> {
        self.0
    }
}

/// Number of files under a directory, recursively.
pub fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}
