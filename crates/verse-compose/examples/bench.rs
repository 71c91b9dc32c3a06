//! Compose latency over both prompt sets (tests/prompts.toml and the unseen set, whose prompts
//! mostly need the package index): `cargo run --release -p verse-compose --example bench`.
//! Loading the index and the catalog is timed apart; then each prompt is composed RUNS times
//! (default 200) after a warm-up; prints the median of the per-prompt medians, the p90 and the
//! slowest prompt, as JSON on the last line.

use std::time::Instant;

#[derive(serde::Deserialize)]
struct Set {
    prompt: Vec<Prompt>,
}

#[derive(serde::Deserialize)]
struct Prompt {
    text: String,
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let set: Set = toml::from_str(include_str!("../tests/prompts.toml")).expect("prompt set");
    let unseen = include_str!("../../../tests/compose/unseen.jsonl");
    let mut texts: Vec<String> = set.prompt.iter().map(|p| p.text.clone()).collect();
    texts.extend(unseen.lines().map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).expect("unseen.jsonl line");
        v["text"].as_str().expect("a text").to_string()
    }));
    let options = verse_compose::Options::default();
    // the package index: decompressed and parsed once per process
    let index = Instant::now();
    let packages = verse_compose::index::Index::get().len();
    let index = index.elapsed();
    // first call pays for parsing the catalog and building the vocabulary
    let cold = Instant::now();
    verse_compose::compose(&set.prompt[0].text, &options).unwrap();
    let cold = cold.elapsed();
    let mut medians: Vec<(f64, &str)> = Vec::new();
    for p in &texts {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let c = verse_compose::compose(p, &options).unwrap();
                std::hint::black_box(&c);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        medians.push((times[times.len() / 2], p));
    }
    medians.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = medians[medians.len() / 2].0;
    let p90 = medians[medians.len() * 9 / 10].0;
    let (max, slowest) = *medians.last().unwrap();
    println!("prompts: {}, runs each: {runs}", medians.len());
    println!(
        "package index load ({packages} packages): {:.1} ms",
        index.as_secs_f64() * 1e3
    );
    println!(
        "first call (catalog parse + vocabulary): {:.0} us",
        cold.as_secs_f64() * 1e6
    );
    println!("median of per-prompt medians: {median:.0} us");
    println!("p90: {p90:.0} us; slowest: {max:.0} us ({slowest:?})");
    println!(
        "{}",
        serde_json::json!({"prompts": medians.len(), "runs": runs, "index_ms": index.as_secs_f64() * 1e3,
            "cold_us": cold.as_secs_f64() * 1e6,
            "median_us": median, "p90_us": p90, "max_us": max})
    );
}
