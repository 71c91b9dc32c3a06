//! The shim's control protocol: one JSON request line, one JSON response
//! line, then (for exec and attach) frames in both directions.

use serde::{Deserialize, Serialize};
use verse_api::ExecRequest;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ShimRequest {
    Status,
    /// SIGTERM the env's init, SIGKILL everything after `timeout_ms`; the
    /// response comes when the env has stopped.
    Stop {
        timeout_ms: u64,
    },
    /// Start the env (attach mode) with its stdio on this connection.
    Attach {
        tty: bool,
        rows: u16,
        cols: u16,
    },
    Exec(ExecRequest),
    /// Checkpoint the env's processes with this criu into `checkpoint/` and
    /// end them (container backend); the shim exits once the checkpoint is
    /// complete. Refused, with the env left running, when CRIU cannot.
    Hibernate {
        criu: std::path::PathBuf,
        /// How long CRIU may take to stop the env's processes before it gives
        /// up and lets them run on (its `--timeout`); `None`: CRIU's default.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// vm backend: stop the guest's vCPUs in place (QMP `stop`); its memory
    /// stays allocated.
    Pause,
    /// vm backend: let a paused guest run again (QMP `cont`).
    Unpause,
    /// vm backend: save the whole VM to `checkpoint/vm.state` (QMP migration
    /// to a file) and end QEMU; the shim exits once the save is complete.
    /// Refused, with the env left running, when it cannot.
    HibernateVm,
    /// vm backend: one file operation of the guest's agent. After the `ok`
    /// line the connection carries the agent's messages of its channel
    /// ([`verse_agent::proto`] encoding) to the client, and the client's
    /// frames (a write's stdin and stdin eof) to the agent, until the agent
    /// answers it finally (`Listing`, `ReadDone`, `Done`, `Exists`, `Failed`).
    /// Closing the connection early cancels it.
    GuestFile(verse_agent::proto::FileOp),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShimStatus {
    pub init_pid: Option<u32>,
    pub started_at: Option<i64>,
    pub cpu_usage_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// The shim itself paused the env (vm backend: QMP `stop`).
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShimResponse {
    pub ok: bool,
    pub error: Option<String>,
    pub status: Option<ShimStatus>,
    /// Pid of the started process (exec, attach).
    pub pid: Option<u32>,
    /// Exit code (stop).
    pub exit_code: Option<i32>,
}

impl ShimResponse {
    pub fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verse_agent::proto::FileOp;

    #[test]
    fn guest_file_requests_round_trip() {
        let request = ShimRequest::GuestFile(FileOp::Write {
            dir: "/inbox".into(),
            name: "a.txt".into(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
        });
        let line = serde_json::to_string(&request).unwrap();
        match serde_json::from_str::<ShimRequest>(&line).unwrap() {
            ShimRequest::GuestFile(FileOp::Write { name, uid, .. }) => {
                assert_eq!((name.as_str(), uid), ("a.txt", 1000))
            }
            other => panic!("{other:?} from {line}"),
        }
    }
}
