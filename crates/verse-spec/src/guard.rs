//! Quarantined downloads (`downloads`, `hold`, `release_to` on an env) and
//! the copy policy between envs (`[copy]`).

use serde::{Deserialize, Serialize};

/// Default time a quarantined file is held before it may move on: 10 minutes.
pub const DEFAULT_HOLD_MS: u64 = 600_000;
/// Longest hold accepted: 30 days.
pub const MAX_HOLD_MS: u64 = 30 * 86_400_000;
/// Where files land in an env when a target names no path.
pub const DEFAULT_INBOX: &str = "/inbox";

/// `downloads = "quarantine"`: files the env writes to its downloads
/// directory leave it into the host's quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downloads {
    /// `hold`: how long a file waits in quarantine at least.
    pub hold_ms: u64,
    /// `release_to`: where a clean file goes once its hold has passed; `None`
    /// leaves it waiting for a person (`verse quarantine release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_to: Option<Target>,
}

/// `ENV[:PATH]`: a directory inside an env.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub env: String,
    /// Absolute, normalised; `None` means [`DEFAULT_INBOX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Target {
    /// Parses `ENV[:PATH]` (PATH absolute, without `..`).
    pub fn parse(text: &str) -> Result<Target, String> {
        let (env, path) = match text.split_once(':') {
            Some((env, path)) => (env, Some(path)),
            None => (text, None),
        };
        if !crate::validate::is_env_name(env) {
            return Err(format!(
                "`{env}` is not an env name; write ENV or ENV:/absolute/path"
            ));
        }
        let path = match path {
            None => None,
            Some(p) => Some(
                crate::validate::normalise_absolute(p)
                    .map_err(|problem| format!("the path `{p}` {problem}"))?,
            ),
        };
        Ok(Target {
            env: env.to_string(),
            path,
        })
    }

    /// The directory inside the env.
    pub fn dir(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_INBOX)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}:{p}", self.env),
            None => f.write_str(&self.env),
        }
    }
}

/// What `[copy] "a -> b" = ...` lets `verse copy` do from env a to env b: the same words
/// `POST /v1/copy` answers with, so the vocabulary is defined once, in `verse-api`.
pub use verse_api::quarantine::CopyPolicy as CopyAction;

impl crate::Spec {
    /// The copy policy from `from` to `to`: the most specific of `"from -> to"`,
    /// `"from -> *"`, `"* -> to"`, `"* -> *"`; deny when none is declared.
    pub fn copy_policy(&self, from: &str, to: &str) -> CopyAction {
        [
            format!("{from} -> {to}"),
            format!("{from} -> *"),
            format!("* -> {to}"),
            "* -> *".to_string(),
        ]
        .iter()
        .find_map(|k| self.copy.get(k).copied())
        .unwrap_or_default()
    }
}
