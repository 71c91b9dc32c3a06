//! The JSON Schema (`verse spec schema`, docs/verse.schema.json) accepts every spec that
//! Verse ships or documents (examples/, docs/*.md TOML blocks the parser accepts) and
//! rejects known-bad ones, so an editor using it never flags a good spec nor misses an
//! obvious mistake.

use std::path::Path;

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&verse_spec::schema::json_schema()).expect("the schema compiles")
}

fn as_json(source: &str) -> serde_json::Value {
    toml::from_str(source).expect("TOML")
}

fn problems(v: &jsonschema::Validator, source: &str) -> Vec<String> {
    v.iter_errors(&as_json(source))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Every ```toml block of a markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_shipped_and_documented_spec_validates() {
    let v = validator();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    let mut specs: Vec<(String, String)> = Vec::new();
    for dir in ["examples", "docs"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("readable dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => specs.push((path.display().to_string(), text)),
                Some("md") => {
                    for (i, block) in toml_blocks(&text).into_iter().enumerate() {
                        specs.push((format!("{} block {}", path.display(), i + 1), block));
                    }
                }
                _ => {}
            }
        }
    }
    for (name, source) in specs {
        // Blocks that are fragments of something else (not a spec), or that the docs show
        // as mistakes, are not specs the validator takes: the schema owes them nothing.
        if verse_spec::parse_str(&source, &name).is_err() {
            continue;
        }
        let found = problems(&v, &source);
        assert!(
            found.is_empty(),
            "{name} is a valid spec but the schema refuses it: {found:?}"
        );
        checked += 1;
    }
    // The two examples and the documented complete specs, at the least.
    assert!(checked >= 7, "only {checked} specs checked");
}

#[test]
fn known_bad_specs_are_refused_by_both() {
    let v = validator();
    let bad = [
        "[env.a]\nimage = \"busybox\"\ncolour = 1\n",
        "[env.a]\nimage = \"busybox\"\nbackend = \"docker\"\n",
        "[env.a]\nimage = \"busybox\"\nmemory = \"lots\"\n",
        "[env.a]\nimage = \"busybox\"\ncpu = \"2\"\n",
        "[env.a]\nimage = \"busybox\"\nclipboard = \"sideways\"\n",
        "[env.a]\nimage = \"busybox\"\nlabel = { color = \"#E02020\" }\n",
        "[env.a]\nimage = \"busybox\"\nnetwork = \"internet\"\n",
        "[env.a]\nimage = \"busybox\"\nstop_timeout = 10\n",
        "[env.a]\nbackend = \"vm\"\n",
        "[env.Bad_Name]\nimage = \"busybox\"\n",
        "[image.w]\npackages = [\"xterm\"]\n",
        "[trust]\nrequire_signed = \"yes\"\n",
        "[copy]\n\"a -> b\" = \"maybe\"\n",
        "[services.a]\nimage = \"busybox\"\n",
    ];
    for source in bad {
        assert!(
            verse_spec::parse_str(source, "bad.toml").is_err(),
            "the validator takes {source:?}"
        );
        assert!(
            !problems(&v, source).is_empty(),
            "the schema takes a spec the validator refuses: {source:?}"
        );
    }
}
