//! Hibernate and resume with CRIU (container backend).

use crate::Daemon;

/// Where a hibernated env's checkpoint lives.
pub fn images_dir(daemon: &Daemon, name: &str) -> std::path::PathBuf {
    daemon.paths.env_dir(name).join("checkpoint")
}

/// A complete checkpoint exists (the marker is written last).
pub fn is_hibernated(daemon: &Daemon, name: &str) -> bool {
    images_dir(daemon, name).join("complete").exists()
}

use crate::db::EnvRow;
use crate::error::{ApiError, ApiResult};
use std::sync::Arc;

pub async fn hibernate(_daemon: &Arc<Daemon>, row: &EnvRow) -> ApiResult<()> {
    Err(ApiError::conflict(format!(
        "hibernate is not available for env `{}`: not implemented yet",
        row.name
    )))
}

pub async fn resume(_daemon: &Arc<Daemon>, row: &EnvRow) -> ApiResult<()> {
    Err(ApiError::conflict(format!(
        "env `{}` is not hibernated",
        row.name
    )))
}
