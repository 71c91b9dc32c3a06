//! An env's own filesystem for its writes (`disk = "SIZE"` in the spec).
//!
//! Without a disk, an env's overlay upper and work directories sit in its env
//! directory on the host's filesystem, and the env can fill that filesystem.
//! With one, they live on an ext4 filesystem of the declared size in a sparse
//! image file, `ENV_DIR/disk.img`, attached through a loop device and mounted
//! at `ENV_DIR/disk/`:
//!
//! - the env can write at most the filesystem's size (it gets ENOSPC, the host
//!   does not); the image grows on the host only as the env writes, and is
//!   mounted with `discard`, so what the env deletes is given back to the host;
//! - the loop device is set up by util-linux `mount -o loop`, which marks it
//!   autoclear: it detaches when the filesystem's last mount goes (the host's,
//!   and the copies in envs' mount namespaces);
//! - the reserved-for-root share is 0 (`mkfs.ext4 -m 0`): the env's root is not
//!   the host's root and could not use it anyway.
//!
//! Envs without a disk pay nothing: [`layer_dir`] is one `stat` of a file
//! that does not exist.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image file in the env directory.
pub const IMAGE: &str = "disk.img";
/// Where the image is mounted, in the env directory.
pub const MOUNTPOINT: &str = "disk";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {detail}")]
    Tool { command: String, detail: String },
    #[error("loop devices are not usable on this host: {0}")]
    NoLoop(String),
    #[error(
        "the disk is {current} bytes and {used} bytes of it are in use; shrinking it to {wanted} bytes is not supported"
    )]
    Shrink {
        current: u64,
        wanted: u64,
        used: u64,
    },
}

pub type Result<T> = std::result::Result<T, DiskError>;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DiskError {
    let path = path.to_path_buf();
    move |source| DiskError::Io { what, path, source }
}

/// Runs a tool; its stderr is the error's detail. A tool that is not installed
/// says which package brings it.
fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}").replace('"', "");
    let out = command.output().map_err(|e| DiskError::Tool {
        command: shown.clone(),
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "not installed (mkfs.ext4 and resize2fs come with e2fsprogs, mount and losetup with util-linux)".into()
        } else {
            e.to_string()
        },
    })?;
    if !out.status.success() {
        return Err(DiskError::Tool {
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Whether the env in `env_dir` has a disk of its own.
pub fn has_disk(env_dir: &Path) -> bool {
    env_dir.join(IMAGE).exists()
}

/// The directory holding the env's writable layer (`upper/`, `work/`, and what
/// goes beside them while a snapshot is restored): `ENV_DIR/disk` for an env with
/// a disk, `ENV_DIR` itself otherwise. Renames among them stay on one filesystem.
pub fn layer_dir(env_dir: &Path) -> PathBuf {
    if has_disk(env_dir) {
        env_dir.join(MOUNTPOINT)
    } else {
        env_dir.to_path_buf()
    }
}

/// Whether something is mounted on `dir` (it is on another device than its parent).
pub fn is_mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(here), Some(Ok(parent))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    here.is_dir() && here.dev() != parent.dev()
}

/// Size and use of a mounted disk, in bytes, as the env sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The image's size (what the spec declared).
    pub size: u64,
    /// Bytes in use on the filesystem.
    pub used: u64,
}

/// The disk's size and use; `None` when the env has no disk or it is not mounted.
pub fn usage(env_dir: &Path) -> Option<Usage> {
    let mountpoint = env_dir.join(MOUNTPOINT);
    if !is_mounted(&mountpoint) {
        return None;
    }
    let size = std::fs::metadata(env_dir.join(IMAGE)).ok()?.len();
    let stat = nix::sys::statvfs::statvfs(&mountpoint).ok()?;
    let used = (stat.blocks() - stat.blocks_free()) * stat.fragment_size();
    Some(Usage { size, used })
}

/// Room kept free when shrinking: ext4's own metadata grows and shrinks with the
/// filesystem, and an env needs some space to run at all.
const SHRINK_MARGIN: u64 = 8 << 20;

/// Whether the disk of the env in `env_dir` can become `wanted` bytes: growing
/// always can; shrinking only when what is in use fits with some room to spare.
/// Checked before an env is stopped for the change, so a refusal changes nothing.
pub fn check_resize(env_dir: &Path, wanted: u64) -> Result<()> {
    let image = env_dir.join(IMAGE);
    let Ok(meta) = std::fs::metadata(&image) else {
        return Ok(());
    };
    if wanted >= meta.len() {
        return Ok(());
    }
    // Unmounted (after a reboot): the offline resize itself refuses what does not fit.
    let Some(usage) = usage(env_dir) else {
        return Ok(());
    };
    if usage.used + SHRINK_MARGIN > wanted {
        return Err(DiskError::Shrink {
            current: meta.len(),
            wanted,
            used: usage.used,
        });
    }
    Ok(())
}

/// Makes `ENV_DIR/disk` the env's mounted filesystem of `size` bytes: creates
/// the image the first time (sparse file, `mkfs.ext4`), mounts it when it is not
/// (first start, or the first after a reboot), and resizes it when `size`
/// changed. Call it with the env stopped. A failure leaves no half-made image,
/// mount or loop device behind; a failed resize leaves the disk as it was.
pub fn ensure(env_dir: &Path, size: u64) -> Result<()> {
    let image = env_dir.join(IMAGE);
    let mountpoint = env_dir.join(MOUNTPOINT);
    let current = std::fs::metadata(&image).map(|m| m.len()).ok();
    let mounted = is_mounted(&mountpoint);
    if mounted && current == Some(size) {
        return Ok(());
    }
    check_loop()?;
    if let Some(current) = current
        && current != size
    {
        if mounted {
            unmount(env_dir)?;
        }
        let resized = wait_detached(&image).and_then(|()| resize(&image, current, size));
        if let Err(e) = resized {
            let _ = mount(&image, &mountpoint);
            return Err(e);
        }
    }
    let fresh = current.is_none();
    if fresh {
        make_image(&image, size)?;
    }
    if let Err(e) = mount(&image, &mountpoint) {
        if fresh {
            let _ = std::fs::remove_file(&image);
            let _ = std::fs::remove_dir(&mountpoint);
        }
        return Err(e);
    }
    tracing::info!(image = %image.display(), size, fresh, "env disk mounted");
    Ok(())
}

/// Resizes an ext4 image no one has mounted (a vm env's data disk while its VM
/// is down) to `size` bytes; see [`resize`].
pub fn resize_image(image: &Path, size: u64) -> Result<()> {
    let current = std::fs::metadata(image)
        .map_err(io_err("reading", image))?
        .len();
    if current == size {
        return Ok(());
    }
    resize(image, current, size)
}

/// Resizes an unmounted image from `current` to `size` bytes (resize2fs
/// offline: online growth needs CAP_SYS_RESOURCE, and shrinking needs the
/// filesystem unmounted anyway). resize2fs refuses a size the data does not fit
/// in before it changes anything.
fn resize(image: &Path, current: u64, size: u64) -> Result<()> {
    fsck(image)?;
    let set_len = |len: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(image)
            .and_then(|f| f.set_len(len))
            .map_err(io_err("resizing", image))
    };
    if size > current {
        set_len(size)?;
        if let Err(e) = run(Command::new("resize2fs").arg(image)) {
            let _ = set_len(current);
            return Err(e);
        }
    } else {
        run(Command::new("resize2fs")
            .arg(image)
            .arg(format!("{}K", size / 1024)))
        .map_err(|e| match e {
            DiskError::Tool { detail, .. } if detail.contains("smaller than minimum") => {
                DiskError::Shrink {
                    current,
                    wanted: size,
                    used: current,
                }
            }
            e => e,
        })?;
        set_len(size)?;
    }
    tracing::info!(image = %image.display(), from = current, to = size, "env disk resized");
    Ok(())
}

/// `e2fsck -f -p`: resize2fs works only on a freshly checked filesystem. Exit
/// codes 0 and 1 mean clean, or fixed without asking.
fn fsck(image: &Path) -> Result<()> {
    let out = Command::new("e2fsck")
        .args(["-f", "-p"])
        .arg(image)
        .output()
        .map_err(|e| DiskError::Tool {
            command: format!("e2fsck -f -p {}", image.display()),
            detail: e.to_string(),
        })?;
    match out.status.code() {
        Some(0 | 1) => Ok(()),
        _ => Err(DiskError::Tool {
            command: format!("e2fsck -f -p {}", image.display()),
            detail: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }),
    }
}

/// Waits (up to 5 s) for the image's loop device to detach: after its host
/// mount went, an env's mount namespace may still hold it for a moment.
fn wait_detached(image: &Path) -> Result<()> {
    for _ in 0..500 {
        if loop_of(image).is_none() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(DiskError::Tool {
        command: format!("resizing {}", image.display()),
        detail: format!(
            "{} still holds it (a process outside the env keeps its filesystem mounted)",
            loop_of(image).unwrap_or_default()
        ),
    })
}

/// The loop device backed by `image`, if any (`/dev/loopN`).
pub fn loop_of(image: &Path) -> Option<String> {
    let image = image.to_string_lossy();
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let backing = std::fs::read_to_string(entry.path().join("loop/backing_file")).ok()?;
            (backing.trim_end() == image)
                .then(|| format!("/dev/{}", entry.file_name().to_string_lossy()))
        })
}

/// A sparse image of `size` bytes with an empty ext4 filesystem, made under a
/// temporary name and renamed into place once complete.
fn make_image(image: &Path, size: u64) -> Result<()> {
    let tmp = image.with_extension("img.tmp");
    let made = (|| {
        let file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.set_len(size).map_err(io_err("sizing", &tmp))?;
        drop(file);
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-L", "verse-env"])
            .arg(&tmp))?;
        std::fs::rename(&tmp, image).map_err(io_err("renaming", &tmp))
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// Mounts the image on a loop device (autoclear) with `discard`: blocks the
/// env frees are punched out of the sparse image, back to the host.
fn mount(image: &Path, mountpoint: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !mountpoint.is_dir() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(mountpoint)
            .map_err(io_err("creating", mountpoint))?;
    }
    run(Command::new("mount")
        .args(["-t", "ext4", "-o", "loop,discard"])
        .arg(image)
        .arg(mountpoint))
}

/// Unmounts the env's disk when it is mounted. Its loop device detaches by
/// itself once no mount namespace holds the filesystem any more (autoclear).
/// A busy mount is detached lazily: it goes when its last user does.
pub fn unmount(env_dir: &Path) -> Result<()> {
    let mountpoint = env_dir.join(MOUNTPOINT);
    if !is_mounted(&mountpoint) {
        return Ok(());
    }
    detach(&mountpoint)
}

fn detach(mountpoint: &Path) -> Result<()> {
    use nix::mount::{MntFlags, umount2};
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(mountpoint, MntFlags::MNT_DETACH),
        Err(e) => Err(e),
    }
    .map_err(|e| DiskError::Io {
        what: "unmounting",
        path: mountpoint.to_path_buf(),
        source: e.into(),
    })
}

/// Unmounts everything mounted at or below `dir`, deepest first: what a crash
/// left of an env whose directory is about to be deleted.
pub fn unmount_under(dir: &Path) {
    let mut points: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|(point, _)| point)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for point in points {
        if let Err(e) = detach(&point) {
            tracing::warn!("{e}");
        }
    }
}

/// (mount point, source) of every mount in this process's namespace.
fn mounts() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(4)?;
            let source = fields.skip_while(|f| *f != "-").nth(2)?;
            Some((PathBuf::from(unescape(point)), unescape(source)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(digits) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(b) = u8::from_str_radix(digits, 8)
        {
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether loop devices can be set up here: `/dev/loop-control` exists and a
/// free device can be found. Returns the free device's name.
pub fn check_loop() -> Result<String> {
    if !Path::new("/dev/loop-control").exists() {
        return Err(DiskError::NoLoop(
            "/dev/loop-control does not exist (no loop driver, or a container without it)".into(),
        ));
    }
    let out = Command::new("losetup")
        .arg("-f")
        .output()
        .map_err(|e| DiskError::NoLoop(format!("running losetup -f: {e}")))?;
    if !out.status.success() {
        return Err(DiskError::NoLoop(format!(
            "no free loop device: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_fields() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }

    #[test]
    fn without_a_disk_the_layer_stays_in_the_env_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(layer_dir(dir.path()), dir.path());
        assert!(!has_disk(dir.path()));
        assert!(usage(dir.path()).is_none());
        assert!(check_resize(dir.path(), 1).is_ok());
        assert!(unmount(dir.path()).is_ok());
    }
}
