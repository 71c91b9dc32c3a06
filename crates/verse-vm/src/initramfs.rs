//! The guest's initramfs: an uncompressed cpio (newc) archive holding
//! `verse-agent` as `/init`, the kernel modules it loads under `/verse/`, and
//! `/verse/modules` naming them in load order. Cached by content.

use crate::kernel::{GUEST_MODULES, Kernel};
use crate::{Result, io_err};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Finds the static `verse-agent` binary: `VERSE_AGENT`, next to `exe`, or in
/// the cargo target dir's static build (`scripts/build-agent.sh`).
pub fn find_agent(exe: &Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VERSE_AGENT") {
        return Some(PathBuf::from(path));
    }
    let dir = exe.parent()?;
    let profile = dir.file_name()?.to_owned();
    let mut candidates = vec![dir.join("verse-agent")];
    // target/<profile>/verse → target/x86_64-unknown-linux-gnu/<profile>/verse-agent
    if let Some(target) = dir.parent() {
        candidates.push(
            target
                .join("x86_64-unknown-linux-gnu")
                .join(&profile)
                .join("verse-agent"),
        );
        candidates.push(target.join("x86_64-unknown-linux-gnu/debug/verse-agent"));
        candidates.push(target.join("x86_64-unknown-linux-gnu/release/verse-agent"));
    }
    candidates.push(PathBuf::from("/usr/lib/verse/verse-agent"));
    // `cargo build` of the workspace also leaves a dynamically linked
    // target/<profile>/verse-agent: as the initramfs' /init it would find no
    // loader and the guest would panic. Only a static one will do.
    candidates
        .into_iter()
        .find(|p| p.is_file() && is_static_elf(p))
}

/// Whether `path` is a 64-bit little-endian ELF with no program interpreter
/// (PT_INTERP): an executable that runs without a dynamic loader.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).all(|i| {
        let at = phoff as usize + i * phentsize as usize;
        u32_at(at).is_some_and(|kind| kind != 3)
    })
}

/// Builds (once per agent + kernel) the initramfs in `cache_dir`; returns its path.
pub fn build(agent: &Path, kernel: &Kernel, cache_dir: &Path) -> Result<PathBuf> {
    let agent_bytes = std::fs::read(agent).map_err(io_err("reading the agent", agent))?;
    let modules = kernel.module_order(GUEST_MODULES)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&agent_bytes);
    hasher.update(kernel.release.as_bytes());
    for (name, _) in &modules {
        hasher.update(name.as_bytes());
    }
    let key = hasher.finalize().to_hex();
    let path = cache_dir.join(format!("initramfs-{}.cpio", &key[..16]));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir).map_err(io_err("creating", cache_dir))?;
    let mut archive = Cpio::default();
    archive.dir("verse");
    archive.dir("proc");
    archive.dir("sys");
    archive.dir("dev");
    archive.file("init", 0o755, &agent_bytes);
    let mut list = String::new();
    for (name, ko) in &modules {
        let bytes = std::fs::read(ko).map_err(io_err("reading module", ko))?;
        archive.file(&format!("verse/{name}.ko"), 0o644, &bytes);
        list.push_str(name);
        list.push('\n');
    }
    archive.file("verse/modules", 0o644, list.as_bytes());
    let bytes = archive.finish();
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
    Ok(path)
}

/// A cpio "newc" archive writer (the format the kernel unpacks).
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | mode, data);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::Cpio;

    /// The test binary itself is dynamically linked (it has a PT_INTERP);
    /// a file that is not ELF is no agent either.
    #[test]
    fn only_static_executables_pass_as_the_agent() {
        let me = std::env::current_exe().unwrap();
        assert!(
            !super::is_static_elf(&me),
            "{} counted as static",
            me.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("init");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(!super::is_static_elf(&script));
        let agent = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/x86_64-unknown-linux-gnu/debug/verse-agent");
        if agent.is_file() {
            assert!(super::is_static_elf(&agent), "{}", agent.display());
        }
    }

    /// Debian's cpio reads back what we write (skipped when cpio is absent).
    #[test]
    fn cpio_lists_the_archive() {
        let mut archive = Cpio::default();
        archive.dir("verse");
        archive.file("init", 0o755, b"#!/bin/sh\n");
        archive.file("verse/modules", 0o644, b"erofs\n");
        let bytes = archive.finish();
        assert_eq!(bytes.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, &bytes).unwrap();
        let out = match std::process::Command::new("cpio")
            .args(["-it", "-F"])
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(_) => {
                eprintln!("!!! SKIPPED: no cpio binary to read the archive back");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            ["verse", "init", "verse/modules"]
        );
    }
}
