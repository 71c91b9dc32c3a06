//! The Debian package index compose resolves against: every binary package of bookworm main
//! (names, short descriptions, sections, Provides, and flags derived from the archive), so
//! that a program outside the hand-written catalog can still be named or described.
//!
//! The index is built by `scripts/compose-index.py` from the suite's Packages and AppStream
//! files and embedded in the binary as plain text (about 7 MB): decompressing a 1.5 MB zstd
//! copy took 15-50 ms per process on a busy host, more than the whole command may take, while
//! the plain text is used in place (only its line starts are found, package records are
//! parsed when asked for). It is read the first time a prompt needs it. `VERSE_COMPOSE_INDEX`
//! names another index file of the same format, plain or zstd-compressed (e.g. one built from
//! the host's apt lists with `scripts/compose-index.py --from /var/lib/apt/lists`).
//!
//! Described needs are matched with BM25 over names and short descriptions, restricted to
//! programs (not libraries, data or documentation), and weighted by a popularity derived from
//! the archive (reverse dependencies, AppStream desktop applications, debtags, priority),
//! because popcon is not always reachable to build from.

use std::sync::OnceLock;

/// The index shipped with this build.
const SHIPPED: &str = include_str!("../data/bookworm.idx");

/// One binary package.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    /// Graphical: an AppStream desktop application, tagged x11, or linked to a GUI toolkit.
    pub gui: bool,
    /// A program a person runs (not a library, data, documentation, metapackage of those).
    pub program: bool,
    /// A transitional, dummy or metapackage: it stands for another package.
    pub dummy: bool,
    /// Graphical, but also used from a terminal (an interactive shell like octave, a
    /// command-line program like ffmpeg): it does not bring a desktop by itself.
    pub console: bool,
    /// 0..=99, higher is more used.
    pub pop: u8,
    pub section: &'static str,
    pub description: &'static str,
    /// AppStream words (name, summary, keywords, categories) of a desktop or console app.
    pub appstream: &'static str,
}

/// Why a package was chosen for words.
#[derive(Debug, Clone)]
pub struct Hit {
    pub package: Package,
    /// What in the index matched, for the explanation.
    pub why: String,
}

/// The loaded index.
#[derive(Debug)]
pub struct Index {
    /// The package records ("name\tflags\t..."), sorted by name, parsed when asked for: a
    /// process reads a few of 63k.
    packages: Vec<&'static str>,
    /// (virtual name, provider), sorted.
    provides: Vec<(&'static str, &'static str)>,
    /// Where it came from, for explanations.
    pub origin: String,
    /// (dummy package, what it stands for), sorted.
    replaced: Vec<(&'static str, &'static str)>,
    /// (graphical front-end, the program it drives), sorted.
    frontends: Vec<(&'static str, &'static str)>,
    /// (word, descriptions using it, of those in lower case), sorted; words used 3 times or more.
    english: Vec<(&'static str, u32, u32)>,
    /// The searched programs: (package name, length in words), in the order postings use.
    docs: Vec<(&'static str, u32)>,
    /// Sorted words with their postings ("doc:count doc:count"), read only when a query
    /// term matches the word.
    words: Vec<(&'static str, &'static str)>,
}

/// Errors of loading an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("reading the package index {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the package index {path} is not zstd text: {source}")]
    Decompress {
        path: String,
        source: std::io::Error,
    },
    #[error("the package index {path}, line {line}: {problem}")]
    Format {
        path: String,
        line: usize,
        problem: String,
    },
}

impl Index {
    /// The index of this process: `VERSE_COMPOSE_INDEX` when set and readable, else the one
    /// shipped in the binary. A bad override is reported once and the shipped index used.
    pub fn get() -> &'static Index {
        static INDEX: OnceLock<Index> = OnceLock::new();
        INDEX.get_or_init(|| {
            if let Some(path) = std::env::var_os("VERSE_COMPOSE_INDEX") {
                let path = path.to_string_lossy().to_string();
                match std::fs::read(&path)
                    .map_err(|source| IndexError::Read {
                        path: path.clone(),
                        source,
                    })
                    .and_then(|bytes| Index::parse(&bytes, &path))
                    .and_then(|index| index.validate().map(|()| index))
                {
                    Ok(index) => return index,
                    Err(e) => tracing::warn!("{e}; using the index shipped in verse"),
                }
            }
            Index::parse_text(SHIPPED, "the shipped bookworm index")
                .expect("the shipped index parses (a test checks it)")
        })
    }

    /// Parse an index file (the format written by scripts/compose-index.py), plain or
    /// zstd-compressed.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Index, IndexError> {
        const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
        let raw = if bytes.starts_with(&ZSTD_MAGIC) {
            let decompress = |source| IndexError::Decompress {
                path: origin.to_string(),
                source,
            };
            // in one allocation when the frame says its size (the script writes it)
            match zstd::zstd_safe::get_frame_content_size(bytes) {
                Ok(Some(size)) if size < 1 << 30 => zstd::bulk::decompress(bytes, size as usize),
                _ => zstd::decode_all(bytes),
            }
            .map_err(decompress)?
        } else {
            bytes.to_vec()
        };
        let text = String::from_utf8(raw).map_err(|e| IndexError::Format {
            path: origin.to_string(),
            line: 0,
            problem: format!("not UTF-8: {e}"),
        })?;
        // The index lives as long as the process: leaking it once lets records borrow it.
        Index::parse_text(Box::leak(text.into_boxed_str()), origin)
    }

    /// Read an index's text in place.
    pub fn parse_text(text: &'static str, origin: &str) -> Result<Index, IndexError> {
        let mut packages = Vec::with_capacity(70_000);
        let mut provides = Vec::with_capacity(40_000);
        let mut docs = Vec::with_capacity(20_000);
        let mut words = Vec::with_capacity(60_000);
        let mut replaced = Vec::with_capacity(2_000);
        let mut frontends = Vec::with_capacity(500);
        let mut english = Vec::with_capacity(10_000);
        for (n, line) in text.lines().enumerate() {
            let bad = |problem: &str| IndexError::Format {
                path: origin.to_string(),
                line: n + 1,
                problem: problem.to_string(),
            };
            let mut f = line.split('\t');
            match f.next() {
                Some("P") => packages.push(&line[2..]),
                Some("D") => {
                    let (Some(name), Some(len)) = (f.next(), f.next()) else {
                        return Err(bad("a document record needs 3 fields"));
                    };
                    docs.push((
                        name,
                        len.parse().map_err(|_| bad("a length is not a number"))?,
                    ));
                }
                Some("W") => {
                    let (Some(word), Some(postings)) = (f.next(), f.next()) else {
                        return Err(bad("a word record needs 3 fields"));
                    };
                    words.push((word, postings));
                }
                Some(kind @ ("R" | "F")) => {
                    let (Some(name), Some(to)) = (f.next(), f.next()) else {
                        return Err(bad("a replacement or front-end record needs 3 fields"));
                    };
                    if kind == "R" {
                        replaced.push((name, to));
                    } else {
                        frontends.push((name, to));
                    }
                }
                Some("E") => {
                    let (Some(word), Some(total), Some(lower)) = (f.next(), f.next(), f.next())
                    else {
                        return Err(bad("a word-use record needs 4 fields"));
                    };
                    let count = |s: &str| s.parse().map_err(|_| bad("a count is not a number"));
                    english.push((word, count(total)?, count(lower)?));
                }
                Some("V") => {
                    let (Some(virt), Some(by)) = (f.next(), f.next()) else {
                        return Err(bad("a provides record needs 3 fields"));
                    };
                    provides.push((virt, by));
                }
                Some("") | None => {}
                Some(other) => return Err(bad(&format!("unknown record kind `{other}`"))),
            }
        }
        if packages.len() < 1000 {
            return Err(IndexError::Format {
                path: origin.to_string(),
                line: 0,
                problem: format!("only {} packages; not a suite's index", packages.len()),
            });
        }
        if docs.is_empty() || words.is_empty() {
            return Err(IndexError::Format {
                path: origin.to_string(),
                line: 0,
                problem:
                    "no search postings (D and W records); rebuild it with scripts/compose-index.py"
                        .into(),
            });
        }
        if !packages.is_sorted_by(|a, b| record_name(a) <= record_name(b)) {
            packages.sort_by(|a, b| record_name(a).cmp(record_name(b)));
        }
        provides.sort();
        words.sort_unstable_by(|a, b| a.0.cmp(b.0));
        replaced.sort();
        frontends.sort();
        english.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(Index {
            packages,
            provides,
            origin: origin.to_string(),
            replaced,
            frontends,
            english,
            docs,
            words,
        })
    }

    /// How many packages the index holds.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// True when the index holds no package (never for a parsed index).
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The package of exactly this name.
    pub fn get_package(&self, name: &str) -> Option<Package> {
        let i = self
            .packages
            .binary_search_by(|p| record_name(p).cmp(name))
            .ok()?;
        package(self.packages[i]).ok()
    }

    /// Every package record parses (the shipped index is checked by a test; an index named
    /// by `VERSE_COMPOSE_INDEX` when it is loaded).
    pub fn validate(&self) -> Result<(), IndexError> {
        for record in &self.packages {
            package(record).map_err(|problem| IndexError::Format {
                path: self.origin.clone(),
                line: 0,
                problem: format!("package record `P\t{record}`: {problem}"),
            })?;
        }
        Ok(())
    }

    /// True when `name` is a real package of the suite.
    pub fn contains(&self, name: &str) -> bool {
        self.get_package(name).is_some()
    }

    fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = Package> + 'a {
        let start = self.packages.partition_point(|p| record_name(p) < prefix);
        self.packages[start..]
            .iter()
            .take_while(move |p| record_name(p).starts_with(prefix))
            .filter_map(|r| package(r).ok())
    }

    /// A program the user named: the package of that name, a package providing it, or the
    /// program packaged under a suffixed name ("musescore" is musescore3, "ninja" is
    /// ninja-build, "docker" is docker.io), the most used one first.
    pub fn named(&self, word: &str) -> Option<Hit> {
        if let Some(p) = self.get_package(word) {
            // a transitional or dummy package is replaced; a metapackage ("wesnoth",
            // "gnuplot") is installed as named, apt picks its parts
            let lower = p.description.to_lowercase();
            if p.dummy
                && (lower.contains("transitional") || lower.contains("dummy"))
                && let Some(to) = self.replacement(word)
            {
                return Some(Hit {
                    package: to,
                    why: format!(
                        "the Debian package {word} only pulls in another ({}); {} installed instead ({})",
                        p.description, to.name, to.description
                    ),
                });
            }
            if let Some(newer) = self.newer_major(&p) {
                return Some(Hit {
                    package: newer,
                    why: format!(
                        "Debian packages a newer major version of {word} as {} ({}; {word} is \"{}\")",
                        newer.name, newer.description, p.description
                    ),
                });
            }
            return Some(Hit {
                package: p,
                why: format!("the Debian package {} ({})", p.name, p.description),
            });
        }
        let start = self.provides.partition_point(|(v, _)| *v < word);
        let providers: Vec<Package> = self.provides[start..]
            .iter()
            .take_while(|(v, _)| *v == word)
            .filter_map(|(_, by)| self.get_package(by))
            .collect();
        let provider = providers.into_iter().max_by_key(|p| (p.program, p.pop));
        let variant = if word.len() < 3 {
            None
        } else {
            self.with_prefix(word)
                .filter(|p| p.program)
                .filter(|p| {
                    let rest = &p.name[word.len()..];
                    rest.chars().all(|c| c.is_ascii_digit())
                        || [
                            "-build", "-ocr", ".io", "backup", "-client", "-desktop", "-qt", "-gtk",
                        ]
                        .contains(&rest)
                        || (rest.starts_with('-') && p.description.to_lowercase().contains(word))
                })
                .max_by_key(|p| p.pop)
        };
        // both a provider and a suffixed name: the more used ("docker" is docker.io, not
        // the dock-app wmdocker that provides "docker")
        let variant_wins =
            |p: &Package| variant.is_some_and(|v| (v.program, v.pop) > (p.program, p.pop));
        match (provider, variant) {
            (Some(p), _) if !variant_wins(&p) => Some(Hit {
                package: p,
                why: format!(
                    "no package is called {word}; {} provides it ({})",
                    p.name, p.description
                ),
            }),
            (_, Some(v)) => Some(Hit {
                package: v,
                why: format!(
                    "no package is called {word}; Debian ships it as {} ({})",
                    v.name, v.description
                ),
            }),
            (_, None) => None,
        }
    }

    /// A newer major version packaged beside `p` under a numbered name with the same
    /// description but for the version: musescore ("..., v2") and musescore3 ("..., v3").
    fn newer_major(&self, p: &Package) -> Option<Package> {
        let same = unversioned(p.description);
        let own = trailing_version(p.description);
        self.with_prefix(p.name)
            .filter(|q| {
                let rest = &q.name[p.name.len()..];
                !rest.is_empty()
                    && rest.chars().all(|c| c.is_ascii_digit())
                    && q.program
                    && unversioned(q.description) == same
                    && trailing_version(q.description) > own
            })
            .max_by_key(|q| trailing_version(q.description))
    }

    /// A package whose description names `word` in parentheses or as its command, e.g.
    /// "Kubernetes client binary (kubectl)".
    pub fn described_as_command(&self, word: &str) -> Option<Hit> {
        let needle = format!("({word})");
        // only programs using the word can say it in parentheses: their postings, not a
        // pass over every package
        let at = self
            .words
            .binary_search_by(|(w, _)| (*w).cmp(&word.to_lowercase()))
            .ok()?;
        let p = self.words[at]
            .1
            .split(' ')
            .filter_map(|entry| entry.split_once(':')?.0.parse::<usize>().ok())
            .filter_map(|doc| self.get_package(self.docs.get(doc)?.0))
            .filter(|p| p.program && p.description.contains(&needle))
            .max_by_key(|p| p.pop)?;
        Some(Hit {
            package: p,
            why: format!(
                "no package is called {word}; {} is ({})",
                p.name, p.description
            ),
        })
    }

    /// How many short descriptions use `word` (a rough sign of an ordinary English word),
    /// and how many of those write it in lower case. Counted when the index was built.
    pub fn word_use(&self, word: &str) -> (u32, u32) {
        self.english
            .binary_search_by(|(w, _, _)| (*w).cmp(word))
            .map(|i| (self.english[i].1, self.english[i].2))
            .unwrap_or((0, 0))
    }

    /// How many short descriptions use `word`.
    pub fn description_frequency(&self, word: &str) -> usize {
        self.word_use(word).0 as usize
    }

    /// True when descriptions use `word` often and mostly in lower case: an English word
    /// ("stick", "forum", "sent"), not a name ("Octave", "GIMP").
    pub fn is_english(&self, word: &str, often: u32) -> bool {
        let (total, lower) = self.word_use(word);
        total >= often && lower * 2 > total
    }

    /// What a transitional, dummy or metapackage stands for.
    pub fn replacement(&self, name: &str) -> Option<Package> {
        self.paired(&self.replaced, name)
    }

    /// The program a graphical front-end drives ("clamtk" drives "clamav").
    pub fn frontend_of(&self, name: &str) -> Option<Package> {
        self.paired(&self.frontends, name)
    }

    /// The package paired with `name` in a sorted list of pairs.
    fn paired(&self, pairs: &[(&'static str, &'static str)], name: &str) -> Option<Package> {
        let i = pairs.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        self.get_package(pairs[i].1)
    }

    /// True when some program's name or description uses exactly this word.
    pub fn has_word(&self, word: &str) -> bool {
        self.words.binary_search_by(|(w, _)| (*w).cmp(word)).is_ok()
    }

    /// The most used program whose name starts with `head` and ends with `tail`.
    pub fn find_by_prefix_suffix(&self, head: &str, tail: &str) -> Option<String> {
        self.with_prefix(head)
            .filter(|p| p.name.ends_with(tail))
            .max_by_key(|p| p.pop)
            .map(|p| p.name.to_string())
    }

    /// The programs whose name and short description best match the terms (BM25, k1 1.2,
    /// b 0.75, each term matching words it starts), weighted by popularity and by what the
    /// person asked for (`want`: graphical, terminal, or either).
    ///
    /// `extra` terms (synonyms, with the index of the term they widen) count half, and a
    /// synonym's match counts as a match of its term; a term and its synonyms count once, by
    /// the best of them, so that a description saying "chat, messaging, XMPP" is not three
    /// times a messenger. `context` words (said next to the need but read as settings, like
    /// "offline" in "an offline encyclopedia reader") count half and are not required. Terms
    /// found next to each other in the same order ("image viewer", "disk usage") count more.
    pub fn search(
        &self,
        terms: &[String],
        extra: &[(usize, String)],
        context: &[String],
        want: Want,
    ) -> Vec<Hit> {
        if terms.is_empty() {
            return Vec::new();
        }
        // (term, weight, which of the person's terms it stands for; None for context)
        let all: Vec<(&String, f64, Option<usize>)> = terms
            .iter()
            .enumerate()
            .map(|(k, t)| (t, 1.0, Some(k)))
            .chain(extra.iter().map(|(k, t)| (t, 0.5, Some(*k))))
            .chain(context.iter().map(|t| (t, 1.0, None)))
            .collect();
        let n = self.docs.len() as f64;
        let avg = self.docs.iter().map(|d| d.1 as f64).sum::<f64>() / n.max(1.0);
        // per document: term frequencies, from the postings of every word a term starts
        let mut tfs: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
        let mut df = vec![0u32; all.len()];
        for (k, (t, _, _)) in all.iter().enumerate() {
            let start = self.words.partition_point(|(w, _)| *w < t.as_str());
            // a short term is a word of its own ("cad" is not "cadabra")
            let exact = t.chars().count() <= 3;
            for (_, postings) in self.words[start..]
                .iter()
                .take_while(|(w, _)| w.starts_with(t.as_str()))
                .filter(|(w, _)| !exact || *w == t.as_str())
            {
                for entry in postings.split(' ') {
                    let Some((doc, count)) = entry.split_once(':') else {
                        continue;
                    };
                    let (Ok(doc), Ok(count)) = (doc.parse::<u32>(), count.parse::<u32>()) else {
                        continue;
                    };
                    let tf = tfs.entry(doc).or_insert_with(|| vec![0; all.len()]);
                    if tf[k] == 0 {
                        df[k] += 1;
                    }
                    tf[k] += count;
                }
            }
        }
        let (k1, b) = (1.2, 0.5);
        // every term the person wrote must match, or all but one of three or more
        let need = if terms.len() >= 3 {
            terms.len() - 1
        } else {
            terms.len()
        };
        // (score, terms matched, package, the front-end it was found through)
        let mut scored: Vec<(f64, usize, Package, Option<Package>)> = tfs
            .into_iter()
            .filter_map(|(doc, tf)| {
                let (name, len) = *self.docs.get(doc as usize)?;
                let p = self.get_package(name)?;
                // per person's term: its best match, and its other matches
                let mut best = vec![0.0f64; terms.len()];
                let mut rest = vec![0.0f64; terms.len()];
                let mut context_score = 0.0;
                for (k, &c) in tf.iter().enumerate() {
                    if c == 0 {
                        continue;
                    }
                    let d = df[k] as f64;
                    let idf = ((n - d + 0.5) / (d + 0.5) + 1.0).ln();
                    let c = c as f64;
                    let s = all[k].1 * idf * c * (k1 + 1.0)
                        / (c + k1 * (1.0 - b + b * len as f64 / avg));
                    match all[k].2 {
                        Some(t) => {
                            rest[t] += best[t].min(s);
                            best[t] = best[t].max(s);
                        }
                        None => context_score += s,
                    }
                }
                let matched = best.iter().filter(|s| **s > 0.0).count();
                if matched < need {
                    return None;
                }
                let s = best.iter().sum::<f64>() + rest.iter().sum::<f64>() / 4.0 + context_score;
                let prior = 1.0 + p.pop as f64 / POPULARITY_SCALE;
                let phrase = if adjacent(terms, &p) { 1.5 } else { 1.0 };
                let shell = if for_another_shell(&p) { 0.6 } else { 1.0 };
                let score = s * prior * phrase * shell;
                // a graphical front-end's match is its program's too ("graphical front-end
                // for ClamAV"), unless a window was asked for
                let base = self.frontend_of(p.name).filter(|b| {
                    want != Want::Graphical && b.program && (!b.gui || b.console) && p.gui
                });
                let own = score * fit(want, &p);
                let mut found = vec![(own, matched, p, None)];
                if let Some(b) = base {
                    // the program ranks just above its front-end, with the better-known's
                    // popularity (front-ends are often better known than what they drive)
                    let prior = 1.0 + b.pop.max(p.pop) as f64 / POPULARITY_SCALE;
                    let theirs = s * prior * phrase * shell * fit(want, &b);
                    found.push((theirs.max(own * 1.05), matched, b, Some(p)));
                }
                Some(found)
            })
            .flatten()
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.name.cmp(b.2.name)));
        let mut seen = std::collections::HashSet::new();
        scored.retain(|s| seen.insert(s.2.name));
        // the program itself before its parts: "clamav" before "clamav-daemon" when both match
        if let Some(best) = scored.first().map(|s| s.2.name)
            && let Some((base, _)) = best.rsplit_once('-')
            && let Some(at) = scored
                .iter()
                .position(|s| s.2.name == base && s.1 == scored[0].1)
        {
            let base = scored.remove(at);
            scored.insert(0, base);
        }
        scored
            .into_iter()
            .take(5)
            .map(|(s, m, p, front)| Hit {
                package: p,
                why: match front {
                    None => format!(
                        "best match among {} programs for {} ({m} of {} words in \"{}\"; score {s:.1}, popularity {})",
                        self.docs.len(),
                        terms.join(" "),
                        terms.len(),
                        p.description,
                        p.pop
                    ),
                    Some(f) => format!(
                        "best match among {} programs for {} through its graphical front-end {} ({m} of {} words in \"{}\"; score {s:.1}): the program itself, since nothing graphical was asked for",
                        self.docs.len(),
                        terms.join(" "),
                        f.name,
                        terms.len(),
                        f.description,
                    ),
                },
            })
            .collect()
    }
}

/// How well a package fits what was asked: a window, a terminal, or either.
fn fit(want: Want, p: &Package) -> f64 {
    match (want, p.gui, p.console) {
        (Want::Terminal, true, false) => 0.35,
        (Want::Terminal, true, true) => 1.1,
        (Want::Terminal, false, _) => 1.3,
        (Want::Graphical, true, _) => 1.3,
        (Want::Graphical, false, _) => 0.6,
        (Want::Either, true, _) => 1.2,
        (Want::Either, false, _) => 0.9,
    }
}

/// What kind of program the person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// "in the terminal", "command line", "cli": programs without a window, strongly.
    Terminal,
    /// "graphical", "gui", "on a desktop".
    Graphical,
    /// Nothing said: a program with a window is a little more likely what is meant.
    Either,
}

/// Lower-case words of a package's description and AppStream words.
fn text_words(p: &Package) -> impl Iterator<Item = String> + '_ {
    p.description
        .split(|c: char| !c.is_alphanumeric() && c != '+')
        .chain(
            p.appstream
                .split(|c: char| !c.is_alphanumeric() && c != '+'),
        )
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// True when two consecutive terms are found next to each other in the package's words
/// ("image viewer" in "Fast and lightweight image viewer").
fn adjacent(terms: &[String], p: &Package) -> bool {
    if terms.len() < 2 {
        return false;
    }
    let words: Vec<String> = text_words(p).collect();
    // either order: "record screen" is a "screen recorder"
    terms.windows(2).any(|pair| {
        words.windows(2).any(|w| {
            (w[0].starts_with(&pair[0]) && w[1].starts_with(&pair[1]))
                || (w[0].starts_with(&pair[1]) && w[1].starts_with(&pair[0]))
        })
    })
}

/// Programs made for another desktop shell than the one compose sets up ("recorder tools
/// for deepin", Lomiri, UKUI): they work best, or only, inside their own.
fn for_another_shell(p: &Package) -> bool {
    const SHELLS: &[&str] = &["deepin", "dde", "lomiri", "ukui", "cutefish"];
    p.name
        .split('-')
        .next()
        .is_some_and(|head| SHELLS.contains(&head))
        || text_words(p).any(|w| SHELLS.contains(&w.as_str()))
}

/// The name of a package record (its first field).
fn record_name(record: &str) -> &str {
    record.split_once('\t').map_or(record, |(name, _)| name)
}

/// A package record parsed: "name flags pop section description appstream".
fn package(record: &'static str) -> Result<Package, &'static str> {
    let mut f = record.split('\t');
    let (Some(name), Some(flags), Some(pop), Some(section), Some(description)) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err("a package record needs 6 fields");
    };
    Ok(Package {
        name,
        gui: flags.contains('g'),
        program: flags.contains('p'),
        dummy: flags.contains('d'),
        console: flags.contains('c'),
        pop: pop.parse().map_err(|_| "popularity is not a number")?,
        section,
        description,
        appstream: f.next().unwrap_or(""),
    })
}

/// A description without a trailing version ("..., v2" -> "...").
fn unversioned(description: &str) -> &str {
    match description.rsplit_once([' ', ',']) {
        Some((head, last)) if version_number(last).is_some() => {
            head.trim_end_matches([',', ' ', '-'])
        }
        _ => description,
    }
}

/// The version a description ends with ("v3", "3"), 0 when none.
fn trailing_version(description: &str) -> u32 {
    description
        .rsplit_once([' ', ','])
        .and_then(|(_, last)| version_number(last))
        .unwrap_or(0)
}

fn version_number(word: &str) -> Option<u32> {
    let w = word.strip_prefix(['v', 'V']).unwrap_or(word);
    w.split('.').next()?.parse().ok()
}

/// How much popularity weighs against the match: a package of popularity 40 counts twice.
const POPULARITY_SCALE: f64 = 40.0;

/// A mild stem for search terms: plurals and common suffixes off, so that a term matches the
/// words it starts ("editor" finds "editor", "editing"; "photos" finds "photography").
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    // "children's" is "children"
    let w = lower
        .strip_suffix("'s")
        .or_else(|| lower.strip_suffix('\''))
        .unwrap_or(&lower)
        .to_string();
    for suffix in ["ers", "ors", "ing", "ies", "er", "or", "es", "s", "y"] {
        if let Some(base) = w.strip_suffix(suffix)
            && base.len() >= if suffix == "y" { 5 } else { 4 }
            && !(suffix == "s"
                && (base.ends_with('s') || base.ends_with('u') || base.ends_with('i')))
        {
            let mut base = base.to_string();
            let b = base.as_bytes();
            if b.len() >= 2
                && b[b.len() - 1] == b[b.len() - 2]
                && !"lsz".contains(b[b.len() - 1] as char)
            {
                base.pop();
            }
            return base;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index named by VERSE_COMPOSE_INDEX may be plain or zstd-compressed; both read the
    /// same, and a file that is neither is refused, naming it.
    #[test]
    fn an_index_file_reads_plain_or_compressed_and_bad_files_are_named() {
        let plain = Index::parse(SHIPPED.as_bytes(), "plain").expect("plain text parses");
        let packed = zstd::bulk::compress(SHIPPED.as_bytes(), 3).expect("compresses");
        let unpacked = Index::parse(&packed, "packed").expect("zstd parses");
        assert_eq!(plain.len(), unpacked.len());
        assert_eq!(
            unpacked.get_package("gimp").map(|p| p.description),
            plain.get_package("gimp").map(|p| p.description)
        );
        let err = Index::parse(b"P\tonly\tone\n", "tiny.idx").unwrap_err();
        assert!(err.to_string().contains("tiny.idx"), "{err}");
        let err = Index::parse(&[0xff, 0xfe, 0x00], "binary.idx").unwrap_err();
        assert!(err.to_string().contains("binary.idx"), "{err}");
    }

    #[test]
    fn stems_keep_words_that_only_look_plural() {
        assert_eq!(stem("virus"), "virus");
        assert_eq!(stem("photos"), "photo");
        assert_eq!(stem("children's"), "children");
        assert_eq!(stem("genealogy"), "genealog");
    }
}
