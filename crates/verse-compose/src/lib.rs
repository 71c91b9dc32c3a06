//! `verse compose`: natural language in, a checked spec fragment out.
//!
//! The offline composer ([`compose`]) reads a prompt with a tokenizer, number words, a catalog
//! of apps mapped to Debian packages (`catalog.toml`), typo repair and a set of intents
//! (desktop or terminal, network, isolation, persistence, labels), and explains every choice.
//! Its rules put safety first: no network unless the words ask for it, no host mounts ever,
//! the safer reading of conflicting words, and unknown apps reported (with the closest catalog
//! matches) rather than guessed into packages.
//!
//! An optional chat model ([`model`]) can be asked instead; its answer is checked like a
//! hand-written spec and against the offline reading, and any problem falls back to the
//! offline composer with a note.
//!
//! Output is rendered for the spec crate of this build ([`render`]): fields it does not accept
//! yet are carried as comments, so the fragment always parses.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod draft;
pub mod index;
pub mod model;
pub mod read;
pub mod render;
pub mod vocab;
pub mod words;

use serde::{Deserialize, Serialize};

pub use catalog::Catalog;
pub use draft::{Backend, Draft, NetworkIntent};
pub use render::{Pending, Rendered};

/// What a note explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    /// Words read as a setting.
    Read,
    /// A default filled in because the words said nothing.
    Default,
    /// Something the composer was unsure of.
    Unsure,
    /// Words that disagreed; the safer reading was kept.
    Conflict,
    /// An app that is not installed.
    Unknown,
    /// A safety rule that was applied.
    Safety,
    /// Where the answer came from (model or offline).
    Source,
}

/// One explanation line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    pub text: String,
}

/// An app the words named that is not installed, with what the catalog has that comes close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownApp {
    pub word: String,
    pub why: String,
    pub suggestions: Vec<String>,
}

/// Where a composition came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Offline,
    Model,
}

/// The result of composing: the draft, the fragment, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Composition {
    pub prompt: String,
    pub source: Source,
    pub draft: Draft,
    pub rendered: Rendered,
    pub notes: Vec<Note>,
    pub unknown: Vec<UnknownApp>,
}

impl Composition {
    /// The JSON printed by `verse compose --json` and returned by `POST /v1/compose`:
    /// the fragment's `image` and `env` tables, plus `pending`, `notes`, `unknown` and `source`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        if let serde_json::Value::Object(fragment) = &self.rendered.json {
            for (k, v) in fragment {
                out.insert(k.clone(), v.clone());
            }
        }
        out.insert("pending".into(), serde_json::json!(self.rendered.pending));
        out.insert("notes".into(), serde_json::json!(self.notes));
        out.insert("unknown".into(), serde_json::json!(self.unknown));
        out.insert("source".into(), serde_json::json!(self.source));
        out.insert("toml".into(), serde_json::json!(self.rendered.toml));
        serde_json::Value::Object(out)
    }

    /// The explanation as text: one line per note, grouped by kind.
    pub fn explain(&self) -> String {
        let mut text = String::new();
        let order = [
            (NoteKind::Source, "source"),
            (NoteKind::Read, "read"),
            (NoteKind::Conflict, "conflict"),
            (NoteKind::Unsure, "unsure"),
            (NoteKind::Unknown, "unknown"),
            (NoteKind::Safety, "safety"),
            (NoteKind::Default, "default"),
        ];
        for (kind, label) in order {
            for note in self.notes.iter().filter(|n| n.kind == kind) {
                text.push_str(&format!("{label:>8}: {}\n", note.text));
            }
        }
        for p in &self.rendered.pending {
            text.push_str(&format!(
                " pending: {} is not accepted by this Verse yet; meanwhile {}\n",
                p.path, p.instead
            ));
        }
        text
    }
}

/// Errors of compose.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The prompt is empty.
    #[error(
        "the prompt is empty; describe the environment, e.g. \"a python dev box with 2 cores and no internet\""
    )]
    EmptyPrompt,
    /// The prompt is too long to be a description.
    #[error("the prompt is {0} characters; at most {MAX_PROMPT} are read")]
    TooLong(usize),
    /// The name given is not an env name.
    #[error(
        "`{0}` is not a valid env name: use 1-63 characters from a-z, 0-9 and '-', starting with a letter or digit"
    )]
    BadName(String),
    /// Merging into an existing spec failed.
    #[error("{0}")]
    Merge(String),
}

/// Longest prompt read, in characters.
pub const MAX_PROMPT: usize = 4000;

/// Options of a composition.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The env's name; derived from the words when absent.
    pub name: Option<String>,
}

fn check_input(prompt: &str, options: &Options) -> Result<(), ComposeError> {
    if prompt.trim().is_empty() {
        return Err(ComposeError::EmptyPrompt);
    }
    let len = prompt.chars().count();
    if len > MAX_PROMPT {
        return Err(ComposeError::TooLong(len));
    }
    if let Some(name) = &options.name
        && read::sanitize_name(name) != *name
    {
        return Err(ComposeError::BadName(name.clone()));
    }
    Ok(())
}

/// Compose offline: no network, no model, a few hundred microseconds.
pub fn compose(prompt: &str, options: &Options) -> Result<Composition, ComposeError> {
    check_input(prompt, options)?;
    let (draft, mut notes, unknown) = read::read(prompt, options.name.as_deref());
    notes.insert(
        0,
        Note {
            kind: NoteKind::Source,
            text: "offline composer (catalog and rules in the repo; no model)".into(),
        },
    );
    Ok(finish(prompt, Source::Offline, draft, notes, unknown))
}

pub(crate) fn finish(
    prompt: &str,
    source: Source,
    draft: Draft,
    notes: Vec<Note>,
    unknown: Vec<UnknownApp>,
) -> Composition {
    let shown: String = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    let shown: String = shown.chars().take(200).collect();
    let header = vec![format!("composed by `verse compose` from: {shown:?}")];
    let rendered = render::render(&draft, &header);
    Composition {
        prompt: prompt.to_string(),
        source,
        draft,
        rendered,
        notes,
        unknown,
    }
}

/// Append the composition to an existing spec's text, refusing name clashes, and check the
/// result with the spec crate. Returns the new text; nothing is written here.
pub fn merge_into(
    existing: &str,
    file_name: &str,
    composition: &Composition,
) -> Result<String, ComposeError> {
    let current = verse_spec::parse_str(existing, file_name).map_err(|e| {
        ComposeError::Merge(format!(
            "{file_name} does not parse, so nothing was merged into it:\n{e}"
        ))
    })?;
    let name = &composition.draft.name;
    if current.envs.contains_key(name) {
        return Err(ComposeError::Merge(format!(
            "{file_name} already declares [env.{name}]; choose another name with --name"
        )));
    }
    let image_header = format!("[image.{name}]");
    if existing.lines().any(|l| l.trim() == image_header) {
        return Err(ComposeError::Merge(format!(
            "{file_name} already declares {image_header}; choose another name with --name"
        )));
    }
    let mut merged = existing.to_string();
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    if !merged.is_empty() {
        merged.push('\n');
    }
    merged.push_str(&composition.rendered.toml);
    verse_spec::parse_str(&merged, file_name).map_err(|e| {
        ComposeError::Merge(format!(
            "the merged spec would not parse, so {file_name} was left as it was:\n{e}"
        ))
    })?;
    Ok(merged)
}
