//! The optional chat model. Where `VERSE_COMPOSE_ENDPOINT` names an OpenAI-compatible chat
//! completions endpoint (http only, e.g. a local llama.cpp or Ollama server), compose asks it
//! for a [`Draft`] under a JSON schema, then checks the answer like a hand-written spec and
//! against the offline reading of the same words: the model may choose apps and sizes, but it
//! may not grant more network, weaker isolation, less ephemerality, or host mounts. Its
//! packages are checked against the suite's package index ([`crate::index`]) like a name the
//! person typed: a real package is kept, a name Debian packages otherwise ("docker" is
//! docker.io, a transitional package what replaced it) is replaced, saying so, and a name that
//! is no package refuses the answer. Any error or violation falls back to the offline
//! composer, saying why.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::draft::{DEFAULT_BASE, Draft, NetworkIntent};
use crate::{ComposeError, Composition, Note, NoteKind, Options, Source, compose, finish};

/// Environment variable naming the endpoint, e.g. `http://127.0.0.1:8080/v1`.
pub const ENDPOINT_VAR: &str = "VERSE_COMPOSE_ENDPOINT";
/// Environment variable naming the model (default [`DEFAULT_MODEL`]).
pub const MODEL_VAR: &str = "VERSE_COMPOSE_MODEL";
/// Environment variable holding a bearer token for the endpoint, if it needs one.
pub const KEY_VAR: &str = "VERSE_COMPOSE_API_KEY";
/// Model name sent when none is configured.
pub const DEFAULT_MODEL: &str = "verse-compose";
/// Longest answer read from the endpoint.
pub const MAX_ANSWER: usize = 1 << 20;

/// Where and how to ask a model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Base URL (`http://host:port/v1`) or the full chat completions URL.
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl ModelConfig {
    /// The configuration from the environment; `None` when no endpoint is set.
    pub fn from_env() -> Option<ModelConfig> {
        let endpoint = std::env::var(ENDPOINT_VAR)
            .ok()
            .filter(|e| !e.trim().is_empty())?;
        Some(ModelConfig {
            endpoint,
            model: std::env::var(MODEL_VAR).unwrap_or_else(|_| DEFAULT_MODEL.to_string()),
            api_key: std::env::var(KEY_VAR).ok().filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(30),
        })
    }

    fn url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// Why a model's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "the endpoint {0} is not an http:// URL (https is not supported; run the model locally or behind a local proxy)"
    )]
    BadEndpoint(String),
    #[error("could not reach the endpoint: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the answer is not a chat completion: {0}")]
    Protocol(String),
    #[error("the model's spec is malformed: {0}")]
    Malformed(String),
    #[error("the model's spec was refused: {0}")]
    Refused(String),
}

/// The JSON schema the model must answer in: a [`Draft`], with package names shaped like
/// Debian's (the catalog's packages as examples; the index checks them afterwards, 64k names
/// are too many for a schema) and sizes in bytes.
pub fn schema() -> Value {
    let packages = Catalog::get().all_packages();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "base", "packages", "backend", "cpu", "memory", "disk",
                     "network", "ephemeral", "desktop", "labels"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
            "base": {"type": "string", "enum": [DEFAULT_BASE]},
            "packages": {"type": "array", "items": {"type": "string",
                "pattern": "^[a-z0-9][a-z0-9.+-]{1,80}$",
                "description": "a package of Debian bookworm main",
                "examples": packages}},
            "backend": {"type": "string", "enum": ["container", "gvisor", "vm"]},
            "cpu": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": verse_spec::MAX_CPU},
            "memory": {"type": ["integer", "null"], "minimum": verse_spec::MIN_MEMORY,
                       "description": "bytes"},
            "disk": {"type": ["integer", "null"], "minimum": 1, "description": "bytes"},
            "network": {"oneOf": [
                {"type": "object", "additionalProperties": false, "required": ["mode"],
                 "properties": {"mode": {"enum": ["none", "nat"]}}},
                {"type": "object", "additionalProperties": false, "required": ["mode", "hosts"],
                 "properties": {"mode": {"const": "allow"},
                                "hosts": {"type": "array", "items": {"type": "string"}}}},
                {"type": "object", "additionalProperties": false, "required": ["mode", "url"],
                 "properties": {"mode": {"const": "proxy"}, "url": {"type": "string"}}}
            ]},
            "ephemeral": {"type": "boolean"},
            "desktop": {"type": "boolean"},
            "labels": {"type": "array", "items": {"type": "string"}}
        }
    })
}

const INSTRUCTIONS: &str = "You turn a person's description of a computer environment into a \
Verse environment draft, as JSON matching the given schema. Rules: use only packages of Debian \
bookworm main (the schema's examples are common ones); network is {\"mode\":\"none\"} unless the words ask for access; set ephemeral \
when the words say throwaway or disposable; use backend \"vm\" for untrusted content; sizes are \
bytes; never invent fields. Answer with the JSON object only.";

/// The request body sent to the endpoint.
pub fn request_body(config: &ModelConfig, prompt: &str) -> Value {
    json!({
        "model": config.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": prompt}
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verse_compose_draft", "strict": true, "schema": schema()}
        }
    })
}

async fn post(config: &ModelConfig, body: &Value) -> Result<Bytes, ModelError> {
    let url = config.url();
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ModelError::BadEndpoint(url.clone()))?;
    if uri.scheme_str() != Some("http") {
        return Err(ModelError::BadEndpoint(url));
    }
    let host = uri
        .host()
        .ok_or_else(|| ModelError::BadEndpoint(url.clone()))?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| ModelError::Connect(e.to_string()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ModelError::Connect(e.to_string()))?;
    tokio::spawn(connection);
    let mut request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = &config.api_key {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| ModelError::Protocol(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ModelError::Connect(e.to_string()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| ModelError::Protocol(format!("reading the answer: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(ModelError::Status(status.as_u16()));
    }
    Ok(body)
}

/// The draft inside a chat completion answer.
pub fn parse_answer(body: &[u8]) -> Result<Draft, ModelError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ModelError::Protocol(format!("not JSON: {e}")))?;
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::Protocol("no choices[0].message.content".into()))?;
    let content = content.trim();
    // some servers wrap JSON in a markdown fence despite the schema
    let content = content
        .strip_prefix("```json")
        .or_else(|| content.strip_prefix("```"))
        .and_then(|c| c.strip_suffix("```"))
        .unwrap_or(content);
    serde_json::from_str(content).map_err(|e| ModelError::Malformed(e.to_string()))
}

/// Check a model's draft against the package index and against the offline reading of the
/// same words. Returns notes on packages replaced by the ones Debian ships.
pub fn check(
    draft: &mut Draft,
    offline: &Draft,
    options: &Options,
) -> Result<Vec<Note>, ModelError> {
    let refuse = |why: String| Err(ModelError::Refused(why));
    match &options.name {
        Some(name) => draft.name = name.clone(),
        None if crate::read::sanitize_name(&draft.name) != draft.name => {
            return refuse(format!("`{}` is not an env name", draft.name));
        }
        None => {}
    }
    if draft.base != DEFAULT_BASE {
        return refuse(format!(
            "base `{}`; only {DEFAULT_BASE} is composed",
            draft.base
        ));
    }
    let mut notes = Vec::new();
    let index = crate::index::Index::get();
    for p in draft.packages.iter_mut() {
        let named = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".+-".contains(c))
            .then(|| index.named(p))
            .flatten();
        match named {
            Some(hit) if hit.package.name == p.as_str() => {}
            Some(hit) => {
                notes.push(Note {
                    kind: NoteKind::Read,
                    text: format!(
                        "the model's package `{p}`: {} instead ({})",
                        hit.package.name, hit.why
                    ),
                });
                *p = hit.package.name.to_string();
            }
            None => {
                return refuse(format!(
                    "package `{p}` is not a package of Debian {DEFAULT_BASE} ({}) and names none",
                    index.origin
                ));
            }
        }
    }
    draft.packages.sort();
    draft.packages.dedup();
    if draft.network.reach() > offline.network.reach() {
        return refuse(format!(
            "it grants {} where the words ask for {}",
            draft.network.describe(),
            offline.network.describe()
        ));
    }
    match (&draft.network, &offline.network) {
        (NetworkIntent::Allow { hosts }, NetworkIntent::Allow { hosts: asked }) => {
            if let Some(h) = hosts.iter().find(|h| !asked.contains(h)) {
                return refuse(format!("it allows {h}, which the words did not name"));
            }
        }
        (NetworkIntent::Allow { .. }, NetworkIntent::Proxy { url }) => {
            return refuse(format!("it would reach hosts directly, not through {url}"));
        }
        (NetworkIntent::Proxy { url }, NetworkIntent::Proxy { url: asked }) if url != asked => {
            return refuse(format!("proxy {url} is not the {asked} the words named"));
        }
        (NetworkIntent::Allow { .. }, _) | (NetworkIntent::Proxy { .. }, _)
            if draft.network.reach() == offline.network.reach()
                && draft.network != offline.network =>
        {
            return refuse("its network is not the one the words asked for".into());
        }
        _ => {}
    }
    if offline.ephemeral && !draft.ephemeral {
        return refuse("it keeps writes the words asked to throw away".into());
    }
    if draft.backend < offline.backend {
        return refuse(format!(
            "backend {} is weaker than the {} the words asked for",
            draft.backend.as_str(),
            offline.backend.as_str()
        ));
    }
    for label in &draft.labels {
        if label.is_empty()
            || label.len() > 64
            || !label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == ' ')
        {
            return refuse(format!("label {label:?} is not a plain word"));
        }
    }
    Ok(notes)
}

/// Compose with the model when one is configured, else (or on any problem) offline.
pub async fn compose_with(
    prompt: &str,
    options: &Options,
    config: Option<&ModelConfig>,
) -> Result<Composition, ComposeError> {
    let offline = compose(prompt, options)?;
    let Some(config) = config else {
        return Ok(offline);
    };
    let asked = tokio::time::timeout(config.timeout, post(config, &request_body(config, prompt)))
        .await
        .unwrap_or(Err(ModelError::Timeout(config.timeout)))
        .and_then(|body| parse_answer(&body))
        .and_then(|mut draft| {
            check(&mut draft, &offline.draft, options).map(|replaced| (draft, replaced))
        });
    let result = asked.and_then(|(draft, replaced)| {
        let mut notes = vec![Note {
            kind: NoteKind::Source,
            text: format!(
                "model {} at {}; its answer passed the schema, the package index, the safety checks against the offline reading, and the spec crate",
                config.model, config.endpoint
            ),
        }];
        notes.extend(replaced);
        for (field, ours) in differences(&draft, &offline.draft) {
            notes.push(Note {
                kind: NoteKind::Unsure,
                text: format!("the model chose {field} where the offline composer read {ours}"),
            });
        }
        let composition = finish(prompt, Source::Model, draft, notes, offline.unknown.clone());
        match verse_spec::parse_str(&composition.rendered.toml, "model answer") {
            Ok(_) => Ok(composition),
            Err(e) => Err(ModelError::Refused(format!("the spec crate rejects it: {e}"))),
        }
    });
    match result {
        Ok(c) => Ok(c),
        Err(e) => {
            tracing::warn!("compose model fallback: {e}");
            let mut c = offline;
            c.notes.insert(
                0,
                Note {
                    kind: NoteKind::Source,
                    text: format!(
                        "model at {} not used: {e}; fell back to the offline composer",
                        config.endpoint
                    ),
                },
            );
            Ok(c)
        }
    }
}

/// Blocking form of [`compose_with`] for callers without a runtime.
pub fn compose_blocking(
    prompt: &str,
    options: &Options,
    config: Option<&ModelConfig>,
) -> Result<Composition, ComposeError> {
    if config.is_none() {
        return compose(prompt, options);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(compose_with(prompt, options, config))
}

fn differences(model: &Draft, offline: &Draft) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if model.packages != offline.packages {
        out.push((
            format!("packages {:?}", model.packages),
            format!("{:?}", offline.packages),
        ));
    }
    if model.cpu != offline.cpu {
        out.push((format!("cpu {:?}", model.cpu), format!("{:?}", offline.cpu)));
    }
    if model.memory != offline.memory {
        out.push((
            format!("memory {:?}", model.memory),
            format!("{:?}", offline.memory),
        ));
    }
    if model.network != offline.network {
        out.push((
            format!("network {}", model.network.describe()),
            offline.network.describe(),
        ));
    }
    out
}
