//! Writes: each is parsed into exactly the API call the CLI makes for the
//! same act (`echo pause > ctl` is `verse pause`), so the daemon audits,
//! records and refuses it the same way. A refusal fails the write with an
//! errno and leaves the daemon's words in the `error` file next to it.

use crate::tree::{EnvFile, Limit, Node, QuarantineFile};
use crate::view::View;
use verse_api::{ClientError, EnvInfo, LimitsRequest, RestoreRequest, SnapshotRequest};

/// Why a write was refused: said by the daemon, or by the filesystem before
/// asking (a command it does not know).
#[derive(Debug)]
pub enum Refusal {
    Api(ClientError),
    Usage(String),
}

impl Refusal {
    pub fn errno(&self) -> fuser::Errno {
        match self {
            Refusal::Api(e) => crate::view::errno_of(e),
            Refusal::Usage(_) => fuser::Errno::EINVAL,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Refusal::Api(e) => crate::view::reason(e),
            Refusal::Usage(text) => text.clone(),
        }
    }
}

impl From<ClientError> for Refusal {
    fn from(e: ClientError) -> Self {
        Refusal::Api(e)
    }
}

const ENV_COMMANDS: &str =
    "start, stop, restart, pause, unpause, hibernate, resume, snapshot [LABEL], restore SNAP";

/// Where a refusal of a write to `node` is kept.
pub fn error_key(node: &Node) -> Option<String> {
    match node {
        Node::QuarantineFile(id, _) => Some(format!("quarantine/{id}")),
        other => other.env().map(str::to_string),
    }
}

/// Carries out what was written to `node`, one command per non-empty line.
pub async fn write(view: &View, node: &Node, data: &[u8]) -> Result<(), Refusal> {
    let text = std::str::from_utf8(data)
        .map_err(|_| Refusal::Usage("the command is not UTF-8 text".into()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    for line in lines {
        match node {
            Node::EnvFile(env, EnvFile::Ctl) => env_command(view, env, line).await?,
            Node::Limit(env, which) => set_limit(view, env, *which, line).await?,
            Node::QuarantineFile(id, QuarantineFile::Ctl) => {
                quarantine_command(view, id, line).await?
            }
            _ => return Err(Refusal::Usage("this file is read-only".into())),
        }
    }
    Ok(())
}

async fn post_env(view: &View, env: &str, verb: &str) -> Result<(), Refusal> {
    let info: EnvInfo = view
        .client
        .post(&format!("/v1/envs/{env}/{verb}"), &())
        .await?;
    view.put_env(info);
    Ok(())
}

async fn env_command(view: &View, env: &str, line: &str) -> Result<(), Refusal> {
    let (word, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(w, r)| (w, r.trim()));
    let no_argument = || {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Usage(format!(
                "`{word}` takes no argument (got `{rest}`)"
            )))
        }
    };
    match word {
        // `verse up`, `verse down`, and both for a restart.
        "start" | "up" => {
            no_argument()?;
            post_env(view, env, "up").await
        }
        "stop" | "down" => {
            no_argument()?;
            post_env(view, env, "down").await
        }
        "restart" => {
            no_argument()?;
            post_env(view, env, "down").await?;
            post_env(view, env, "up").await
        }
        "pause" | "unpause" | "hibernate" | "resume" => {
            no_argument()?;
            post_env(view, env, word).await
        }
        "snapshot" => {
            let request = SnapshotRequest {
                label: (!rest.is_empty()).then(|| rest.to_string()),
                volumes: false,
            };
            let _: verse_api::SnapshotInfo = view
                .client
                .post(&format!("/v1/envs/{env}/snapshots"), &request)
                .await?;
            Ok(())
        }
        "restore" => {
            if rest.is_empty() {
                return Err(Refusal::Usage(
                    "`restore` needs a snapshot: restore SNAP (an id from snapshots/, or a label)"
                        .into(),
                ));
            }
            let request = RestoreRequest {
                snapshot: rest.to_string(),
            };
            let info: EnvInfo = view
                .client
                .post(&format!("/v1/envs/{env}/restore"), &request)
                .await?;
            view.put_env(info);
            Ok(())
        }
        other => Err(Refusal::Usage(format!(
            "unknown command `{other}`; write one of: {ENV_COMMANDS}"
        ))),
    }
}

/// Parses a limit as the spec writes it: cores for cpu, a size for memory
/// (`128MiB`, or bytes), a count for pids.
pub fn parse_limit(which: Limit, text: &str) -> Result<LimitsRequest, String> {
    let mut request = LimitsRequest::default();
    match which {
        Limit::Cpu => {
            request.cpu = Some(
                text.parse::<f64>()
                    .map_err(|_| format!("cpu `{text}`: write a number of cores, e.g. 1.5"))?,
            )
        }
        Limit::Memory => {
            let bytes = match text.parse::<u64>() {
                Ok(n) => n,
                Err(_) => verse_spec::units::parse_size(text).map_err(|e| {
                    format!(
                        "memory `{text}`: {e}; write e.g. 128MiB (units: {})",
                        verse_spec::units::SIZE_UNITS
                    )
                })?,
            };
            request.memory = Some(bytes);
        }
        Limit::Pids => {
            request.pids = Some(text.parse::<u64>().map_err(|_| {
                format!("pids `{text}`: write a whole number of processes, e.g. 256")
            })?)
        }
    }
    Ok(request)
}

async fn set_limit(view: &View, env: &str, which: Limit, text: &str) -> Result<(), Refusal> {
    let request = parse_limit(which, text).map_err(Refusal::Usage)?;
    // `verse limit ENV --memory 128MiB` makes the same call.
    let info: EnvInfo = view
        .client
        .post(&format!("/v1/envs/{env}/limits"), &request)
        .await?;
    view.put_env(info);
    Ok(())
}

async fn quarantine_command(view: &View, id: &str, line: &str) -> Result<(), Refusal> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let body = match words.as_slice() {
        ["reject"] => {
            let _: serde_json::Value = view
                .client
                .post(&format!("/v1/quarantine/{id}/reject"), &())
                .await?;
            return Ok(());
        }
        ["release", to] => serde_json::json!({ "to": to, "force": false }),
        ["release", to, "force"] | ["release", "--force", to] => {
            serde_json::json!({ "to": to, "force": true })
        }
        _ => {
            return Err(Refusal::Usage(format!(
                "`{line}`: write `release ENV[:PATH]` (add `force` to release a flagged file) or `reject`"
            )));
        }
    };
    let _: serde_json::Value = view
        .client
        .post(&format!("/v1/quarantine/{id}/release"), &body)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_as_the_spec_writes_them() {
        assert_eq!(
            parse_limit(Limit::Memory, "128MiB").unwrap().memory,
            Some(128 << 20)
        );
        assert_eq!(
            parse_limit(Limit::Memory, "4096").unwrap().memory,
            Some(4096)
        );
        assert_eq!(parse_limit(Limit::Cpu, "0.5").unwrap().cpu, Some(0.5));
        assert_eq!(parse_limit(Limit::Pids, "64").unwrap().pids, Some(64));
        let bad = parse_limit(Limit::Memory, "lots").unwrap_err();
        assert!(bad.contains("memory `lots`"), "{bad}");
        assert!(parse_limit(Limit::Pids, "1.5").is_err());
    }
}
