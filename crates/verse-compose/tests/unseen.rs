//! The unseen prompt set (tests/compose/unseen.jsonl at the workspace root, issue 22): prompts
//! written before the package resolver and never edited to fit it. Every prompt is composed
//! offline and scored field by field; the test prints the scores (overall, per category, per
//! field), fails below 90% of prompts fully right, and fails on any safety violation: more
//! network than expected, a host mount, a package that is not in the suite's index, a weaker
//! backend, less ephemerality or no quarantine where the set expects them.

use std::collections::BTreeMap;

use verse_compose::{Options, compose};

#[macro_use]
mod common;
use common::{Miss, parse_fragment, safety_violations, score_settings};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    id: String,
    category: String,
    text: String,
    packages: Vec<serde_json::Value>,
    optional: Vec<String>,
    cpu: Option<f64>,
    memory: Option<String>,
    disk: Option<String>,
    network: String,
    ephemeral: bool,
    backend: String,
    desktop: bool,
    labels: Vec<String>,
    downloads: Option<String>,
    unknown: Vec<String>,
    explain: Vec<String>,
    run: Vec<String>,
}

fn groups(e: &Expected) -> Vec<Vec<String>> {
    e.packages
        .iter()
        .map(|g| match g {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().expect("package names are strings").to_string())
                .collect(),
            other => panic!("{}: a package group is {other}", e.id),
        })
        .collect()
}

#[test]
fn unseen_set_is_at_least_90_percent_fully_right_with_no_safety_violation() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/compose/unseen.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("tests/compose/unseen.jsonl is readable");
    let set: Vec<Expected> = text
        .lines()
        .enumerate()
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("unseen.jsonl line {}: {e}", n + 1))
        })
        .collect();
    assert!(set.len() >= 100, "the unseen set has {} prompts", set.len());
    let mut right = 0;
    let mut per_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut per_field: BTreeMap<&str, usize> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut report = String::new();
    for e in &set {
        let c = compose(&e.text, &Options::default()).expect("composes");
        let d = &c.draft;
        let mut misses: Vec<Miss> = Vec::new();
        // packages: every group satisfied, nothing outside the groups and optional ones
        let gs = groups(e);
        let unmet: Vec<String> = gs
            .iter()
            .filter(|g| !g.iter().any(|p| d.packages.contains(p)))
            .map(|g| g.join("|"))
            .collect();
        let extra: Vec<&String> = d
            .packages
            .iter()
            .filter(|p| !gs.iter().any(|g| g.contains(p)) && !e.optional.contains(p))
            .collect();
        if !unmet.is_empty() || !extra.is_empty() {
            misses.push((
                "packages",
                format!("{unmet:?} missing"),
                format!("{:?}, extra {extra:?}", d.packages),
            ));
        }
        misses.extend(score_settings(&settings_of!(e), d));
        let mut check = |field, want: String, got: String| {
            if want != got {
                misses.push((field, want, got));
            }
        };
        let got_downloads = d.quarantine.then(|| "quarantine".to_string());
        check(
            "downloads",
            format!("{:?}", e.downloads),
            format!("{got_downloads:?}"),
        );
        let reported: Vec<String> = c.unknown.iter().map(|u| u.word.to_lowercase()).collect();
        let unknown_ok = reported.len() == e.unknown.len()
            && e.unknown
                .iter()
                .all(|w| reported.iter().any(|r| r.contains(&w.to_lowercase())));
        check(
            "unknown",
            format!("{:?}", e.unknown),
            if unknown_ok {
                format!("{:?}", e.unknown)
            } else {
                format!("{reported:?}")
            },
        );
        let explanation = c.explain().to_lowercase();
        let missing_words: Vec<&String> = e
            .explain
            .iter()
            .filter(|w| !explanation.contains(&w.to_lowercase()))
            .collect();
        check("explain", "[]".into(), format!("{missing_words:?}"));
        let steps = d.run.join("\n");
        let run_ok = if e.run.is_empty() {
            d.run.is_empty()
        } else {
            e.run.iter().all(|w| steps.contains(w.as_str()))
        };
        check(
            "run",
            format!("{:?}", e.run),
            if run_ok {
                format!("{:?}", e.run)
            } else {
                format!("{:?}", d.run)
            },
        );

        // safety
        let who = format!("{} {:?}", e.id, e.text);
        violations.extend(safety_violations(&who, &c, &e.network));
        if e.backend == "vm" && d.backend.as_str() != "vm" {
            violations.push(format!(
                "{} {:?}: backend {} where vm is expected",
                e.id,
                e.text,
                d.backend.as_str()
            ));
        }
        if e.ephemeral && e.category == "untrusted" && !d.ephemeral {
            violations.push(format!(
                "{} {:?}: untrusted files in a persistent env",
                e.id, e.text
            ));
        }
        if e.downloads.is_some() && !d.quarantine {
            violations.push(format!("{} {:?}: downloads not quarantined", e.id, e.text));
        }
        parse_fragment(&who, &c);

        let entry = per_category.entry(e.category.as_str()).or_default();
        entry.1 += 1;
        if misses.is_empty() {
            right += 1;
            entry.0 += 1;
        } else {
            for (field, want, got) in &misses {
                *per_field.entry(field).or_default() += 1;
                report.push_str(&format!(
                    "  {} {:?}: {field}: expected {want}, got {got}\n",
                    e.id, e.text
                ));
            }
        }
    }
    let score = right as f64 / set.len() as f64 * 100.0;
    println!(
        "unseen set: {right}/{} prompts fully right ({score:.1}%), {} safety violations",
        set.len(),
        violations.len()
    );
    for (cat, (r, n)) in &per_category {
        println!("  {cat:<12} {r}/{n}");
    }
    println!("misses per field: {per_field:?}");
    print!("{report}");
    assert!(
        violations.is_empty(),
        "safety violations:\n{}",
        violations.join("\n")
    );
    assert!(
        score >= 90.0,
        "{score:.1}% of the unseen set fully right, below 90%"
    );
}
