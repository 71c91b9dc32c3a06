//! Which files processes hold open for writing, read from `/proc`: the
//! quarantine takes a download only once nobody is still writing it. Used by
//! the agent inside a guest and by the daemon on the host (for the processes
//! of a container env).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

/// `(dev, ino)` of every regular file one of `pids` holds open for writing.
/// Needs to read `/proc/PID/fd` of those processes (root, or their owner).
pub fn open_for_writing(pids: impl IntoIterator<Item = i32>) -> HashSet<(u64, u64)> {
    let mut open = HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // stat() through the magic link reaches the open file itself.
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(libc::O_RDWR);
            if flags & libc::O_ACCMODE != libc::O_RDONLY {
                open.insert((meta.dev(), meta.ino()));
            }
        }
    }
    open
}
