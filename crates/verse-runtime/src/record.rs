//! Small files a shim leaves next to its env, so a daemon that was not
//! watching (crashed, restarted) can still tell what happened.

use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Written when the env has started; removed when the shim ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimRecord {
    pub shim_pid: u32,
    pub init_pid: u32,
    pub started_at: i64,
}

/// Written when the env's main process has ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitRecord {
    pub exit_code: Option<i32>,
    pub finished_at: i64,
    /// Set when the env could not start or its shim failed.
    pub error: Option<String>,
}

impl ShimRecord {
    pub fn path(env_dir: &Path) -> PathBuf {
        env_dir.join("shim.json")
    }
    pub fn load(env_dir: &Path) -> Option<Self> {
        load(&Self::path(env_dir))
    }
}

impl ExitRecord {
    pub fn path(env_dir: &Path) -> PathBuf {
        env_dir.join("exit.json")
    }
    pub fn load(env_dir: &Path) -> Option<Self> {
        load(&Self::path(env_dir))
    }
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `value` as JSON atomically (temp file + rename), so a reader never
/// sees half a record.
pub fn store<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
