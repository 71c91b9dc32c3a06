//! Bringing envs to a spec's declared state, and generations.
//!
//! The plan is a pure function of the stored rows, the set of running envs and the spec
//! ([`plan_pure`]); only its thin wrapper [`plan`] asks the database and the shims, so
//! every planning rule is unit-tested without root.

use crate::Engine;
use crate::db::{EnvPlan, EnvRow, now};
use crate::error::{EngineError, EngineResult, rejected};
use crate::lifecycle;
use std::collections::HashSet;
use std::sync::Arc;
use verse_api::{ApplyAction, ApplyReport, Diagnostic, EventKind, Origin, PlannedAction};
use verse_spec::{EnvSpec, Spec};

/// How a spec entry runs.
pub fn plan_from_spec(env: &EnvSpec) -> EnvPlan {
    let (uid, gid) = env.user.as_ref().map_or((0, 0), |u| (u.uid, u.gid));
    EnvPlan {
        image: env.image.clone(),
        backend: env.backend,
        accel: match env.backend {
            verse_spec::Backend::Vm => env.accel.as_str().into(),
            _ => String::new(),
        },
        cpu: env.cpu,
        memory: env.memory,
        pids: env.pids,
        disk: env.disk,
        ephemeral: env.ephemeral,
        command: env.command.clone(),
        env: env
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        hostname: env.hostname.clone(),
        volumes: env
            .volumes
            .iter()
            .map(|v| (v.path.clone(), v.host.clone(), v.readonly))
            .collect(),
        workdir: env.workdir.clone().unwrap_or_else(|| "/".to_string()),
        uid,
        gid,
        stop_timeout_ms: env.stop_timeout_ms,
        trusted_keys: None,
        network: env.network.clone(),
        reach: env.reach.iter().map(|r| (r.env.clone(), r.port)).collect(),
        router: env.router,
        restart: env.restart,
        health: env.health.clone(),
        snapshots: env.snapshots,
        desktop: env.desktop.clone(),
        autostart: env.autostart.clone(),
        label: env.label.clone(),
        clipboard: env.clipboard,
        downloads: env.downloads.clone(),
        log_max: env.log_max,
        shm: env.shm,
        root_user_given: env.user.as_ref().is_some_and(|u| (u.uid, u.gid) == (0, 0)),
        root_workdir_given: env.workdir.as_deref() == Some("/"),
    }
}

/// Checks what the spec parser cannot: that every image it names exists.
pub fn check_images(
    daemon: &Engine,
    spec: &Spec,
    file_name: &str,
    source: &str,
) -> EngineResult<()> {
    let known: Vec<String> = daemon.db.images()?.into_iter().map(|i| i.name).collect();
    let mut diagnostics = Vec::new();
    for (name, env) in &spec.envs {
        if !known.contains(&env.image) && !spec.images.contains_key(&env.image) {
            let (line, column) = locate_image(source, name, &env.image);
            let allowed = if known.is_empty() {
                "the store holds no images yet".to_string()
            } else {
                format!("known images: {}", known.join(", "))
            };
            diagnostics.push(Diagnostic {
                file: file_name.to_string(),
                line,
                column,
                message: format!(
                    "env `{name}`: image `{}` is not in the store ({allowed}); import it with `verse image import {} PATH`",
                    env.image, env.image
                ),
            });
        }
    }
    if diagnostics.is_empty() {
        return Ok(());
    }
    Err(rejected(diagnostics))
}

/// A spec that did not parse or validate; nothing was changed.
pub fn spec_errors(errors: verse_spec::SpecErrors) -> EngineError {
    let diagnostics: Vec<Diagnostic> = errors
        .iter()
        .map(|e| Diagnostic {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            message: e.message.clone(),
        })
        .collect();
    EngineError::rejected(errors.to_string())
        .hint("nothing was changed")
        .diagnostics(diagnostics)
}

/// Finds `image = "NAME"` inside `[env.ENV]` for a positioned message.
fn locate_image(source: &str, env: &str, image: &str) -> (usize, usize) {
    let mut in_env = false;
    for (index, line) in source.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .replace(' ', "");
            in_env = header == format!("env.{env}") || header == format!("env.\"{env}\"");
            continue;
        }
        if in_env && trimmed.starts_with("image") && line.contains(&format!("\"{image}\"")) {
            let column = line.find(&format!("\"{image}\"")).unwrap_or(0) + 1;
            return (index + 1, column);
        }
    }
    (1, 1)
}

/// One step of a plan: what the user is shown, and the row the env will have
/// (`None` when the env goes away).
pub type Planned = (PlannedAction, Option<EnvRow>);

/// Why a spec cannot be planned against the envs that exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec declares an env whose name a one-off `verse run` env already holds.
    #[error("the spec declares env `{0}`, but a one-off env from `verse run` has that name")]
    NameHeldByRun(String),
}

impl From<PlanError> for EngineError {
    fn from(e: PlanError) -> Self {
        let hint = match &e {
            PlanError::NameHeldByRun(name) => {
                format!("remove it with `verse rm {name}`, or rename the env in the spec")
            }
        };
        EngineError::conflict(e.to_string()).hint(hint)
    }
}

/// Computes what must change to reach `spec`: gathers the stored rows and which of the
/// declared envs run, then asks [`plan_pure`].
pub async fn plan(daemon: &Engine, spec: &Spec) -> EngineResult<Vec<Planned>> {
    let rows = daemon.db.envs()?;
    let mut running = HashSet::new();
    for row in rows.iter().filter(|r| spec.envs.contains_key(&r.name)) {
        if crate::envs::is_running(daemon, &row.name).await {
            running.insert(row.name.clone());
        }
    }
    Ok(plan_pure(&rows, &running, spec, now())?)
}

/// What must change to reach `spec`, given the stored `rows`, the names of the envs
/// that `running` now, and the time `now` a new env is created at. Pure: no clock, no
/// database, no shim, so every case is unit-tested below.
pub fn plan_pure(
    rows: &[EnvRow],
    running: &HashSet<String>,
    spec: &Spec,
    now: i64,
) -> Result<Vec<Planned>, PlanError> {
    let is_running = |name: &str| running.contains(name);
    let mut actions = Vec::new();
    for (name, env) in &spec.envs {
        let mut plan = plan_from_spec(env);
        if spec.trust.require_signed {
            plan.trusted_keys = Some(spec.trust.keys.clone());
        }
        let existing = rows.iter().find(|r| &r.name == name);
        let row = EnvRow {
            name: name.clone(),
            origin: Origin::Spec,
            plan: plan.clone(),
            desired: crate::db::Desired::Running,
            remove_on_exit: false,
            created_at: existing.map_or(now, |r| r.created_at),
        };
        let (action, detail) = match existing {
            None => (
                ApplyAction::Create,
                format!("new env on image `{}`", plan.image),
            ),
            Some(old) if old.origin == Origin::Run => {
                return Err(PlanError::NameHeldByRun(name.clone()));
            }
            // Only the policy changed (and the env keeps a network): new rules, same env.
            Some(old)
                if old.plan != plan
                    && old.plan.without_policy() == plan.without_policy()
                    && (old.plan.network == verse_spec::Network::None)
                        == (plan.network == verse_spec::Network::None)
                    && is_running(name) =>
            {
                (
                    ApplyAction::Network,
                    format!("{}, live", describe_change(&old.plan, &plan)),
                )
            }
            Some(old) if old.plan != plan => {
                (ApplyAction::Update, describe_change(&old.plan, &plan))
            }
            Some(_) if !is_running(name) => (ApplyAction::Start, "not running".into()),
            Some(_) => (ApplyAction::Unchanged, String::new()),
        };
        actions.push((
            PlannedAction {
                env: name.clone(),
                action,
                detail,
            },
            Some(row),
        ));
    }
    for old in rows
        .iter()
        .filter(|r| r.origin == Origin::Spec && !spec.envs.contains_key(&r.name))
    {
        actions.push((
            PlannedAction {
                env: old.name.clone(),
                action: ApplyAction::Remove,
                detail: "no longer in the spec".into(),
            },
            None,
        ));
    }
    Ok(actions)
}

fn describe_change(old: &EnvPlan, new: &EnvPlan) -> String {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return String::new();
    };
    let changed: Vec<&str> = new
        .keys()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(String::as_str)
        .collect();
    format!("changed: {}", changed.join(", "))
}

/// Carries out a plan. Every env is attempted; failures are reported, not fatal.
pub async fn execute(
    daemon: &Arc<Engine>,
    actor: &crate::guard::Actor,
    actions: Vec<Planned>,
) -> EngineResult<ApplyReport> {
    let mut report = ApplyReport {
        generation: None,
        actions: Vec::new(),
        failures: Vec::new(),
    };
    for (action, row) in actions {
        let result = match (action.action, &row) {
            (ApplyAction::Remove, _) => match daemon.db.env(&action.env)? {
                Some(old) => lifecycle::remove(daemon, &old).await,
                None => Ok(()),
            },
            (ApplyAction::Update, Some(row)) => crate::supervisor::update(daemon, row).await,
            (ApplyAction::Network, Some(row)) => daemon.db.put_env(row).map_err(Into::into),
            (ApplyAction::Create | ApplyAction::Start, Some(row)) => {
                daemon.db.put_env(row)?;
                let cause = if action.action == ApplyAction::Create {
                    daemon.emit(&row.name, EventKind::Created, None, "verse apply");
                    "verse apply (new env)"
                } else {
                    "verse apply (was not running)"
                };
                lifecycle::start_because(daemon, row, false, cause)
                    .await
                    .map(drop)
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                daemon.audit(
                    actor,
                    action.action.as_str(),
                    Some(&action.env),
                    &action.detail,
                );
                report.actions.push(action)
            }
            Err(e) => report.failures.push(PlannedAction {
                detail: e.message,
                ..action
            }),
        }
    }
    // Rules follow the new specs of every env, changed or not, in one swap.
    if let Err(e) = crate::net::sync(daemon).await {
        report.failures.push(PlannedAction {
            env: "*".into(),
            action: ApplyAction::Network,
            detail: e.message,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    //! The planner against stored rows and a running set built by hand: no root, no daemon.

    use super::*;
    use crate::error::ErrorKind;

    const NOW: i64 = 1_700_000_000;
    const EARLIER: i64 = 1_600_000_000;

    fn spec(source: &str) -> Spec {
        verse_spec::parse_str(source, "verse.toml").expect("test spec parses")
    }

    /// The stored row of env `name` as `source` declared it, created `EARLIER`.
    fn row(source: &str, name: &str, origin: Origin) -> EnvRow {
        let spec = spec(source);
        EnvRow {
            name: name.into(),
            origin,
            plan: plan_from_spec(&spec.envs[name]),
            desired: crate::db::Desired::Running,
            remove_on_exit: false,
            created_at: EARLIER,
        }
    }

    fn running(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// (env, action, detail) of each step, in plan order.
    fn steps(planned: &[Planned]) -> Vec<(String, String, String)> {
        planned
            .iter()
            .map(|(a, _)| (a.env.clone(), a.action.to_string(), a.detail.clone()))
            .collect()
    }

    fn step(env: &str, action: &str, detail: &str) -> (String, String, String) {
        (env.into(), action.into(), detail.into())
    }

    /// What `verse diff` shows for one planned step of a stored env.
    fn diff_of(old: &EnvRow, planned: &Planned) -> verse_api::EnvDiff {
        crate::diff::env_diff(
            &planned.0,
            Some(&old.plan),
            planned.1.as_ref().map(|r| &r.plan),
        )
    }

    const BASE: &str = r#"
[env.web]
image = "busybox"
memory = "256MiB"
network = "nat"
"#;

    #[test]
    fn an_env_not_stored_yet_is_created_with_a_row_dated_now() {
        let planned = plan_pure(&[], &running(&[]), &spec(BASE), NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "create", "new env on image `busybox`")]
        );
        let row = planned[0].1.as_ref().expect("a created env has a row");
        assert_eq!(row.origin, Origin::Spec);
        assert_eq!(row.desired.as_str(), "running");
        assert_eq!(row.created_at, NOW);
        assert_eq!(row.plan.memory, Some(256 * 1024 * 1024));
    }

    #[test]
    fn a_running_env_whose_spec_did_not_change_is_unchanged_and_keeps_its_creation_time() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let planned = plan_pure(&rows, &running(&["web"]), &spec(BASE), NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "unchanged", "")]);
        assert_eq!(planned[0].1.as_ref().unwrap().created_at, EARLIER);
    }

    #[test]
    fn a_stopped_env_whose_spec_did_not_change_is_started() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let planned = plan_pure(&rows, &running(&[]), &spec(BASE), NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "start", "not running")]);
    }

    #[test]
    fn a_limit_change_is_an_update_that_applies_live() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let new = spec(&BASE.replace("256MiB", "512MiB"));
        let planned = plan_pure(&rows, &running(&["web"]), &new, NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "update", "changed: memory")]);
        let diff = diff_of(&rows[0], &planned[0]);
        assert_eq!(diff.applies.as_str(), "live");
        assert_eq!(diff.changes.len(), 1);
        assert_eq!(diff.changes[0].field, "memory");
    }

    #[test]
    fn an_image_or_command_change_is_an_update_that_needs_a_restart() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let new = spec(&format!(
            "{}command = [\"/bin/sh\"]\n",
            BASE.replace("\"busybox\"", "\"alpine\"")
        ));
        let planned = plan_pure(&rows, &running(&["web"]), &new, NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "update", "changed: command, image")]
        );
        let diff = diff_of(&rows[0], &planned[0]);
        assert_eq!(diff.applies.as_str(), "restart");
        let fields: Vec<&str> = diff.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["command", "image"]);
    }

    #[test]
    fn a_policy_change_on_a_running_networked_env_is_applied_live_as_new_rules() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let new = spec(&BASE.replace(
            "network = \"nat\"",
            "network = { allow = [\"192.0.2.7:443\"] }",
        ));
        let planned = plan_pure(&rows, &running(&["web"]), &new, NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "network", "changed: network, live")]
        );
        let row = planned[0].1.as_ref().unwrap();
        assert_eq!(row.plan.network, new.envs["web"].network);
    }

    #[test]
    fn a_reach_change_on_a_running_env_is_applied_live_too() {
        let two = format!("{BASE}\n[env.db]\nimage = \"busybox\"\nnetwork = \"nat\"\n");
        let rows = [
            row(&two, "web", Origin::Spec),
            row(&two, "db", Origin::Spec),
        ];
        let new = spec(&format!(
            "{}reach = [\"db:5432\"]\n\n[env.db]\nimage = \"busybox\"\nnetwork = \"nat\"\n",
            BASE
        ));
        let planned = plan_pure(&rows, &running(&["web", "db"]), &new, NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [
                step("db", "unchanged", ""),
                step("web", "network", "changed: reach, live"),
            ]
        );
    }

    #[test]
    fn a_policy_change_on_a_stopped_env_is_an_ordinary_update() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let new = spec(&BASE.replace(
            "network = \"nat\"",
            "network = { allow = [\"192.0.2.7:443\"] }",
        ));
        let planned = plan_pure(&rows, &running(&[]), &new, NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "update", "changed: network")]);
    }

    #[test]
    fn gaining_or_losing_a_network_is_an_update_not_a_live_rule_change() {
        let offline = BASE.replace("network = \"nat\"\n", "");
        // none -> nat: the env needs a wired namespace, so it restarts.
        let rows = [row(&offline, "web", Origin::Spec)];
        let planned = plan_pure(&rows, &running(&["web"]), &spec(BASE), NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "update", "changed: network")]);
        // nat -> none, the other way round.
        let rows = [row(BASE, "web", Origin::Spec)];
        let planned = plan_pure(&rows, &running(&["web"]), &spec(&offline), NOW).unwrap();
        assert_eq!(steps(&planned), [step("web", "update", "changed: network")]);
    }

    #[test]
    fn a_policy_change_with_another_change_is_an_update() {
        let rows = [row(BASE, "web", Origin::Spec)];
        let new = spec(
            &BASE
                .replace(
                    "network = \"nat\"",
                    "network = { allow = [\"192.0.2.7:443\"] }",
                )
                .replace("256MiB", "512MiB"),
        );
        let planned = plan_pure(&rows, &running(&["web"]), &new, NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "update", "changed: memory, network")]
        );
    }

    #[test]
    fn a_declared_env_no_longer_in_the_spec_is_removed_after_the_declared_ones() {
        let two = format!("{BASE}\n[env.old]\nimage = \"busybox\"\n");
        let rows = [
            row(&two, "old", Origin::Spec),
            row(&two, "web", Origin::Spec),
        ];
        let planned = plan_pure(&rows, &running(&["web", "old"]), &spec(BASE), NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [
                step("web", "unchanged", ""),
                step("old", "remove", "no longer in the spec"),
            ]
        );
        assert!(planned[1].1.is_none(), "a removed env has no new row");
    }

    #[test]
    fn one_off_run_envs_are_left_alone() {
        let scratch = "[env.scratch]\nimage = \"busybox\"\n";
        let rows = [row(scratch, "scratch", Origin::Run)];
        let planned = plan_pure(&rows, &running(&["scratch"]), &spec(BASE), NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "create", "new env on image `busybox`")]
        );
    }

    #[test]
    fn a_declared_env_whose_name_a_run_env_holds_is_refused_with_a_hint() {
        let rows = [row(BASE, "web", Origin::Run)];
        let error = plan_pure(&rows, &running(&["web"]), &spec(BASE), NOW).unwrap_err();
        assert_eq!(error, PlanError::NameHeldByRun("web".into()));
        let error = EngineError::from(error);
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert_eq!(
            error.message,
            "the spec declares env `web`, but a one-off env from `verse run` has that name"
        );
        assert_eq!(
            error.hint.as_deref(),
            Some("remove it with `verse rm web`, or rename the env in the spec")
        );
    }

    #[test]
    fn an_empty_spec_removes_every_declared_env_and_nothing_else() {
        let rows = [
            row(BASE, "web", Origin::Spec),
            row("[env.tmp]\nimage = \"busybox\"\n", "tmp", Origin::Run),
        ];
        let planned = plan_pure(&rows, &running(&["web"]), &spec(""), NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "remove", "no longer in the spec")]
        );
    }

    #[test]
    fn required_signatures_put_the_trusted_keys_in_every_planned_row() {
        let key = format!("ed25519:{}", "ab".repeat(32));
        let signed = format!("[trust]\nrequire_signed = true\nkeys = [\"{key}\"]\n{BASE}");
        let planned = plan_pure(&[], &running(&[]), &spec(&signed), NOW).unwrap();
        let created = planned[0].1.as_ref().unwrap();
        assert_eq!(created.plan.trusted_keys, Some(vec![key]));
        // Requiring signatures is itself a change to a stored env.
        let rows = [row(BASE, "web", Origin::Spec)];
        let planned = plan_pure(&rows, &running(&["web"]), &spec(&signed), NOW).unwrap();
        assert_eq!(
            steps(&planned),
            [step("web", "update", "changed: trusted_keys")]
        );
    }
}
