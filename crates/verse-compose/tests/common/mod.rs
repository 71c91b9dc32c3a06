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
