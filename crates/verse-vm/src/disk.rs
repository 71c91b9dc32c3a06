//! Disks of a VM env: one read-only erofs image per layer, built once from
//! the store's unshifted checkout and cached by layer hash; and the env's
//! writable ext4 disk, kept across stops unless the env is ephemeral.

use crate::{Result, io_err, run_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of a new writable disk (a sparse file: only what the env writes
/// takes space on the host).
pub const DATA_DISK_BYTES: u64 = 2 << 30;

/// The erofs image of the layer `hash` checked out at `checkout`, built into
/// `cache_dir` if it is not there yet. The checkout must carry the env's own
/// ids (uid base 0): the guest kernel sees the owners as they are on disk.
pub fn layer_image(checkout: &Path, hash: &str, cache_dir: &Path) -> Result<PathBuf> {
    let path = cache_dir.join(format!("{hash}.erofs"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir).map_err(io_err("creating", cache_dir))?;
    let tmp = cache_dir.join(format!("{hash}.erofs.tmp{}", std::process::id()));
    let result = run_tool(
        Command::new("mkfs.erofs")
            .arg("-T0")
            .arg("--quiet")
            .arg(&tmp)
            .arg(checkout),
    );
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
    Ok(path)
}

/// Makes sure the writable disk exists; `fresh` replaces it with an empty one
/// of `bytes` (the env's `disk`, else [`DATA_DISK_BYTES`]). An existing disk is
/// left as it is: resizing it is the caller's.
pub fn data_disk(path: &Path, fresh: bool, bytes: u64) -> Result<()> {
    if path.is_file() && !fresh {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.set_len(bytes).map_err(io_err("sizing", &tmp))?;
    drop(file);
    let result = run_tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "verse-data", "-E"])
            .arg("lazy_itable_init=0,lazy_journal_init=0,nodiscard")
            .arg(&tmp),
    );
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io_err("renaming", &tmp))
}
