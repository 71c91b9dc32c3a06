//! Starting a shim from the daemon.
//!
//! The daemon runs `verse __shim CONFIG`; the shim forks once and the first
//! process exits at once, so the shim is adopted by init (or the nearest
//! subreaper), never the daemon's child: a daemon that dies takes no env with
//! it. The shim reports on a pipe once the env has started or failed.

use crate::config::ShimConfig;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// The line a shim writes on its ready pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyLine {
    pub ok: bool,
    pub shim_pid: u32,
    pub init_pid: Option<u32>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Launched {
    pub shim_pid: u32,
    /// None in attach mode, where the env starts when a client attaches.
    pub init_pid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("writing the shim config {path}: {source}")]
    Config {
        path: String,
        source: std::io::Error,
    },
    #[error("starting the shim `{exe}`: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("{0}")]
    Start(String),
    #[error("the shim for `{name}` exited without reporting (see {log})")]
    Silent { name: String, log: String },
}

pub fn launch(exe: &Path, config: &ShimConfig) -> Result<Launched, LaunchError> {
    let config_path = ShimConfig::config_path(&config.env_dir);
    crate::record::store(&config_path, config).map_err(|source| LaunchError::Config {
        path: config_path.display().to_string(),
        source,
    })?;

    let shim_log = config.env_dir.join("shim.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&shim_log)
        .map_err(|source| LaunchError::Config {
            path: shim_log.display().to_string(),
            source,
        })?;
    let (mut ready_read, ready_write) = std::io::pipe().map_err(|source| LaunchError::Spawn {
        exe: exe.display().to_string(),
        source,
    })?;
    let mut child = Command::new(exe)
        .arg("__shim")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(ready_write)))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    // The first shim process exits as soon as it has forked the real shim.
    let _ = child.wait();
    drop(child);

    let mut line = String::new();
    let _ = ready_read.read_to_string(&mut line);
    let Ok(ready) = serde_json::from_str::<ReadyLine>(line.trim()) else {
        return Err(LaunchError::Silent {
            name: config.name.clone(),
            log: shim_log.display().to_string(),
        });
    };
    if !ready.ok {
        return Err(LaunchError::Start(
            ready.error.unwrap_or_else(|| "the shim failed".into()),
        ));
    }
    Ok(Launched {
        shim_pid: ready.shim_pid,
        init_pid: ready.init_pid,
    })
}
