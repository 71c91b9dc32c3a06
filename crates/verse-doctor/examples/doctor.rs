//! Print the probe for this host: `cargo run -p verse-doctor --example doctor [--json] [ROOT]`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let root = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
        .unwrap_or("/");
    let report = verse_doctor::probe(std::path::Path::new(root));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        println!("{report}");
    }
}
