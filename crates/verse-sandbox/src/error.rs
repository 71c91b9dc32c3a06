//! Error type of the crate.

use std::io;

/// Everything that can go wrong while building or driving an environment.
///
/// Errors from the forked child carry the step that failed (e.g. `mount overlay on /x`) and
/// the errno, so `Display` reads like `mount overlay on /x: Invalid argument (os error 22)`.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A step inside the environment's child process failed before the command was exec'd.
    #[error("{step}: {source}")]
    Child {
        /// What the child was doing, with the path involved.
        step: String,
        /// The errno, as an `io::Error`.
        #[source]
        source: io::Error,
    },
    /// A host-side operation failed (cgroup files, /proc files, fork, pipes).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The configuration cannot be honoured (bad path, unsupported option, missing controller).
    #[error("invalid sandbox configuration: {0}")]
    Config(String),

    /// The caller's pre-start hook (see [`crate::spawn_with`]) failed.
    #[error("{0}")]
    Hook(String),
    /// Building the seccomp filter failed (a bug, not an environment problem).
    #[error("building the seccomp filter: {0}")]
    Seccomp(String),
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        SandboxError::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The errno behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SandboxError::Child { source, .. } | SandboxError::Io { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// Adds host-side context to `io::Result` / `nix::Result`.
pub(crate) trait Context<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T, SandboxError>;
}

impl<T, E: Into<io::Error>> Context<T> for Result<T, E> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T, SandboxError> {
        self.map_err(|e| SandboxError::io(f(), e))
    }
}
