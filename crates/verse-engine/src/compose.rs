//! `POST /v1/compose`: the same composer as `verse compose`, for API clients and the web UI.
//! The daemon's own VERSE_COMPOSE_ENDPOINT (if any) names the model; the answer is the JSON
//! `verse compose --json` prints.

use std::sync::Arc;
use verse_api::{ComposeAddReport, ComposeAddRequest, ComposeRequest, DiffReport};
use verse_compose::model::{ModelConfig, compose_with};
use verse_compose::{ComposeError, Options};

use crate::Engine;
use crate::error::{EngineError, EngineResult};
use crate::guard::Actor;

pub async fn compose(request: ComposeRequest) -> EngineResult<serde_json::Value> {
    let options = Options { name: request.name };
    let config = ModelConfig::from_env();
    let composition = compose_with(&request.prompt, &options, config.as_ref())
        .await
        .map_err(|e| match e {
            ComposeError::EmptyPrompt | ComposeError::TooLong(_) => EngineError::invalid(
                e.to_string(),
            )
            .hint("describe the env, e.g. \"a python dev box with 2 cores and no internet\""),
            other => EngineError::invalid(other.to_string()),
        })?;
    Ok(composition.to_json())
}

/// `POST /v1/compose/add`: merges a fragment's new envs and images into the active
/// generation's spec. `apply` declares a host's whole state, so this route refuses anything
/// but additions: a name the active spec (or any env on the host) already has, a `[trust]`
/// table, an empty fragment. The diff covers every env; only the added ones are acted on, so
/// an env a person stopped by hand stays stopped. Without `dry_run` the merged spec becomes a
/// new generation (`verse rollback` undoes it).
pub async fn add(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: ComposeAddRequest,
) -> EngineResult<ComposeAddReport> {
    const FILE: &str = "compose fragment";
    let fragment =
        verse_spec::parse_str(&request.toml, FILE).map_err(crate::reconcile::spec_errors)?;
    if fragment.envs.is_empty() {
        return Err(EngineError::invalid("the fragment declares no env")
            .hint("compose an env first; its `[env.NAME]` table is what gets added"));
    }
    if fragment.trust != verse_spec::Spec::default().trust {
        return Err(EngineError::invalid(
            "the fragment has a [trust] table; adding to the spec never changes which images may run",
        )
        .hint("edit the spec file and `verse apply` it to change [trust]"));
    }
    let _changes = daemon.changes.lock().await;
    let active = daemon.db.generations()?.into_iter().find(|g| g.active);
    let mut merged = match &active {
        Some(g) => {
            let json = daemon.db.generation_spec(g.id)?.ok_or_else(|| {
                EngineError::internal(format!("generation {} has no stored spec", g.id))
            })?;
            serde_json::from_str::<verse_spec::Spec>(&json).map_err(|e| {
                EngineError::internal(format!("generation {} is unreadable: {e}", g.id))
            })?
        }
        None => verse_spec::Spec::default(),
    };
    let base_generation = active.as_ref().map(|g| g.id);
    let which = base_generation.map_or("the host".to_string(), |id| format!("generation {id}"));
    for name in fragment.envs.keys() {
        if merged.envs.contains_key(name) || daemon.db.env(name)?.is_some() {
            return Err(EngineError::conflict(format!(
                "{which} already has an env named `{name}`; adding never changes an existing env"
            ))
            .hint("compose it under another name (`--name`, or edit the fragment)"));
        }
    }
    for (name, image) in &fragment.images {
        match merged.images.get(name) {
            Some(existing) if existing != image => {
                return Err(EngineError::conflict(format!(
                    "{which} already declares a different image `{name}`"
                ))
                .hint("rename the image in the fragment"));
            }
            _ => {}
        }
    }
    let added: Vec<String> = fragment.envs.keys().cloned().collect();
    merged.envs.extend(fragment.envs.clone());
    merged.images.extend(fragment.images.clone());
    crate::reconcile::check_images(daemon, &merged, FILE, &request.toml)?;
    crate::net::check_names(&merged, FILE, &request.toml).await?;
    let actions = crate::reconcile::plan(daemon, &merged).await?;
    let mut envs = Vec::new();
    for (action, row) in &actions {
        let old = daemon.db.env(&action.env)?;
        envs.push(crate::diff::env_diff(
            action,
            old.as_ref().map(|r| &r.plan),
            row.as_ref().map(|r| &r.plan),
        ));
    }
    let diff = DiffReport { envs };
    if request.dry_run {
        return Ok(ComposeAddReport {
            base_generation,
            generation: None,
            added,
            diff,
            report: None,
        });
    }
    crate::images::build_declared(daemon, &fragment, None, false).await?;
    let names: Vec<String> = merged.envs.keys().cloned().collect();
    let source = format!("compose (+{} on {which})", added.join(", "));
    let generation =
        daemon
            .db
            .add_generation(&merged.digest(), &source, &merged.canonical_json(), &names)?;
    daemon.audit(
        actor,
        "apply",
        None,
        format!(
            "generation={generation} compose-add={} digest={}",
            added.join(","),
            merged.digest()
        ),
    );
    let mine: Vec<_> = actions
        .into_iter()
        .filter(|(a, _)| added.contains(&a.env))
        .collect();
    let mut report = crate::reconcile::execute(daemon, actor, mine).await?;
    report.generation = Some(generation);
    Ok(ComposeAddReport {
        base_generation,
        generation: Some(generation),
        added,
        diff,
        report: Some(report),
    })
}
