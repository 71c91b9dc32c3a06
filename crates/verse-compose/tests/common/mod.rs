//! Scoring helpers shared by the prompt-set tests.

use verse_compose::{Catalog, NetworkIntent};

/// The expected network in the prompt set's words.
pub fn network_words(n: &NetworkIntent) -> String {
    let catalog = Catalog::get();
    match n {
        NetworkIntent::None => "none".into(),
        NetworkIntent::Nat => "nat".into(),
        NetworkIntent::Proxy { url } if url == verse_compose::read::TOR_PROXY => "tor".into(),
        NetworkIntent::Proxy { url } => format!("proxy:{url}"),
        NetworkIntent::Allow { hosts } => {
            let named: Vec<_> = catalog
                .hosts
                .iter()
                .filter(|h| h.hosts.iter().all(|x| hosts.contains(x)))
                .collect();
            // catalog groups by name, then addresses the words gave, as written in the spec
            let mut words: Vec<String> = named.iter().map(|h| h.name.clone()).collect();
            words.extend(
                hosts
                    .iter()
                    .filter(|x| !named.iter().any(|h| h.hosts.contains(x)))
                    .cloned(),
            );
            format!("allow:{}", words.join(","))
        }
    }
}

pub fn reach(words: &str) -> u8 {
    match words.split(':').next().unwrap_or("") {
        "none" => 0,
        "allow" => 1,
        "tor" | "proxy" => 2,
        _ => 3,
    }
}

/// One field scored wrong: (field, expected, got).
pub type Miss = (&'static str, String, String);

/// What a prompt set expects of an env's settings (everything but packages and unknowns).
pub struct Settings<'a> {
    pub cpu: Option<f64>,
    pub memory: Option<&'a str>,
    pub disk: Option<&'a str>,
    pub network: &'a str,
    pub ephemeral: bool,
    pub backend: &'a str,
    pub desktop: bool,
    pub labels: &'a [String],
}

/// The [`Settings`] of a prompt set's expectation (any struct with those fields).
macro_rules! settings_of {
    ($e:expr) => {
        common::Settings {
            cpu: $e.cpu,
            memory: $e.memory.as_deref(),
            disk: $e.disk.as_deref(),
            network: &$e.network,
            ephemeral: $e.ephemeral,
            backend: &$e.backend,
            desktop: $e.desktop,
            labels: &$e.labels,
        }
    };
}

/// The settings fields of `d` that differ from what the set expects.
pub fn score_settings(want: &Settings, d: &verse_compose::Draft) -> Vec<Miss> {
    use verse_compose::draft::size_string;
    let mut misses = Vec::new();
    let mut check = |field, want: String, got: String| {
        if want != got {
            misses.push((field, want, got));
        }
    };
    check("cpu", format!("{:?}", want.cpu), format!("{:?}", d.cpu));
    check(
        "memory",
        format!("{:?}", want.memory),
        format!("{:?}", d.memory.map(size_string).as_deref()),
    );
    check(
        "disk",
        format!("{:?}", want.disk),
        format!("{:?}", d.disk.map(size_string).as_deref()),
    );
    check(
        "network",
        want.network.to_string(),
        network_words(&d.network),
    );
    check(
        "ephemeral",
        want.ephemeral.to_string(),
        d.ephemeral.to_string(),
    );
    check(
        "backend",
        want.backend.to_string(),
        d.backend.as_str().to_string(),
    );
    check("desktop", want.desktop.to_string(), d.desktop.to_string());
    let mut want_labels = want.labels.to_vec();
    want_labels.sort();
    let mut got_labels = d.labels.clone();
    got_labels.sort();
    check(
        "labels",
        format!("{want_labels:?}"),
        format!("{got_labels:?}"),
    );
    misses
}

/// The safety rules every composition keeps, whatever the set expects of its fields: never
/// more network than expected, never a host mount, only packages of the suite's index, and a
/// fragment the spec crate parses (a panic, naming the prompt, when it does not).
pub fn safety_violations(
    who: &str,
    c: &verse_compose::Composition,
    expected_network: &str,
) -> Vec<String> {
    let mut violations = Vec::new();
    let got = network_words(&c.draft.network);
    if reach(&got) > reach(expected_network) {
        violations.push(format!(
            "{who}: network {got} granted, expected {expected_network}"
        ));
    }
    if c.rendered
        .toml
        .lines()
        .any(|l| l.trim_start().starts_with("volumes"))
    {
        violations.push(format!("{who}: host mounts in the fragment"));
    }
    let index = verse_compose::index::Index::get();
    for p in &c.draft.packages {
        if !index.contains(p) {
            violations.push(format!("{who}: package {p} is not in the suite's index"));
        }
    }
    violations
}

/// The fragment parsed by the spec crate; a panic naming the prompt when it does not parse.
pub fn parse_fragment(who: &str, c: &verse_compose::Composition) -> verse_spec::Spec {
    verse_spec::parse_str(&c.rendered.toml, "composed.toml").unwrap_or_else(|err| {
        panic!(
            "{who}: the fragment does not parse:\n{err}\n{}",
            c.rendered.toml
        )
    })
}
