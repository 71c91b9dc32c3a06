//! The JSON Schema of `verse.toml`, for editors (taplo / Even Better TOML complete and check
//! a spec with it). Built from the same key lists and vocabularies the validator uses
//! (`TOP_KEYS`, `ENV_KEYS`, `IMAGE_KEYS`, window managers, clipboard words...), so a key the
//! validator learns without a schema entry fails this crate's tests. The schema checks shape
//! (types, words, patterns); the validator still says more (ranges that depend on other
//! keys, env names that must exist, what each backend takes).

use crate::desktop::{Clipboard, WINDOW_MANAGERS};
use crate::validate::{
    DESKTOP_KEYS, ENV_KEYS, IMAGE_KEYS, LABEL_KEYS, MAX_CPU, MAX_PIDS, TOP_KEYS, TRUST_KEYS,
};
use serde_json::{Value, json};

/// `"512MiB"` or a number of bytes.
fn size(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": r"^\s*[0-9][0-9_]*(\.[0-9_]*)?\s*([kKmMgGtT]([iI]?[bB])?|[bB])?\s*$"}
        ]
    })
}

/// `"30s"`, `"10m"`: a duration.
fn duration(description: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "pattern": r"^\s*[0-9][0-9_]*(\.[0-9_]*)?\s*(ms|s|m|h)\s*$"
    })
}

fn words(description: &str, allowed: &[&str]) -> Value {
    json!({"description": description, "type": "string", "enum": allowed})
}

fn string_or_argv(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1}
        ]
    })
}

fn strings(description: &str) -> Value {
    json!({"description": description, "type": "array", "items": {"type": "string"}})
}

fn string_map(description: &str) -> Value {
    json!({"description": description, "type": "object", "additionalProperties": {"type": "string"}})
}

fn closed(properties: serde_json::Map<String, Value>) -> Value {
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

/// The schema fragment of one `[env.NAME]` key. Every key of `ENV_KEYS` has one (no
/// default arm: a new key must be described here).
fn env_key(key: &str) -> Option<Value> {
    Some(match key {
        "image" => {
            json!({"description": "An image in the store, or an [image.NAME] of this file.", "type": "string", "minLength": 1})
        }
        "backend" => words("How the env is isolated.", &["container", "vm", "gvisor"]),
        "accel" => words("A vm env's accelerator.", &["auto", "kvm", "tcg"]),
        "cpu" => {
            json!({"description": "A CPU-time limit in cores (1.5 = 150 ms per 100 ms).", "type": "number", "exclusiveMinimum": 0, "maximum": MAX_CPU})
        }
        "memory" => size("A memory limit, e.g. \"512MiB\"; a vm env's RAM."),
        "pids" => {
            json!({"description": "The most tasks at once.", "type": "integer", "minimum": 1, "maximum": MAX_PIDS})
        }
        "network" => json!({
            "description": "\"none\" (default), \"nat\", or a table: {allow = [...]}, {proxy = \"socks5://...\"}, {via = \"router-env\"}.",
            "anyOf": [
                {"type": "string", "enum": ["none", "nat"]},
                closed(serde_json::Map::from_iter([("allow".to_string(), strings("HOST:PORT, CIDR:PORT or HOST:* entries."))])),
                closed(serde_json::Map::from_iter([("proxy".to_string(), json!({"type": "string", "pattern": "^socks5h?://"}))])),
                closed(serde_json::Map::from_iter([("via".to_string(), json!({"type": "string"}))]))
            ]
        }),
        "ephemeral" => {
            json!({"description": "Empty the writable layer at every stop.", "type": "boolean"})
        }
        "command" => {
            string_or_argv("The main process: an argv array, or a string run by /bin/sh -c.")
        }
        "env" => string_map("Environment variables of every process in the env."),
        "hostname" => {
            json!({"description": "The env's host name.", "type": "string", "minLength": 1, "maxLength": 64})
        }
        "volumes" => string_map("Env path = host directory (\":ro\" for read-only)."),
        "workdir" => {
            json!({"description": "Absolute working directory.", "type": "string", "pattern": "^/"})
        }
        "user" => {
            json!({"description": "\"root\", \"UID\" or \"UID:GID\", or a number.", "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0, "maximum": 65535}]})
        }
        "stop_timeout" => duration("How long `verse down` waits after SIGTERM."),
        "reach" => strings("ENV:PORT of other envs this env may connect to."),
        "router" => {
            json!({"description": "This env routes other envs' traffic (`network = {via = ...}`).", "type": "boolean"})
        }
        "restart" => words(
            "What the supervisor does when the main process ends.",
            &["no", "on-failure", "always"],
        ),
        "health" => closed(serde_json::Map::from_iter([
            (
                "command".to_string(),
                string_or_argv("The check, run inside the env."),
            ),
            ("interval".to_string(), duration("How often.")),
            (
                "timeout".to_string(),
                duration("How long one check may take."),
            ),
            (
                "retries".to_string(),
                json!({"type": "integer", "minimum": 1}),
            ),
            (
                "grace".to_string(),
                duration("How long after start failures do not count."),
            ),
        ])),
        "snapshots" => closed(serde_json::Map::from_iter([
            (
                "every".to_string(),
                duration("How often a snapshot is taken."),
            ),
            ("keep".to_string(), json!({"type": "integer", "minimum": 1})),
        ])),
        "desktop" => json!({
            "description": "A desktop in the browser: true, or {wm, size}.",
            "anyOf": [
                {"type": "boolean"},
                closed(DESKTOP_KEYS.iter().map(|k| (k.to_string(), match *k {
                    "wm" => words("The window manager.", WINDOW_MANAGERS),
                    _ => json!({"type": "string", "pattern": "^[0-9]+x[0-9]+$"}),
                })).collect())
            ]
        }),
        "autostart" => strings("Commands started on the desktop once it is up."),
        "label" => {
            let mut label = closed(
                LABEL_KEYS
                    .iter()
                    .map(|k| {
                        (
                            k.to_string(),
                            match *k {
                                "color" => {
                                    json!({"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"})
                                }
                                _ => json!({"type": "string", "minLength": 1, "maxLength": 32}),
                            },
                        )
                    })
                    .collect(),
            );
            label["required"] = json!(LABEL_KEYS);
            label
        }
        "clipboard" => words(
            "Which way text may be copied between browser and desktop.",
            Clipboard::NAMES,
        ),
        "downloads" => words(
            "Quarantine what the env puts in /downloads.",
            &["quarantine"],
        ),
        "hold" => duration("How long a clean download is held before release."),
        "release_to" => {
            json!({"description": "ENV or ENV:/dir where clean downloads go.", "type": "string"})
        }
        "log_max" => size("The most console output kept on disk."),
        "disk" => size("The env's writes live on a filesystem of this size."),
        "shm" => size("The size of a container env's /dev/shm."),
        _ => return None,
    })
}

fn image_key(key: &str) -> Option<Value> {
    Some(match key {
        "base" => {
            json!({"description": "\"debian:SUITE\" (debootstrap) or another [image.NAME].", "type": "string"})
        }
        "packages" => strings("Debian packages to install."),
        "files" => string_map("Image path = file next to the spec."),
        "run" => strings("Shell commands run in order at build time."),
        "user" => json!({"type": "string"}),
        "workdir" => json!({"type": "string", "pattern": "^/"}),
        "env" => string_map("Environment variables of the image."),
        _ => return None,
    })
}

fn trust_key(key: &str) -> Option<Value> {
    Some(match key {
        "require_signed" => json!({"type": "boolean"}),
        "keys" => strings("Public keys (hex ed25519) whose signatures are trusted."),
        _ => return None,
    })
}

fn table_of(keys: &[&str], fragment: fn(&str) -> Option<Value>) -> Value {
    closed(
        keys.iter()
            .map(|k| {
                let schema = fragment(k).unwrap_or_else(|| {
                    panic!("the schema has no entry for the key `{k}`: add it in schema.rs")
                });
                (k.to_string(), schema)
            })
            .collect(),
    )
}

/// The whole schema (JSON Schema draft-07, which taplo reads).
pub fn json_schema() -> Value {
    let name_pattern = "^[a-z0-9][a-z0-9-]{0,62}$";
    let mut env = table_of(ENV_KEYS, env_key);
    env["required"] = json!(["image"]);
    let mut image = table_of(IMAGE_KEYS, image_key);
    image["required"] = json!(["base"]);
    let top: serde_json::Map<String, Value> = TOP_KEYS
        .iter()
        .map(|k| {
            let schema = match *k {
                "env" => json!({"description": "The environments, [env.NAME].", "type": "object", "propertyNames": {"pattern": name_pattern}, "additionalProperties": env}),
                "image" => json!({"description": "Image recipes Verse builds, [image.NAME].", "type": "object", "additionalProperties": image}),
                "trust" => table_of(TRUST_KEYS, trust_key),
                "copy" => json!({"description": "\"SRC -> DST\" = \"allow\" | \"quarantine\" | \"deny\".", "type": "object", "additionalProperties": {"type": "string", "enum": ["allow", "quarantine", "deny"]}}),
                other => panic!("the schema has no entry for the top-level key `{other}`"),
            };
            (k.to_string(), schema)
        })
        .collect();
    let mut schema = closed(top);
    schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    schema["$id"] = json!("https://verse.invalid/verse.schema.json");
    schema["title"] = json!("verse.toml");
    schema["description"] =
        json!("One host's environments, images, trust and copy policy (see docs/spec.md).");
    schema
}

/// The schema as `verse spec schema` prints it and docs/verse.schema.json holds it.
pub fn json_schema_text() -> String {
    serde_json::to_string_pretty(&json_schema()).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_validator_takes_is_in_the_schema() {
        for key in ENV_KEYS {
            assert!(env_key(key).is_some(), "env key {key}");
        }
        for key in IMAGE_KEYS {
            assert!(image_key(key).is_some(), "image key {key}");
        }
        for key in TRUST_KEYS {
            assert!(trust_key(key).is_some(), "trust key {key}");
        }
        json_schema();
    }

    #[test]
    fn the_committed_schema_is_current() {
        let committed = include_str!("../../../docs/verse.schema.json");
        assert_eq!(
            committed.trim_end(),
            json_schema_text(),
            "docs/verse.schema.json is stale: run `verse spec schema > docs/verse.schema.json`"
        );
    }
}
