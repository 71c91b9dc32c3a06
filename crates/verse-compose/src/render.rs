//! Writing a [`Draft`] as a spec fragment. Each field is offered to the spec crate as it is
//! today: what it accepts is written as TOML; what it does not accept yet is kept as a comment
//! (and listed as pending), so the fragment always parses and never claims what Verse cannot do.

use serde::Serialize;

use crate::draft::{Backend, Draft, NetworkIntent, size_string};

/// One line of the fragment, `key = value`, in its section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// "image" or "env".
    pub section: &'static str,
    pub key: &'static str,
    /// TOML for the value.
    pub value: String,
    /// What to write instead when the spec does not accept `value` yet.
    #[serde(skip)]
    pub fallback: Option<String>,
}

/// A field the spec of this build does not accept yet, carried as a comment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    /// `env.NAME.KEY` or `image.NAME`.
    pub path: String,
    /// The TOML that would be written.
    pub toml: String,
    /// What the env gets meanwhile.
    pub instead: String,
}

/// The rendered fragment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    /// The fragment as TOML, with pending fields as comments; parses with verse-spec.
    pub toml: String,
    /// The same fragment as JSON: `{"image": {...}, "env": {...}}` (image only when accepted).
    pub json: serde_json::Value,
    pub pending: Vec<Pending>,
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Every field compose can write, in order. Adding a spec field is one line here.
pub fn fields(draft: &Draft) -> Vec<Field> {
    let mut out = Vec::new();
    let mut env = |key, value: String, fallback: Option<&str>| {
        out.push(Field {
            section: "env",
            key,
            value,
            fallback: fallback.map(str::to_string),
        })
    };
    env("image", toml_string(&draft.name), None);
    if draft.backend != Backend::Container {
        env("backend", toml_string(draft.backend.as_str()), None);
    }
    if let Some(cpu) = draft.cpu {
        env("cpu", number(cpu), None);
    }
    if let Some(memory) = draft.memory {
        env("memory", toml_string(&size_string(memory)), None);
    }
    if let Some(disk) = draft.disk {
        env("disk", toml_string(&size_string(disk)), None);
    }
    let network = match &draft.network {
        NetworkIntent::None => toml_string("none"),
        NetworkIntent::Nat => toml_string("nat"),
        NetworkIntent::Allow { hosts } => format!("{{ allow = {} }}", toml_list(hosts)),
        NetworkIntent::Proxy { url } => format!("{{ proxy = {} }}", toml_string(url)),
    };
    // a network the spec cannot express yet becomes no network, never more
    env("network", network, Some("\"none\""));
    if draft.ephemeral {
        env("ephemeral", "true".into(), None);
    }
    if draft.desktop {
        env("desktop", "true".into(), None);
    }
    if draft.quarantine {
        env("downloads", toml_string("quarantine"), None);
    }
    // Browsers share memory through /dev/shm, and tabs crash in the 64 MiB default; its
    // pages still count against `memory`. (vm and gvisor envs size it in their kernel.)
    let browser = ["chromium", "firefox-esr"];
    if draft.backend == Backend::Container
        && draft.packages.iter().any(|p| browser.contains(&p.as_str()))
    {
        env("shm", toml_string("512MiB"), None);
    }
    if let Some((color, name)) = label(&draft.labels) {
        env(
            "label",
            format!(
                "{{ color = {}, name = {} }}",
                toml_string(&color),
                toml_string(&name)
            ),
            None,
        );
    }
    out
}

/// Colour words compose knows, as the `#RRGGBB` the spec's `label.color` takes.
pub const COLOUR_HEX: &[(&str, &str)] = &[
    ("red", "#e02020"),
    ("orange", "#e07020"),
    ("yellow", "#d0b000"),
    ("green", "#20a040"),
    ("blue", "#2060e0"),
    ("purple", "#8030c0"),
    ("violet", "#8030c0"),
    ("pink", "#e040a0"),
    ("black", "#202020"),
    ("white", "#f0f0f0"),
    ("gray", "#808080"),
    ("grey", "#808080"),
    ("brown", "#805020"),
];

/// The spec's `label = { color, name }` from compose's labels (colours and purposes): the
/// first colour (grey when none was named), and the purposes as the name (the colour's word
/// when none was named).
pub fn label(labels: &[String]) -> Option<(String, String)> {
    if labels.is_empty() {
        return None;
    }
    let hex = |w: &str| COLOUR_HEX.iter().find(|(c, _)| *c == w).map(|(_, h)| *h);
    let colour = labels.iter().find_map(|l| hex(l).map(|h| (l.clone(), h)));
    let purposes: Vec<&str> = labels
        .iter()
        .filter(|l| hex(l).is_none())
        .map(String::as_str)
        .collect();
    let name = if purposes.is_empty() {
        colour.as_ref().map(|(w, _)| w.clone())?
    } else {
        purposes.join(" ")
    };
    let color = colour.map_or("#808080", |(_, h)| h).to_string();
    Some((color, name))
}

/// The `[image.NAME]` section's lines.
fn image_lines(draft: &Draft) -> Vec<String> {
    let mut lines = vec![format!("base = {}", toml_string(&draft.base))];
    if !draft.packages.is_empty() {
        lines.push(format!("packages = {}", toml_list(&draft.packages)));
    }
    if !draft.run.is_empty() {
        lines.push(format!("run = {}", toml_list(&draft.run)));
    }
    lines
}

fn accepted(doc: &str) -> bool {
    verse_spec::parse_str(doc, "compose").is_ok()
}

/// Render `draft`, keeping only what the spec accepts as live TOML.
pub fn render(draft: &Draft, header: &[String]) -> Rendered {
    let name = &draft.name;
    let mut pending = Vec::new();
    let mut image_block = format!("[image.{name}]\n");
    for line in image_lines(draft) {
        image_block.push_str(&line);
        image_block.push('\n');
    }
    let env_head = format!("[env.{name}]\n");
    let image_ok = accepted(&format!(
        "{image_block}\n{env_head}image = {}\n",
        toml_string(name)
    ));
    let mut live = if image_ok {
        format!("{image_block}\n")
    } else {
        String::new()
    };
    live.push_str(&env_head);
    let mut comments = Vec::new();
    for field in fields(draft) {
        let line = format!("{} = {}\n", field.key, field.value);
        if accepted(&format!("{live}{line}")) {
            live.push_str(&line);
            continue;
        }
        let path = format!("env.{name}.{}", field.key);
        let instead = match &field.fallback {
            Some(fallback) => {
                let line = format!("{} = {fallback}\n", field.key);
                if accepted(&format!("{live}{line}")) {
                    live.push_str(&line);
                }
                format!("{} = {fallback}", field.key)
            }
            None => "left out".to_string(),
        };
        comments.push(format!(
            "# {} = {}    # not accepted by this Verse yet; {}\n",
            field.key, field.value, instead
        ));
        pending.push(Pending {
            path,
            toml: format!("{} = {}", field.key, field.value),
            instead,
        });
    }
    let mut text = String::new();
    for h in header {
        text.push_str(&format!("# {h}\n"));
    }
    if !image_ok {
        text.push_str(&format!(
            "# [image.{name}] sections are not accepted by this Verse yet: build this image and\n# import it with `verse image import {name} DIR`\n"
        ));
        for line in image_block.lines() {
            text.push_str(&format!("# {line}\n"));
        }
        text.push('\n');
        pending.push(Pending {
            path: format!("image.{name}"),
            toml: image_block.trim_end().to_string(),
            instead: format!("image \"{name}\" must be imported into the store"),
        });
    }
    text.push_str(&live);
    for c in comments {
        text.push_str(&c);
    }
    let value: toml::Table =
        toml::from_str(&live).expect("the live part was accepted by verse-spec");
    let json = serde_json::to_value(&value).expect("TOML values are JSON values");
    Rendered {
        toml: text,
        json,
        pending,
    }
}
