//! The control filesystem: every env, image, generation and quarantined
//! file of a Verse daemon as files that any program can read and write
//! (`cat envs/web/state`, `echo pause > envs/web/ctl`, `tail -f
//! envs/web/console`), in the Plan 9 and sysfs tradition.
//!
//! It is purely a client of the daemon's HTTP API, acting with one
//! identity: root's on the local socket, or a biscuit token's over the TLS
//! API (`--token`), so what a mount shows and lets one do is exactly what
//! that identity may, and every write is the API call the CLI makes for the
//! same act, audited, evented and refused in the same words. Reads of state
//! and listings come from a cache the daemon's event stream keeps current,
//! so they cost the daemon nothing and survive its restart. See docs/fs.md.

mod ctl;
mod fs;
mod mount;
mod render;
mod tree;
mod view;

pub use mount::{FS_TYPE, MountOptions, is_mounted, lazy_unmount, mount, watchdog};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0}")]
    Api(#[from] verse_api::ClientError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{}:{line}: {message}", path.display())]
    Config {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// `$VERSE_ROOT/etc/verse/daemon.toml`: settings of `verse daemon` that are
/// not flags. Only `[fs] mount = true` for now: the daemon mounts the
/// control filesystem at `$VERSE_ROOT/run/verse/fs` when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(default)]
    pub fs: FsConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    #[serde(default)]
    pub mount: bool,
}

impl DaemonConfig {
    pub fn path(paths: &verse_api::Paths) -> PathBuf {
        paths.etc().join("daemon.toml")
    }

    /// The config at `path`; none there is the default.
    pub fn load(path: &Path) -> Result<DaemonConfig, FsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(FsError::Io {
                    what: "reading",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            FsError::Config {
                path: path.to_path_buf(),
                line,
                message: format!("{}; allowed: [fs] mount = true|false", e.message()),
            }
        })
    }
}

/// Where the daemon mounts the control filesystem when `[fs] mount = true`.
pub fn daemon_mount_point(paths: &verse_api::Paths) -> PathBuf {
    paths.run_dir().join("fs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_config_reads_fs_mount_and_names_mistakes() {
        let dir = std::env::temp_dir().join(format!("verse-fs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.toml");
        assert_eq!(DaemonConfig::load(&path).unwrap(), DaemonConfig::default());
        std::fs::write(&path, "[fs]\nmount = true\n").unwrap();
        assert!(DaemonConfig::load(&path).unwrap().fs.mount);
        std::fs::write(&path, "[fs]\nmonut = true\n").unwrap();
        let e = DaemonConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("daemon.toml:") && e.contains("`monut`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
