//! `verse diff`: what applying a spec would change, field by field, and
//! whether each change applies to the running env in place or needs a restart.

use crate::db::EnvPlan;
use verse_api::{Applies, ApplyAction, ChangeApplies, EnvDiff, FieldChange, PlannedAction};

/// Fields the daemon changes on a running env without restarting it: cgroup
/// limits (written to the live cgroup) and what only the daemon acts on.
const LIVE_FIELDS: &[&str] = &[
    "cpu",
    "memory",
    "pids",
    "stop_timeout_ms",
    "restart",
    "health",
    "snapshots",
];

/// Every field that differs between two plans.
pub fn changes(old: &EnvPlan, new: &EnvPlan) -> Vec<FieldChange> {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| FieldChange {
            field: k.clone(),
            old: old.get(k).cloned().unwrap_or_default(),
            new: new.get(k).cloned().unwrap_or_default(),
            applies: if LIVE_FIELDS.contains(&k.as_str()) {
                ChangeApplies::Live
            } else {
                ChangeApplies::Restart
            },
        })
        .collect()
}

/// Whether every change can be applied to the running env in place.
pub fn all_live(changes: &[FieldChange]) -> bool {
    changes.iter().all(|c| c.applies == ChangeApplies::Live)
}

/// One env's diff from a planned action and the plans on both sides.
pub fn env_diff(action: &PlannedAction, old: Option<&EnvPlan>, new: Option<&EnvPlan>) -> EnvDiff {
    let changes = match (old, new) {
        (Some(old), Some(new)) => changes(old, new),
        _ => Vec::new(),
    };
    let applies = match action.action {
        ApplyAction::Update if all_live(&changes) => Applies::Live,
        ApplyAction::Update => Applies::Restart,
        ApplyAction::Create | ApplyAction::Start => Applies::Start,
        ApplyAction::Remove => Applies::Stop,
        ApplyAction::Network | ApplyAction::Unchanged => Applies::Nothing,
    };
    EnvDiff {
        env: action.env.clone(),
        action: action.action,
        applies,
        changes,
    }
}
