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
    /// Save the env's running state into `checkpoint/` and end it; the shim
    /// exits once the save is complete. Refused, with the env left running,
    /// when it cannot. Each backend saves its own way: a container env's
    /// processes with CRIU (`criu`, required there), a vm env's whole VM with
    /// QMP migration to `checkpoint/vm.state`; gvisor envs refuse.
    Hibernate {
        /// The CRIU binary (container backend).
        #[serde(default)]
        criu: Option<std::path::PathBuf>,
        /// How long CRIU may take to stop the env's processes before it gives
        /// up and lets them run on (its `--timeout`); `None`: CRIU's default.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Freeze the env in place: its processes (container, gvisor: the cgroup
    /// freezer) or its guest's vCPUs (vm: QMP `stop`; memory stays allocated).
    Pause,
    /// Let a paused env run again (cgroup thaw; vm: QMP `cont`).
    Unpause,
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
    /// The env is paused (frozen cgroup; vm backend: QMP `stop`).
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
    /// With `ok: false`: what kind of refusal this is, where the daemon words
    /// the answer itself (pause, unpause); `error` has the shim's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

/// Refusals the daemon tells apart (see [`ShimResponse::refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The env's command is not running (an attach-mode env before its client).
    NotRunning,
    /// Pause of a paused env.
    AlreadyPaused,
    /// Unpause of an env that is not paused.
    NotPaused,
    /// The backend tried and failed (not the request's fault).
    Failed,
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
    /// A refusal of kind `refusal`, in the shim's words `message`.
    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Self {
        Self {
            refusal: Some(refusal),
            ..Self::error(message)
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

    #[test]
    fn a_refusal_keeps_its_kind_and_words_and_plain_errors_have_none() {
        let line = serde_json::to_string(&ShimResponse::refused(
            Refusal::AlreadyPaused,
            "the env is already paused",
        ))
        .unwrap();
        let back: ShimResponse = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (back.ok, back.refusal, back.error.as_deref()),
            (
                false,
                Some(Refusal::AlreadyPaused),
                Some("the env is already paused")
            )
        );
        let plain = serde_json::to_string(&ShimResponse::error("no")).unwrap();
        assert!(!plain.contains("refusal"), "{plain}");
    }

    #[test]
    fn hibernate_is_one_request_with_optional_criu() {
        let vm: ShimRequest = serde_json::from_str(r#"{"op":"hibernate"}"#).unwrap();
        assert!(matches!(
            vm,
            ShimRequest::Hibernate {
                criu: None,
                timeout_ms: None
            }
        ));
        let line = serde_json::to_string(&ShimRequest::Hibernate {
            criu: Some("/usr/sbin/criu".into()),
            timeout_ms: Some(5000),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"op":"hibernate","criu":"/usr/sbin/criu","timeout_ms":5000}"#
        );
    }
}
