//! The catalog (catalog.toml, compiled in): app names and synonyms mapped to Debian packages,
//! names Debian does not ship, and network targets for allow-lists.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The catalog's source, as shipped in the repository.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// Groups of apps, in the order they appear in explanations.
pub const GROUPS: &[&str] = &[
    "editors",
    "browsers",
    "office",
    "writing",
    "latex",
    "languages",
    "databases",
    "media",
    "desktops",
];

#[derive(Debug, Deserialize)]
struct RawEntry {
    packages: Vec<String>,
    #[serde(default)]
    also: Vec<String>,
    #[serde(default)]
    gui: bool,
    #[serde(default)]
    context: bool,
    #[serde(default)]
    generic: bool,
}

#[derive(Debug, Deserialize)]
struct RawUnavailable {
    suggest: Vec<String>,
    #[serde(default)]
    instead: Vec<String>,
    why: String,
    #[serde(default)]
    also: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawHosts {
    hosts: Vec<String>,
    #[serde(default)]
    also: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawDesktop {
    packages: Vec<String>,
}

/// One app or tool of the catalog.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub group: String,
    pub packages: Vec<String>,
    pub gui: bool,
    /// Only counts next to a developer word or in a list of apps.
    pub context: bool,
    /// A group word, dropped when another app of its group is named.
    pub generic: bool,
}

/// A name Debian main does not ship.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub name: String,
    pub suggest: Vec<String>,
    /// The usual free equivalent, installed in its place ("photoshop": gimp).
    pub instead: Vec<String>,
    pub why: String,
}

/// A network target for allow-lists.
#[derive(Debug, Clone)]
pub struct Hosts {
    pub name: String,
    pub hosts: Vec<String>,
}

/// What a phrase of the catalog names.
#[derive(Debug, Clone, Copy)]
pub enum Meaning {
    App(usize),
    Unavailable(usize),
    Hosts(usize),
}

impl Meaning {
    fn same(&self, other: &Meaning) -> bool {
        matches!((self, other),
            (Meaning::App(a), Meaning::App(b))
            | (Meaning::Unavailable(a), Meaning::Unavailable(b))
            | (Meaning::Hosts(a), Meaning::Hosts(b)) if a == b)
    }
}

/// The parsed catalog.
#[derive(Debug)]
pub struct Catalog {
    pub apps: Vec<App>,
    pub unavailable: Vec<Unavailable>,
    pub hosts: Vec<Hosts>,
    pub desktop_packages: Vec<String>,
    /// Every phrase (name or synonym, words joined by one space) and what it names.
    pub phrases: BTreeMap<String, Meaning>,
    /// Longest phrase in words.
    pub max_words: usize,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(CATALOG_TOML).expect("catalog.toml is checked by the tests")
        })
    }

    /// Parse a catalog; errors name the problem.
    pub fn parse(source: &str) -> Result<Catalog, String> {
        let mut table: toml::Table = toml::from_str(source).map_err(|e| e.to_string())?;
        let mut catalog = Catalog {
            apps: Vec::new(),
            unavailable: Vec::new(),
            hosts: Vec::new(),
            desktop_packages: Vec::new(),
            phrases: BTreeMap::new(),
            max_words: 1,
        };
        let desktop: RawDesktop = take(&mut table, "desktop")?;
        catalog.desktop_packages = desktop.packages;
        for group in GROUPS {
            let entries: BTreeMap<String, RawEntry> = take(&mut table, group)?;
            // keep the file's order for stable explanations
            for (name, entry) in ordered(source, group, entries) {
                let index = catalog.apps.len();
                catalog.add_phrase(&name, Meaning::App(index))?;
                for also in &entry.also {
                    catalog.add_phrase(also, Meaning::App(index))?;
                }
                catalog.apps.push(App {
                    name,
                    group: group.to_string(),
                    packages: entry.packages,
                    gui: entry.gui,
                    context: entry.context,
                    generic: entry.generic,
                });
            }
        }
        let unavailable: BTreeMap<String, RawUnavailable> = take(&mut table, "unavailable")?;
        for (name, entry) in unavailable {
            let index = catalog.unavailable.len();
            catalog.add_phrase(&name.replace('-', " "), Meaning::Unavailable(index))?;
            for also in &entry.also {
                catalog.add_phrase(also, Meaning::Unavailable(index))?;
            }
            catalog.unavailable.push(Unavailable {
                name,
                suggest: entry.suggest,
                instead: entry.instead,
                why: entry.why,
            });
        }
        let hosts: BTreeMap<String, RawHosts> = take(&mut table, "hosts")?;
        for (name, entry) in hosts {
            let index = catalog.hosts.len();
            catalog.add_phrase(&name.replace('-', " "), Meaning::Hosts(index))?;
            for also in &entry.also {
                catalog.add_phrase(also, Meaning::Hosts(index))?;
            }
            catalog.hosts.push(Hosts {
                name,
                hosts: entry.hosts,
            });
        }
        if let Some(extra) = table.keys().next() {
            return Err(format!("unknown section [{extra}] in the catalog"));
        }
        for u in &catalog.unavailable {
            // suggestions are catalog apps or Debian packages (checked against the archive
            // by tests/debian_packages.rs, like `instead`)
            for s in &u.suggest {
                if catalog.app(s).is_none()
                    && !s.contains(['-', '.'])
                    && !u.instead.contains(s)
                    && s.chars().any(|c| c.is_ascii_uppercase())
                {
                    return Err(format!(
                        "[unavailable.{}] suggests `{s}`, which is not an app of the catalog",
                        u.name
                    ));
                }
            }
        }
        Ok(catalog)
    }

    fn add_phrase(&mut self, phrase: &str, meaning: Meaning) -> Result<(), String> {
        let key = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
        self.max_words = self.max_words.max(key.split(' ').count());
        match self.phrases.insert(key.clone(), meaning) {
            // an entry may repeat its own name among its synonyms
            Some(old) if old.same(&meaning) => {}
            Some(_) => return Err(format!("`{key}` is named twice in the catalog")),
            None => {}
        }
        Ok(())
    }

    /// The app called `name` (its catalog name, not a synonym).
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Every package the catalog can install, sorted and deduplicated.
    pub fn all_packages(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .apps
            .iter()
            .flat_map(|a| a.packages.iter().cloned())
            .chain(self.desktop_packages.iter().cloned())
            .chain(
                self.unavailable
                    .iter()
                    .flat_map(|u| u.instead.iter().cloned()),
            )
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Up to three catalog apps whose names or synonyms look most like `word`.
    pub fn closest(&self, word: &str) -> Vec<String> {
        let mut scored: Vec<(f64, String)> = self
            .phrases
            .iter()
            .filter_map(|(phrase, meaning)| match meaning {
                Meaning::App(i) => Some((
                    strsim::jaro_winkler(word, phrase),
                    self.apps[*i].name.clone(),
                )),
                _ => None,
            })
            .filter(|(score, _)| *score >= 0.75)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<String> = Vec::new();
        for (_, name) in scored {
            if !out.contains(&name) {
                out.push(name);
            }
            if out.len() == 3 {
                break;
            }
        }
        out
    }
}

fn take<T: for<'de> Deserialize<'de>>(table: &mut toml::Table, key: &str) -> Result<T, String> {
    let value = table
        .remove(key)
        .ok_or_else(|| format!("the catalog has no [{key}] section"))?;
    value
        .try_into()
        .map_err(|e: toml::de::Error| format!("[{key}]: {e}"))
}

/// Entries of `[group.*]` in the order the file lists them.
fn ordered(
    source: &str,
    group: &str,
    mut entries: BTreeMap<String, RawEntry>,
) -> Vec<(String, RawEntry)> {
    let prefix = format!("[{group}.");
    let mut out = Vec::new();
    for line in source.lines() {
        if let Some(rest) = line.trim().strip_prefix(&prefix) {
            let name = rest.trim_end_matches(']');
            if let Some(entry) = entries.remove(name) {
                out.push((name.to_string(), entry));
            }
        }
    }
    out.extend(entries);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_suggestions_exist() {
        let c = Catalog::get();
        assert!(c.apps.len() > 80);
        assert!(c.phrases.contains_key("word processor"));
        assert_eq!(c.app("firefox").unwrap().packages, ["firefox-esr"]);
        assert!(c.closest("libreofice").contains(&"libreoffice".to_string()));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let bad = CATALOG_TOML.replace(
            "[editors.nano]\npackages = [\"nano\"]",
            "[editors.nano]\npackages = [\"nano\"]\nalso = [\"vi\"]",
        );
        assert!(
            Catalog::parse(&bad)
                .unwrap_err()
                .contains("`vi` is named twice")
        );
    }
}
