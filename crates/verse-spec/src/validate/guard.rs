//! `downloads`, `hold`, `release_to` of an env, and the `[copy]` table.

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::{Item, RefKind, Validator, closest, is_env_name};
use crate::caps::{Feature, Support};
use crate::guard::{CopyAction, DEFAULT_HOLD_MS, Downloads, MAX_HOLD_MS, Target};
use crate::model::EnvSpec;

/// The three keys as they were found, checked together once the env is read.
#[derive(Default)]
pub(super) struct DownloadKeys {
    /// Offset of `downloads = "quarantine"`.
    quarantine: Option<usize>,
    hold: Option<(u64, usize)>,
    release_to: Option<(Target, usize)>,
}

impl Validator<'_> {
    pub(super) fn download_key(
        &mut self,
        env: &str,
        key: &str,
        value: &Item<'_>,
        keys: &mut DownloadKeys,
    ) {
        let at = value.span().start;
        match key {
            "downloads" => match value.get_ref() {
                DeValue::String(s) if s == "quarantine" => keys.quarantine = Some(at),
                DeValue::String(s) => {
                    let hint = closest(s, &["quarantine"])
                        .map(|c| format!("did you mean \"{c}\"? "))
                        .unwrap_or_default();
                    self.value_error(
                        key,
                        value,
                        format!("unknown downloads mode; {hint}allowed: \"quarantine\""),
                    );
                }
                _ => self.type_error(key, value, "\"quarantine\""),
            },
            "hold" => {
                if let Some(ms) = self.duration_in(key, value, 0, MAX_HOLD_MS) {
                    keys.hold = Some((ms, at));
                }
            }
            "release_to" => {
                let Some(text) = self.string(key, value, "a target such as \"home:/inbox\"") else {
                    return;
                };
                match Target::parse(text) {
                    Ok(target) if target.env == env => self.value_error(
                        key,
                        value,
                        "an env cannot release its downloads to itself",
                    ),
                    Ok(target) => {
                        self.refs.push((
                            env.to_string(),
                            target.env.clone(),
                            RefKind::ReleaseTo,
                            at,
                        ));
                        keys.release_to = Some((target, at));
                    }
                    Err(problem) => self.value_error(key, value, problem),
                }
            }
            _ => unreachable!("only download keys are passed"),
        }
    }

    pub(super) fn downloads(&mut self, spec: &EnvSpec, keys: DownloadKeys) -> Option<Downloads> {
        let Some(at) = keys.quarantine else {
            for (name, offset) in [
                ("hold", keys.hold.map(|(_, at)| at)),
                ("release_to", keys.release_to.as_ref().map(|(_, at)| *at)),
            ] {
                if let Some(offset) = offset {
                    self.diags.error(
                        offset,
                        format!("{name} applies to quarantined downloads only; add downloads = \"quarantine\""),
                    );
                }
            }
            return None;
        };
        if let Support::Refused(why) = spec.backend.takes(Feature::Downloads) {
            self.diags.error(at, why);
            return None;
        }
        Some(Downloads {
            hold_ms: keys.hold.map_or(DEFAULT_HOLD_MS, |(ms, _)| ms),
            release_to: keys.release_to.map(|(t, _)| t),
        })
    }

    /// `[copy]`: `"from -> to" = "allow" | "deny" | "quarantine"`.
    pub(super) fn copy_table(&mut self, item: &Item<'_>) -> BTreeMap<String, CopyAction> {
        let mut out = BTreeMap::new();
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "copy",
                item,
                "a table such as [copy] \"work -> personal\" = \"quarantine\"",
            );
            return out;
        };
        for (key, value) in table.iter() {
            let text = key.get_ref().as_ref();
            let at = key.span().start;
            let Some((from, to)) = text.split_once("->").map(|(a, b)| (a.trim(), b.trim())) else {
                self.diags.error(
                    at,
                    format!("[copy] `{text}`: write a pair of envs as \"FROM -> TO\" (either may be \"*\")"),
                );
                continue;
            };
            let mut names_ok = true;
            for side in [from, to] {
                if side != "*" && !is_env_name(side) {
                    self.diags.error(
                        at,
                        format!("[copy] `{text}`: `{side}` is not an env name (or \"*\")"),
                    );
                    names_ok = false;
                }
            }
            if names_ok && from == to && from != "*" {
                self.diags.error(
                    at,
                    format!("[copy] `{text}`: a copy goes between two different envs"),
                );
                names_ok = false;
            }
            let action = match value.get_ref() {
                DeValue::String(s) => {
                    match s.as_ref() {
                        "allow" => Some(CopyAction::Allow),
                        "deny" => Some(CopyAction::Deny),
                        "quarantine" => Some(CopyAction::Quarantine),
                        other => {
                            let hint = closest(other, &["allow", "deny", "quarantine"])
                                .map(|c| format!("did you mean \"{c}\"? "))
                                .unwrap_or_default();
                            self.value_error(
                            &format!("[copy] \"{text}\""),
                            value,
                            format!("unknown policy; {hint}allowed: \"allow\", \"deny\", \"quarantine\""),
                        );
                            None
                        }
                    }
                }
                _ => {
                    self.type_error(
                        &format!("[copy] \"{text}\""),
                        value,
                        "\"allow\", \"deny\" or \"quarantine\"",
                    );
                    None
                }
            };
            if !names_ok {
                continue;
            }
            for side in [from, to] {
                if side != "*" {
                    let other = if side == from { to } else { from };
                    self.refs
                        .push((other.to_string(), side.to_string(), RefKind::Copy, at));
                }
            }
            if let Some(action) = action {
                out.insert(format!("{from} -> {to}"), action);
            }
        }
        out
    }
}
