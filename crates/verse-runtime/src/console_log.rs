//! An env's console log with a cap on the host: `console.log` and the file
//! rotated out before it, `console.log.1`, never hold more than `log_max`
//! bytes together.
//!
//! Nothing inside an env writes to these files itself: its output reaches the
//! shim through a pipe (a container's PID 1, runsc) or a FIFO (QEMU's console
//! ports) and the shim writes it here. So an env that prints without end fills
//! at most `log_max` bytes of the host's disk, and while the shim writes, the
//! env's writer waits on the full pipe instead of growing anything.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The rotated-out file beside `path` (`console.log` → `console.log.1`).
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

pub struct ConsoleLog {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Most bytes one file may hold: half of `log_max`.
    per_file: u64,
}

impl ConsoleLog {
    /// Opens (or creates) `path` for appending; at most `log_max` bytes in
    /// `path` and its rotated-out file together (`log_max` is at least 2).
    pub fn open(path: &Path, log_max: u64) -> std::io::Result<ConsoleLog> {
        let file = File::options().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let mut log = ConsoleLog {
            path: path.to_path_buf(),
            file,
            size,
            per_file: (log_max / 2).max(1),
        };
        // A log written under a larger cap (or before there was one) is
        // brought under this one at once.
        if log.size > log.per_file {
            log.rotate()?;
        }
        if let Ok(meta) = std::fs::metadata(rotated_path(path))
            && meta.len() > log.per_file
        {
            let old = File::options().write(true).open(rotated_path(path))?;
            old.set_len(log.per_file)?;
        }
        Ok(log)
    }

    /// Appends `data`, rotating as often as needed to keep under the cap.
    /// Output that would need more than two whole files at once keeps only its
    /// tail, the part a reader wants.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let keep = 2 * self.per_file;
        if data.len() as u64 > keep {
            data = &data[data.len() - keep as usize..];
        }
        while !data.is_empty() {
            let room = self.per_file - self.size.min(self.per_file);
            if room == 0 {
                self.rotate()?;
                continue;
            }
            let n = (data.len() as u64).min(room) as usize;
            self.file.write_all(&data[..n])?;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// `console.log` becomes `console.log.1` (replacing the older one) and a
    /// new, empty `console.log` is started. Readers following the log notice
    /// the new inode and move on to it.
    fn rotate(&mut self) -> std::io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        self.file = File::options().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// The current file (e.g. to hand CRIU the log of an old checkpoint).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// For a writer the shim cannot put behind a pipe (runsc: this gVisor fails
    /// its sandbox's writes to a full host pipe with EIO), which appends to
    /// `console.log` itself: when the file has outgrown its half of the cap, its
    /// content moves to `console.log.1` and the file is emptied in place (the
    /// writer's O_APPEND descriptor goes on at the new end). Called on a timer,
    /// so the cap holds up to what the writer adds between two calls; bytes
    /// written between the copy and the truncation are lost.
    pub fn cap_in_place(&mut self) -> std::io::Result<()> {
        let size = std::fs::metadata(&self.path)?.len();
        if size <= self.per_file {
            return Ok(());
        }
        let rotated = rotated_path(&self.path);
        let mut partial = rotated.as_os_str().to_owned();
        partial.push(".new");
        let mut from = File::open(&self.path)?;
        // Keep the newest half-cap of it: the older part would be cut anyway.
        std::io::Seek::seek(
            &mut from,
            std::io::SeekFrom::Start(size.saturating_sub(self.per_file)),
        )?;
        let mut to = File::create(&partial)?;
        std::io::copy(&mut std::io::Read::take(from, self.per_file), &mut to)?;
        std::fs::rename(&partial, &rotated)?;
        self.file.set_len(0)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_default()
    }

    #[test]
    fn never_holds_more_than_the_cap_and_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = ConsoleLog::open(&path, 1000).unwrap();
        let mut all = Vec::new();
        for i in 0..400u32 {
            let line = format!("line {i}\n");
            log.write(line.as_bytes()).unwrap();
            all.extend_from_slice(line.as_bytes());
            let on_disk = read(&path).len() + read(&rotated_path(&path)).len();
            assert!(on_disk <= 1000, "{on_disk} bytes on disk after line {i}");
        }
        let mut kept = read(&rotated_path(&path));
        kept.extend(read(&path));
        assert!(kept.len() > 500, "only {} bytes kept", kept.len());
        assert!(
            all.ends_with(&kept),
            "the kept bytes are the newest ones, in order"
        );
    }

    #[test]
    fn one_huge_write_keeps_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = ConsoleLog::open(&path, 100).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        log.write(&data).unwrap();
        let mut kept = read(&rotated_path(&path));
        kept.extend(read(&path));
        assert_eq!(kept, data[data.len() - 100..]);
    }

    #[test]
    fn a_log_written_by_another_process_is_capped_in_place() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = ConsoleLog::open(&path, 1000).unwrap();
        let mut writer = File::options().append(true).open(&path).unwrap();
        for i in 0..300u32 {
            writeln!(writer, "line {i}").unwrap();
            if i % 50 == 49 {
                log.cap_in_place().unwrap();
            }
        }
        log.cap_in_place().unwrap();
        let on_disk = read(&path).len() + read(&rotated_path(&path)).len();
        assert!(on_disk <= 1000, "{on_disk} bytes on disk");
        writeln!(writer, "after").unwrap();
        assert!(
            read(&path).ends_with(b"after\n"),
            "the writer goes on at the new end"
        );
        assert!(read(&path).len() < 100, "and not after a hole");
    }

    #[test]
    fn an_oversized_old_log_is_cut_down_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        std::fs::write(rotated_path(&path), vec![b'y'; 5000]).unwrap();
        let _log = ConsoleLog::open(&path, 1000).unwrap();
        let on_disk = read(&path).len() + read(&rotated_path(&path)).len();
        assert!(on_disk <= 1000, "{on_disk}");
    }
}
