//! Bringing envs to a spec's declared state, and generations.

use crate::Engine;
use crate::db::{EnvPlan, EnvRow, now};
use crate::error::{EngineError, EngineResult};
use crate::lifecycle;
use std::sync::Arc;
use verse_api::{ApplyReport, Diagnostic, Origin, PlannedAction};
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

/// A spec refused at apply time for these positioned problems; nothing was changed.
pub fn rejected(diagnostics: Vec<Diagnostic>) -> EngineError {
    let summary = diagnostics
        .iter()
        .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
        .collect::<Vec<_>>()
        .join("\n");
    EngineError::rejected(summary)
        .hint("nothing was changed")
        .diagnostics(diagnostics)
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

/// Computes what must change to reach `spec`.
pub async fn plan(
    daemon: &Engine,
    spec: &Spec,
) -> EngineResult<Vec<(PlannedAction, Option<EnvRow>)>> {
    let rows = daemon.db.envs()?;
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
            desired: "running".into(),
            remove_on_exit: false,
            created_at: existing.map_or_else(now, |r| r.created_at),
        };
        let (action, detail) = match existing {
            None => ("create", format!("new env on image `{}`", plan.image)),
            Some(old) if old.origin == Origin::Run => {
                return Err(EngineError::conflict(format!(
                    "the spec declares env `{name}`, but a one-off env from `verse run` has that name"
                ))
                .hint(format!("remove it with `verse rm {name}`, or rename the env in the spec")));
            }
            // Only the policy changed (and the env keeps a network): new rules, same env.
            Some(old)
                if old.plan != plan
                    && old.plan.without_policy() == plan.without_policy()
                    && (old.plan.network == verse_spec::Network::None)
                        == (plan.network == verse_spec::Network::None)
                    && lifecycle::is_running(daemon, name).await =>
            {
                (
                    "network",
                    format!("{}, live", describe_change(&old.plan, &plan)),
                )
            }
            Some(old) if old.plan != plan => ("update", describe_change(&old.plan, &plan)),
            Some(_) if !lifecycle::is_running(daemon, name).await => {
                ("start", "not running".into())
            }
            Some(_) => ("unchanged", String::new()),
        };
        actions.push((
            PlannedAction {
                env: name.clone(),
                action: action.into(),
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
                action: "remove".into(),
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
    actions: Vec<(PlannedAction, Option<EnvRow>)>,
) -> EngineResult<ApplyReport> {
    let mut report = ApplyReport {
        generation: None,
        actions: Vec::new(),
        failures: Vec::new(),
    };
    for (action, row) in actions {
        let result = match (action.action.as_str(), &row) {
            ("remove", _) => match daemon.db.env(&action.env)? {
                Some(old) => lifecycle::remove(daemon, &old).await,
                None => Ok(()),
            },
            ("update", Some(row)) => crate::supervisor::update(daemon, row).await,
            ("network", Some(row)) => daemon.db.put_env(row).map_err(Into::into),
            ("create" | "start", Some(row)) => {
                daemon.db.put_env(row)?;
                let cause = if action.action == "create" {
                    daemon.emit(&row.name, "created", None, "verse apply");
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
                daemon.audit(actor, &action.action, Some(&action.env), &action.detail);
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
            action: "network".into(),
            detail: e.message,
        });
    }
    Ok(report)
}
