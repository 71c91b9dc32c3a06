//! The prompt set (tests/prompts.toml): every prompt is composed offline, every field scored
//! against what a person would expect; the test fails below 95% field accuracy and on any
//! safety violation (network wider than asked, host mounts, packages outside the catalog),
//! and every fragment must pass the spec crate.

use std::collections::BTreeSet;

use verse_compose::{Draft, NetworkIntent, Options, compose};

#[macro_use]
mod common;
use common::{Miss, parse_fragment, safety_violations, score_settings};

#[derive(serde::Deserialize)]
struct PromptSet {
    prompt: Vec<Expected>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    text: String,
    #[serde(default)]
    packages: Vec<String>,
    cpu: Option<f64>,
    memory: Option<String>,
    disk: Option<String>,
    #[serde(default = "none")]
    network: String,
    #[serde(default)]
    ephemeral: bool,
    #[serde(default = "container")]
    backend: String,
    #[serde(default)]
    desktop: bool,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    unknown: Vec<String>,
}

fn none() -> String {
    "none".into()
}
fn container() -> String {
    "container".into()
}

fn load() -> Vec<Expected> {
    let text = include_str!("prompts.toml");
    let set: PromptSet = toml::from_str(text).expect("tests/prompts.toml parses");
    set.prompt
}

fn sorted(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn score(e: &Expected, d: &Draft, unknown: &[String]) -> Vec<Miss> {
    let mut misses = Vec::new();
    if sorted(&e.packages) != sorted(&d.packages) {
        misses.push((
            "packages",
            format!("{:?}", sorted(&e.packages)),
            format!("{:?}", sorted(&d.packages)),
        ));
    }
    misses.extend(score_settings(&settings_of!(e), d));
    if sorted(&e.unknown) != sorted(unknown) {
        misses.push((
            "unknown",
            format!("{:?}", sorted(&e.unknown)),
            format!("{:?}", sorted(unknown)),
        ));
    }
    misses
}

const FIELDS: usize = 10;

#[test]
fn prompt_set_scores_at_least_95_percent_with_no_safety_violation() {
    let prompts = load();
    assert!(
        prompts.len() >= 60,
        "the prompt set has {} prompts; at least 60 are needed",
        prompts.len()
    );
    let mut total = 0;
    let mut right = 0;
    let mut per_field: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut violations = Vec::new();
    let mut report = String::new();
    for e in &prompts {
        let c = compose(&e.text, &Options::default()).expect("composes");
        let unknown: Vec<String> = c.unknown.iter().map(|u| u.word.clone()).collect();
        let misses = score(e, &c.draft, &unknown);
        total += FIELDS;
        right += FIELDS - misses.len();
        for (field, want, got) in &misses {
            *per_field.entry(field).or_default() += 1;
            report.push_str(&format!(
                "  {:?}: {field}: expected {want}, got {got}\n",
                e.text
            ));
        }
        // safety: never more network than asked, never host mounts, only the suite's packages
        let who = format!("{:?}", e.text);
        violations.extend(safety_violations(&who, &c, &e.network));
        // every fragment passes the spec crate, and its env reads back as composed
        let spec = parse_fragment(&who, &c);
        let env = &spec.envs[&c.draft.name];
        assert_eq!(env.cpu, c.draft.cpu, "{:?}", e.text);
        assert_eq!(env.memory, c.draft.memory, "{:?}", e.text);
        assert_eq!(env.ephemeral, c.draft.ephemeral, "{:?}", e.text);
        if let Some(image) = spec.images.get(&c.draft.name) {
            assert_eq!(
                sorted(&image.packages),
                sorted(&c.draft.packages),
                "{:?}",
                e.text
            );
        }
    }
    let accuracy = right as f64 / total as f64 * 100.0;
    println!(
        "compose prompt set: {} prompts, {right}/{total} fields right ({accuracy:.1}%)",
        prompts.len()
    );
    println!("misses per field: {per_field:?}");
    print!("{report}");
    assert!(
        violations.is_empty(),
        "safety violations:\n{}",
        violations.join("\n")
    );
    assert!(
        accuracy >= 95.0,
        "field accuracy {accuracy:.1}% is below 95%:\n{report}"
    );
}

/// Every field the spec of this build accepts is written as live TOML, not as a pending
/// comment: `desktop = true`, `label = { ... }`, allow-lists and proxies, `backend`.
#[test]
fn accepted_fields_are_live_toml() {
    let mut desktops = 0;
    let mut labels = 0;
    for e in load() {
        let c = compose(&e.text, &Options::default()).expect("composes");
        let toml = &c.rendered.toml;
        let live: Vec<&str> = toml.lines().filter(|l| !l.starts_with('#')).collect();
        // A field is left pending only where this build's spec really refuses it
        // (e.g. a desktop on a vm env): written live, the fragment would not parse.
        for p in c
            .rendered
            .pending
            .iter()
            .filter(|p| p.path.starts_with("env."))
        {
            let with_it = format!("{toml}{}\n", p.toml);
            assert!(
                verse_spec::parse_str(&with_it, "compose").is_err(),
                "{:?}: {} is pending, but the spec accepts it\n{toml}",
                e.text,
                p.path
            );
        }
        let desktop_refused = c
            .rendered
            .pending
            .iter()
            .any(|p| p.path.ends_with(".desktop"));
        if c.draft.desktop && !desktop_refused {
            desktops += 1;
            assert!(live.contains(&"desktop = true"), "{:?}:\n{toml}", e.text);
        }
        if !c.draft.labels.is_empty() {
            labels += 1;
            assert!(
                live.iter().any(|l| l.starts_with("label = { color = \"#")),
                "{:?}:\n{toml}",
                e.text
            );
        }
        verse_spec::parse_str(toml, "fragment").expect("the fragment parses");
    }
    assert!(
        desktops >= 5 && labels >= 5,
        "the set exercises desktops ({desktops}) and labels ({labels})"
    );
}

#[test]
fn addresses_in_allow_lists_become_entries_and_stray_addresses_grant_nothing() {
    let net = |text: &str| compose(text, &Options::default()).unwrap().draft.network;
    let allow = |hosts: &[&str]| NetworkIntent::Allow {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    };
    assert_eq!(
        net("a box with only example.org:443"),
        allow(&["example.org:443"])
    );
    assert_eq!(net("only 10.0.0.0/8"), allow(&["10.0.0.0/8:*"]));
    assert_eq!(
        net("access to example.org only"),
        allow(&["example.org:443"])
    );
    assert_eq!(
        net("allow git.example.org:22, 192.168.1.0/24 and docs.example.org"),
        allow(&[
            "git.example.org:22",
            "192.168.1.0/24:*",
            "docs.example.org:443"
        ])
    );
    // an address nobody asked to reach, or one the spec would refuse, grants nothing
    assert_eq!(net("a box that logs to 10.0.0.5:514"), NetworkIntent::None);
    let c = compose("only 10.0.0.1/8", &Options::default()).unwrap();
    assert_eq!(c.draft.network, NetworkIntent::None);
    assert!(
        c.notes.iter().any(|n| n.text.contains("host bits set")),
        "{:?}",
        c.notes
    );
    // "offline" with an exception reads the exception as the allow-list, as with catalog hosts
    assert_eq!(
        net("offline except 10.1.2.3:5432"),
        allow(&["10.1.2.3:5432"])
    );
}

/// A container env with a browser gets a /dev/shm browsers can live with; a vm env, whose
/// kernel sizes it, does not get the key (the spec would refuse it).
#[test]
fn browsers_in_containers_get_a_larger_dev_shm() {
    let banking = compose("a browser for banking, red", &Options::default()).expect("composes");
    assert!(
        banking
            .rendered
            .toml
            .lines()
            .any(|l| l == "shm = \"512MiB\""),
        "{}",
        banking.rendered.toml
    );
    let vm = compose("a throwaway VM with firefox", &Options::default()).expect("composes");
    assert!(!vm.rendered.toml.contains("shm"), "{}", vm.rendered.toml);
    let editor =
        compose("a writing desktop with libreoffice", &Options::default()).expect("composes");
    assert!(
        !editor.rendered.toml.contains("shm"),
        "{}",
        editor.rendered.toml
    );
}
