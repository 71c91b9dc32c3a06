//! The offline composer: reads a prompt word by word and fills a [`Draft`], writing down why.

use std::collections::BTreeSet;

use crate::catalog::{Catalog, Meaning};
use crate::draft::{Backend, DEFAULT_BASE, Draft, NetworkIntent};
use crate::words::{Token, cpu_unit, size_unit, tokenize};
use crate::{Note, NoteKind, UnknownApp};

mod resolve;

use crate::vocab::*;

/// The Tor SOCKS proxy used for "through tor".
pub const TOR_PROXY: &str = "socks5://127.0.0.1:9050";

fn is(word: Option<&str>, set: &[&str]) -> bool {
    word.is_some_and(|w| set.contains(&w))
}

/// Every word the reader understands, for typo repair and for spotting unknown words.
fn vocabulary() -> &'static BTreeSet<String> {
    static VOCAB: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    VOCAB.get_or_init(|| {
        let mut v = BTreeSet::new();
        for set in [
            STOPWORDS,
            DEV_WORDS,
            LIST_MARKERS,
            NEGATIONS,
            NET_NOUNS,
            OFFLINE_WORDS,
            EPHEMERAL_WORDS,
            PERSISTENT_WORDS,
            VM_WORDS,
            GVISOR_WORDS,
            DESKTOP_WORDS,
            TERMINAL_WORDS,
            OTHER_DISTROS,
            COLOURS,
            PURPOSES,
            MEMORY_NOUNS,
            DISK_NOUNS,
            EXTRA_WORDS,
            SKETCHY_WORDS,
            DISCARD_VERBS,
            KEEP_WORDS,
            PHRASE_WORDS,
            ALLOW_WORDS,
            MOUNT_WORDS,
            SUBJECT_WORDS,
            OBJECT_PRONOUNS,
            DETERMINERS,
        ] {
            v.extend(set.iter().map(|s| s.to_string()));
        }
        for phrase in Catalog::get().phrases.keys() {
            v.extend(phrase.split(' ').map(str::to_string));
        }
        v
    })
}

struct Reader<'p> {
    prompt: &'p str,
    tokens: Vec<Token>,
    used: Vec<bool>,
    notes: Vec<Note>,
    unknown: Vec<UnknownApp>,
    /// Free equivalents installed in place of proprietary names.
    instead: Vec<String>,
    /// The words asked for a terminal only.
    terminal: bool,
    /// The words asked for a desktop or something graphical.
    graphical: bool,
    /// Tokens the catalog read as an app ("ebook" in "an ebook library manager").
    app_tokens: Vec<bool>,
}

impl Reader<'_> {
    fn word(&self, i: usize) -> Option<&str> {
        self.tokens.get(i).and_then(Token::word)
    }

    fn note(&mut self, kind: NoteKind, text: impl Into<String>) {
        self.notes.push(Note {
            kind,
            text: text.into(),
        });
    }

    /// Index of the first unused word token in `set`, with its word.
    fn find(&self, set: &[&str]) -> Option<(usize, String)> {
        (0..self.tokens.len())
            .find(|&i| !self.used[i] && is(self.word(i), set))
            .map(|i| (i, self.word(i).unwrap_or_default().to_string()))
    }

    /// The word tokens no reader has used yet, with their indices.
    fn unused_words(&self) -> Vec<(usize, String)> {
        (0..self.tokens.len())
            .filter(|&i| !self.used[i])
            .filter_map(|i| self.word(i).map(|w| (i, w.to_string())))
            .collect()
    }

    /// True when a negation stands within `window` words before `i` (not across a comma).
    fn negated(&self, i: usize, window: usize) -> bool {
        let mut j = i;
        for _ in 0..window {
            if j == 0 {
                return false;
            }
            j -= 1;
            match &self.tokens[j] {
                Token::Comma => return false,
                Token::Word(w) if NEGATIONS.contains(&w.as_str()) => return true,
                Token::Word(w) if w == "but" || w == "except" => return false,
                _ => {}
            }
        }
        false
    }

    /// Words the user wrote, for quoting in explanations.
    fn quote(&self, from: usize, to: usize) -> String {
        let parts: Vec<String> = self.tokens[from..to.min(self.tokens.len())]
            .iter()
            .map(|t| match t {
                Token::Word(w) => w.clone(),
                Token::Number(n) => format_number(*n),
                Token::Address(a) => a.clone(),
                Token::Comma => ",".into(),
            })
            .collect();
        parts.join(" ").replace(" ,", ",")
    }

    /// Replace misspelt words by the closest word the reader knows.
    fn repair_typos(&mut self) {
        let vocab = vocabulary();
        for i in 0..self.tokens.len() {
            let Some(word) = self.word(i).map(str::to_string) else {
                continue;
            };
            if vocab.contains(&word) || word.chars().count() < 4 {
                continue;
            }
            // a package of the suite or a word its programs are described with is not a typo
            // ("tree" is not "free", "flight" is not "light", "photos" is not "photo")
            let index = crate::index::Index::get();
            if index.named(&word).is_some()
                || index.has_word(&word)
                || ECOSYSTEMS
                    .iter()
                    .any(|e| resolve::library(index, e.name, e.patterns, &word).is_some())
            {
                continue;
            }
            let limit = if word.chars().count() <= 6 { 1 } else { 2 };
            let mut best: Vec<(usize, &String)> = vocab
                .iter()
                .filter(|c| c.chars().count() >= 3)
                .map(|c| (strsim::damerau_levenshtein(&word, c), c))
                .filter(|(d, _)| *d <= limit)
                .collect();
            best.sort();
            let fix = match best.as_slice() {
                [(d, c)] => Some((*d, (*c).clone())),
                [(d1, c), (d2, _), ..] if d1 < d2 => Some((*d1, (*c).clone())),
                _ => None,
            };
            if let Some((_, fixed)) = fix {
                self.note(
                    NoteKind::Unsure,
                    format!("read \"{word}\" as \"{fixed}\" (a likely typo)"),
                );
                self.tokens[i] = Token::Word(fixed);
            }
        }
    }

    fn context_ok(&self, start: usize, end: usize) -> bool {
        let before = start.checked_sub(1).and_then(|i| self.tokens.get(i));
        let after = self.tokens.get(end);
        let word_before = before.and_then(Token::word);
        let word_after = after.and_then(Token::word);
        is(word_after, DEV_WORDS)
            || is(word_before, DEV_WORDS)
            || is(word_before, LIST_MARKERS)
            || matches!(before, Some(Token::Comma))
            // "go, rust and python", "r with ggplot2": a list or a main tool that starts the prompt
            || (start == 0
                && (matches!(after, Some(Token::Comma)) || is(word_after, &["and", "with"])))
    }

    /// Match catalog phrases, longest first. Returns chosen apps and named hosts.
    fn catalog(&mut self) -> (Vec<usize>, Vec<usize>) {
        let catalog = Catalog::get();
        let mut apps = Vec::new();
        let mut hosts = Vec::new();
        let mut i = 0;
        while i < self.tokens.len() {
            let mut matched = 0;
            for n in (1..=catalog.max_words).rev() {
                if i + n > self.tokens.len() {
                    continue;
                }
                let words: Option<Vec<&str>> =
                    (i..i + n).map(|j| self.word(j)).collect::<Option<_>>();
                let Some(words) = words else { continue };
                let phrase = words.join(" ");
                let Some(meaning) = catalog.phrases.get(&phrase) else {
                    continue;
                };
                match *meaning {
                    Meaning::App(a) => {
                        let app = &catalog.apps[a];
                        if app.context && !self.context_ok(i, i + n) {
                            continue;
                        }
                        // "an email attachment" says where a file came from, not an app
                        if self
                            .word(i + n)
                            .is_some_and(|w| w == "attachment" || w == "attachments")
                        {
                            matched = n;
                            break;
                        }
                        self.app_tokens[i..i + n].iter_mut().for_each(|t| *t = true);
                        if !apps.contains(&a) {
                            apps.push(a);
                            let pkgs = app.packages.join(", ");
                            self.note(
                                NoteKind::Read,
                                format!(
                                    "\"{phrase}\": {} ({}), package{} {pkgs}",
                                    app.name,
                                    app.group,
                                    if app.packages.len() > 1 { "s" } else { "" }
                                ),
                            );
                        }
                    }
                    Meaning::Unavailable(u) if !catalog.unavailable[u].instead.is_empty() => {
                        let entry = &catalog.unavailable[u];
                        let instead = entry.instead.join(", ");
                        self.note(
                            NoteKind::Read,
                            format!(
                                "\"{phrase}\": not in Debian ({}); {instead} instead",
                                entry.why
                            ),
                        );
                        self.instead.extend(entry.instead.iter().cloned());
                    }
                    Meaning::Unavailable(u) => {
                        let entry = &catalog.unavailable[u];
                        if !self.unknown.iter().any(|k| k.word == phrase) {
                            self.unknown.push(UnknownApp {
                                word: phrase.clone(),
                                why: entry.why.clone(),
                                suggestions: entry.suggest.clone(),
                            });
                        }
                        // "tor browser" still asks for tor: the network reader sees "tor"
                    }
                    Meaning::Hosts(h) => {
                        // "read wikipedia offline" names a site; "only wikipedia" asks for it
                        if !self.allow_context(i) && !self.allow_context(i + n - 1) {
                            continue;
                        }
                        if !hosts.contains(&h) {
                            hosts.push(h);
                        }
                    }
                }
                matched = n;
                break;
            }
            if matched > 0 {
                for j in i..i + matched {
                    self.used[j] = true;
                }
                i += matched;
            } else {
                i += 1;
            }
        }
        (apps, hosts)
    }

    fn resources(&mut self, draft: &mut Draft) {
        for i in 0..self.tokens.len() {
            let Token::Number(n) = self.tokens[i] else {
                continue;
            };
            let mut j = i + 1;
            if self.word(j) == Some("x") {
                j += 1;
            }
            // cpu: "2 cores", "2 of cores"? "a couple of cores"
            let mut k = j;
            if self.word(k) == Some("of") {
                k += 1;
            }
            if self.word(k).is_some_and(cpu_unit) {
                let said = self.quote(i, k + 1);
                self.used[i] = true;
                self.used[k] = true;
                if n <= 0.0 || n > verse_spec::MAX_CPU {
                    self.note(
                        NoteKind::Unsure,
                        format!("\"{said}\": not a usable cpu limit; left unset"),
                    );
                } else if let Some(old) = draft.cpu {
                    self.note(
                        NoteKind::Conflict,
                        format!(
                            "\"{said}\" conflicts with {} cores said earlier; kept the first",
                            format_number(old)
                        ),
                    );
                } else {
                    draft.cpu = Some(n);
                    self.note(
                        NoteKind::Read,
                        format!("\"{said}\": cpu = {}", format_number(n)),
                    );
                }
                continue;
            }
            let Some(unit) = self.word(j).and_then(size_unit) else {
                continue;
            };
            self.used[i] = true;
            self.used[j] = true;
            let bytes = (n * unit as f64) as u64;
            // what is it: look a few words after, then a few before
            let mut what = None;
            let mut end = j + 1;
            for m in j + 1..(j + 4).min(self.tokens.len()) {
                match &self.tokens[m] {
                    Token::Word(w) if MEMORY_NOUNS.contains(&w.as_str()) => {
                        what = Some(false);
                        end = m + 1;
                        break;
                    }
                    Token::Word(w) if DISK_NOUNS.contains(&w.as_str()) => {
                        what = Some(true);
                        end = m + 1;
                        break;
                    }
                    Token::Word(w) if w == "of" || w == "for" || w == "the" => {}
                    _ => break,
                }
            }
            let mut start = i;
            if what.is_none() {
                for m in (i.saturating_sub(3)..i).rev() {
                    match &self.tokens[m] {
                        Token::Word(w) if MEMORY_NOUNS.contains(&w.as_str()) => {
                            what = Some(false);
                            start = m;
                            break;
                        }
                        Token::Word(w) if DISK_NOUNS.contains(&w.as_str()) => {
                            what = Some(true);
                            start = m;
                            break;
                        }
                        Token::Word(w)
                            if ["of", "with", "and", "is", "=", "a"].contains(&w.as_str()) => {}
                        _ => break,
                    }
                }
            }
            let said = self.quote(start, end);
            let unit_word = self.word(j).unwrap_or_default();
            let read_as =
                if ["gb", "mb", "tb", "kb", "gig", "gigs", "meg", "megs"].contains(&unit_word) {
                    format!(
                        " (read as {}, binary units)",
                        crate::draft::size_string(bytes)
                    )
                } else {
                    String::new()
                };
            match what {
                Some(true) => {
                    if draft.disk.is_some() {
                        self.note(
                            NoteKind::Conflict,
                            format!("\"{said}\": a second disk size; kept the first"),
                        );
                    } else {
                        draft.disk = Some(bytes);
                        self.note(
                            NoteKind::Read,
                            format!(
                                "\"{said}\": disk = {}{read_as}",
                                crate::draft::size_string(bytes)
                            ),
                        );
                    }
                }
                _ => {
                    if draft.memory.is_some() {
                        self.note(
                            NoteKind::Conflict,
                            format!("\"{said}\": a second memory size; kept the first"),
                        );
                    } else if bytes < verse_spec::MIN_MEMORY {
                        self.note(
                            NoteKind::Unsure,
                            format!(
                                "\"{said}\": less than the 4MiB an env needs; memory left unset"
                            ),
                        );
                    } else {
                        draft.memory = Some(bytes);
                        if what.is_none() {
                            self.note(NoteKind::Unsure, format!("\"{said}\": no word said what it is for; read as memory = {}{read_as}", crate::draft::size_string(bytes)));
                        } else {
                            self.note(
                                NoteKind::Read,
                                format!(
                                    "\"{said}\": memory = {}{read_as}",
                                    crate::draft::size_string(bytes)
                                ),
                            );
                        }
                    }
                }
            }
            for m in start..end {
                self.used[m] = true;
            }
        }
    }

    /// Whether the words around token `i` ask for it to be reachable: "only X", "X only",
    /// "access to X", "allow X", "except X", also through a list ("only X, Y and Z"); a bare
    /// "to X" ("logs to X") is not enough.
    fn allow_context(&self, i: usize) -> bool {
        let listy = |t: &Token| {
            matches!(t, Token::Address(_) | Token::Comma)
                || matches!(t, Token::Word(w) if w == "and" || w == "or" || looks_like_domain(w))
        };
        let mut before = i;
        while before > 0 && listy(&self.tokens[before - 1]) {
            before -= 1;
        }
        let asked = (before.saturating_sub(4)..before).any(|m| is(self.word(m), ALLOW_WORDS));
        let mut after = i + 1;
        while after < self.tokens.len() && listy(&self.tokens[after]) {
            after += 1;
        }
        asked || is(self.word(after), &["only", "access", "allowed"])
    }

    /// Addresses the words allow ("only example.org:443", "only 10.0.0.0/8"), each as an
    /// allow-list entry the spec accepts, with the words it came from. An address without a
    /// port is read narrowly (a name: its https port 443; an IPv4 address or network: the
    /// address, all ports) and the explanation says so; one the spec would refuse is reported
    /// and left out. Addresses outside an allow phrase grant nothing.
    fn allowed_addresses(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for i in 0..self.tokens.len() {
            if self.used[i] {
                continue;
            }
            let said = match &self.tokens[i] {
                Token::Address(a) if !a.contains("://") => a.clone(),
                Token::Word(w) if looks_like_domain(w) => w.clone(),
                _ => continue,
            };
            if !self.allow_context(i) {
                if matches!(self.tokens[i], Token::Address(_)) {
                    self.note(NoteKind::Unsure, format!("\"{said}\": an address with no word asking for it (\"only {said}\", \"access to {said}\"); it grants nothing"));
                    self.used[i] = true;
                }
                continue;
            }
            self.used[i] = true;
            let has_port = said.rsplit_once(':').is_some_and(|(_, p)| {
                p == "*" || p.chars().all(|c| c.is_ascii_digit() || c == '-')
            });
            let (entry, port_note) = if has_port {
                (said.clone(), None)
            } else if said
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '/')
            {
                let entry = format!("{said}:*");
                let note = format!(
                    "\"{said}\": no port given; read as {entry}, every port of that address (write {said}:PORT for one)"
                );
                (entry, Some(note))
            } else {
                let entry = format!("{said}:443");
                let note = format!(
                    "\"{said}\": no port given; read as {entry}, https only (write {said}:80 or {said}:* for more)"
                );
                (entry, Some(note))
            };
            match verse_spec::parse_destination(&entry) {
                Ok(_) => {
                    if let Some(note) = port_note {
                        self.note(NoteKind::Unsure, note);
                    }
                    out.push((said, entry))
                }
                Err(why) => self.note(
                    NoteKind::Unsure,
                    format!("\"{said}\" is not an address an allow-list takes ({why}); left out"),
                ),
            }
        }
        out
    }

    fn network(&mut self, draft: &mut Draft, hosts: &[usize]) {
        let catalog = Catalog::get();
        let mut deny: Option<String> = None;
        let mut grant: Option<String> = None;
        let mut proxy: Option<(String, String)> = None;
        for i in 0..self.tokens.len() {
            let Some(w) = self.word(i).map(str::to_string) else {
                continue;
            };
            if self.used[i] && w != "tor" {
                continue;
            }
            if OFFLINE_WORDS.contains(&w.as_str()) {
                deny.get_or_insert(w.clone());
                self.used[i] = true;
            } else if NET_NOUNS.contains(&w.as_str()) {
                self.used[i] = true;
                if self.negated(i, 4) {
                    deny.get_or_insert(format!("{} {w}", self.negation_word(i)));
                } else if w == "online" || w == "internet" || w == "web" {
                    // "online banking" names a purpose, not a grant
                    let next = self.word(i + 1).map(str::to_string);
                    let next = next.as_deref();
                    if is(next, PURPOSES) {
                        self.note(NoteKind::Unsure, format!("\"{w} {}\" names a purpose; it does not grant network access (say \"with internet\" to grant it)", next.unwrap_or_default()));
                    } else if w == "online" || self.grants(i) {
                        grant.get_or_insert(w.clone());
                    } else {
                        self.used[i] = false;
                        self.note(NoteKind::Unsure, format!("\"{w} {}\" names a kind of program; it does not grant network access (say \"with {w} access\" to grant it)", next.unwrap_or_default()));
                    }
                } else if w == "outside" || w == "external" {
                    // "outside access" etc. only with an access word
                    if is(
                        self.word(i + 1),
                        &["access", "world", "network", "connections"],
                    ) {
                        grant.get_or_insert(w.clone());
                    }
                } else if self.grants(i) {
                    grant.get_or_insert(w.clone());
                } else {
                    // left for the resolver: it describes the program
                    self.used[i] = false;
                    self.note(NoteKind::Unsure, format!("\"{w} {}\" names a kind of program; it does not grant network access (say \"with {w} access\" to grant it)", self.word(i + 1).unwrap_or_default()));
                }
            } else if w == "tor" {
                self.used[i] = true;
                if self.negated(i, 2) {
                    self.note(NoteKind::Read, "\"no tor\": not routed through tor");
                } else if proxy.is_none() {
                    proxy = Some((TOR_PROXY.to_string(), "tor".into()));
                }
            } else if w == "proxy" {
                self.used[i] = true;
                let address =
                    (i + 1..(i + 6).min(self.tokens.len())).find_map(|m| match &self.tokens[m] {
                        Token::Address(a) => Some((m, a.clone())),
                        _ => None,
                    });
                match address {
                    Some((m, a)) => {
                        self.used[m] = true;
                        let url = if a.contains("://") {
                            a.clone()
                        } else {
                            format!("http://{a}")
                        };
                        if !a.contains("://") {
                            self.note(
                                NoteKind::Default,
                                format!("proxy {a} has no scheme; read as {url}"),
                            );
                        }
                        proxy = Some((url, format!("proxy at {a}")));
                    }
                    None if proxy.is_none() => {
                        self.note(NoteKind::Unsure, "a proxy was mentioned without an address (write \"behind a proxy at HOST:PORT\"); no proxy set");
                    }
                    None => {}
                }
            }
        }
        let mut allow: Vec<String> = hosts
            .iter()
            .flat_map(|h| catalog.hosts[*h].hosts.iter().cloned())
            .collect();
        let mut host_names: Vec<String> = hosts
            .iter()
            .map(|h| catalog.hosts[*h].name.clone())
            .collect();
        for (name, entry) in self.allowed_addresses() {
            if !allow.contains(&entry) {
                allow.push(entry);
                host_names.push(name);
            }
        }
        let (network, why) = match (&deny, !allow.is_empty(), &proxy, &grant) {
            (_, true, _, _) => {
                let mut why = format!("\"{}\": only these hosts", host_names.join(", "));
                if let Some(d) = &deny {
                    why.push_str(&format!(
                        " (read \"{d}\" with the exception as an allow-list)"
                    ));
                }
                if proxy.is_some() || grant.is_some() {
                    self.note(NoteKind::Conflict, format!("both an allow-list ({}) and wider access were asked for; kept the narrower allow-list", host_names.join(", ")));
                }
                (NetworkIntent::Allow { hosts: allow }, why)
            }
            (Some(d), false, Some((_, p)), _) => {
                self.note(
                    NoteKind::Conflict,
                    format!("\"{d}\" and \"{p}\" conflict; kept the safer reading: no network"),
                );
                (NetworkIntent::None, format!("\"{d}\""))
            }
            (Some(d), false, None, Some(g)) => {
                self.note(
                    NoteKind::Conflict,
                    format!("\"{d}\" and \"{g}\" conflict; kept the safer reading: no network"),
                );
                (NetworkIntent::None, format!("\"{d}\""))
            }
            (Some(d), false, None, None) => (NetworkIntent::None, format!("\"{d}\"")),
            (None, false, Some((url, p)), _) => (
                NetworkIntent::Proxy { url: url.clone() },
                format!("\"{p}\""),
            ),
            (None, false, None, Some(g)) => (NetworkIntent::Nat, format!("\"{g}\"")),
            (None, false, None, None) => {
                self.note(NoteKind::Default, "network = none: the words did not ask for any network access (say \"with internet\", \"only pypi\" or \"through tor\" to grant some)");
                draft.network = NetworkIntent::None;
                return;
            }
        };
        self.note(
            NoteKind::Read,
            format!("{why}: network = {}", network.describe()),
        );
        if let NetworkIntent::Proxy { url } = &network
            && url == TOR_PROXY
        {
            self.note(
                NoteKind::Default,
                format!("tor is reached at {TOR_PROXY}; a Tor daemon must listen there"),
            );
        }
        draft.network = network;
    }

    /// Whether the network noun at `i` asks for access ("with internet", "internet access",
    /// "network, 2 cores") rather than naming a kind of program ("a network protocol analyzer",
    /// "internet radio"): it must end the words or a clause, or be followed by an access word.
    fn grants(&self, i: usize) -> bool {
        match self.tokens.get(i + 1) {
            None | Some(Token::Comma) | Some(Token::Number(_)) => true,
            Some(Token::Word(n)) => GRANT_AFTER.contains(&n.as_str()),
            Some(Token::Address(_)) => false,
        }
    }

    fn negation_word(&self, i: usize) -> String {
        (i.saturating_sub(4)..i)
            .rev()
            .find_map(|j| self.word(j).filter(|w| NEGATIONS.contains(w)))
            .unwrap_or("no")
            .to_string()
    }

    /// A discard verb applied to the env, not negated: "delete everything when I'm done",
    /// "trash it", "reset on exit", "throw it away", "vanishes when closed".
    fn discard(&self, i: usize) -> Option<String> {
        let w = self.word(i)?;
        if !DISCARD_VERBS.contains(&w) || self.negated(i, 2) {
            return None;
        }
        let next = self.word(i + 1);
        if ["throw", "thrown", "toss", "tossed"].contains(&w) {
            // "throw away", "throw it away", "throw the box away"
            return (i + 1..(i + 4).min(self.tokens.len()))
                .find(|&j| self.word(j) == Some("away"))
                .map(|j| self.quote(i, j + 1));
        }
        let bare = [
            "vanish",
            "vanishes",
            "disappear",
            "disappears",
            "wipe",
            "wiped",
            "discard",
            "discarded",
            "destroyed",
            "forget",
            "forgets",
        ]
        .contains(&w);
        (bare || next.is_none() || is(next, DISCARD_OBJECTS)).then(|| match next {
            Some(n) if n != "when" && n != "once" => format!("{w} {n}"),
            _ => w.to_string(),
        })
    }

    fn isolation(&mut self, draft: &mut Draft) {
        // persistence
        let mut ephemeral: Option<String> = None;
        let mut persistent: Option<String> = None;
        for (i, w) in self.unused_words() {
            if EPHEMERAL_WORDS.contains(&w.as_str()) {
                self.used[i] = true;
                ephemeral.get_or_insert(w);
            } else if let Some(phrase) = self.discard(i) {
                self.used[i] = true;
                ephemeral.get_or_insert(phrase);
            } else if let Some((_, second)) = EPHEMERAL_PHRASES
                .iter()
                .find(|(a, b)| *a == w && self.word(i + 1) == Some(b))
            {
                self.used[i] = true;
                self.used[i + 1] = true;
                ephemeral.get_or_insert(format!("{w} {second}"));
            } else if KEEP_WORDS.contains(&w.as_str()) && self.negated(i, 3) {
                // "nothing should be kept", "don't keep anything"
                self.used[i] = true;
                ephemeral.get_or_insert(format!("{} {w}", self.negation_word(i)));
            } else if PERSISTENT_WORDS.contains(&w.as_str())
                || (w == "keep" || w == "keeps")
                    && is(
                        self.word(i + 1),
                        &[
                            "my",
                            "its",
                            "the",
                            "files",
                            "data",
                            "work",
                            "state",
                            "everything",
                        ],
                    )
                || w == "survive"
                || w == "survives"
            {
                self.used[i] = true;
                if self.negated(i, 2) {
                    ephemeral.get_or_insert(format!("{} {w}", self.negation_word(i)));
                } else {
                    persistent.get_or_insert(w);
                }
            }
        }
        match (ephemeral, persistent) {
            (Some(e), Some(p)) => {
                draft.ephemeral = true;
                self.note(NoteKind::Conflict, format!("\"{e}\" and \"{p}\" conflict; kept the safer reading: ephemeral (writes vanish when it stops)"));
            }
            (Some(e), None) => {
                draft.ephemeral = true;
                self.note(
                    NoteKind::Read,
                    format!("\"{e}\": ephemeral = true (writes vanish when it stops)"),
                );
            }
            (None, Some(p)) => {
                self.note(
                    NoteKind::Read,
                    format!(
                        "\"{p}\": persistent (ephemeral = false): writes are kept across restarts"
                    ),
                );
            }
            (None, None) => {
                self.note(NoteKind::Default, "persistent: nothing asked for a throwaway env, so its writes are kept across restarts (say \"throwaway\" for an ephemeral one)");
            }
        }

        // backend
        let mut strong: Option<String> = None;
        let mut gvisor: Option<String> = None;
        let mut container: Option<String> = None;
        // words about the files themselves: they also get a throwaway env and quarantine
        let mut sketchy: Option<String> = None;
        for (i, w) in self.unused_words() {
            let next_owned = self.word(i + 1).map(str::to_string);
            let next = next_owned.as_deref();
            if VM_WORDS.contains(&w.as_str()) && !self.negated(i, 2) {
                self.used[i] = true;
                strong.get_or_insert(w);
            } else if SKETCHY_WORDS.contains(&w.as_str())
                && (w == "untrusted" || !self.negated(i, 2))
            {
                self.used[i] = true;
                sketchy.get_or_insert(w.clone());
                strong.get_or_insert(w);
            } else if w == "virtual" && next == Some("machine") {
                self.used[i] = true;
                strong.get_or_insert("virtual machine".into());
            } else if [
                "strong",
                "stronger",
                "strongest",
                "extra",
                "heavy",
                "maximum",
                "max",
                "hardened",
                "full",
                "high",
            ]
            .contains(&w.as_str())
                && is(next, &["isolation", "isolated", "sandboxing", "security"])
            {
                self.used[i] = true;
                strong.get_or_insert(format!("{w} {}", next.unwrap_or_default()));
            } else if w == "not" && is(next, &["trusted", "trustworthy", "safe"]) {
                self.used[i] = true;
                strong.get_or_insert(format!("not {}", next.unwrap_or_default()));
                sketchy.get_or_insert(format!("not {}", next.unwrap_or_default()));
            } else if is(Some(w.as_str()), &["don't", "dont", "can't", "cannot"])
                && is(next, &["trust", "trusted"])
            {
                strong.get_or_insert(format!("{w} trust"));
                sketchy.get_or_insert(format!("{w} trust"));
            } else if GVISOR_WORDS.contains(&w.as_str()) {
                self.used[i] = true;
                gvisor.get_or_insert(w);
            } else if w == "container" || w == "containers" {
                self.used[i] = true;
                container.get_or_insert(w);
            }
        }
        match (strong, gvisor, container) {
            (_, Some(g), _) => {
                draft.backend = Backend::Gvisor;
                self.note(NoteKind::Read, format!("\"{g}\": backend = gvisor (a user-space kernel between the env and the host)"));
            }
            (Some(s), None, c) => {
                draft.backend = Backend::Vm;
                if let Some(c) = c {
                    self.note(
                        NoteKind::Conflict,
                        format!("\"{c}\" and \"{s}\" conflict; kept the safer reading: a VM"),
                    );
                }
                self.note(NoteKind::Read, format!("\"{s}\": backend = vm (its own kernel; the strongest isolation Verse offers)"));
                if let Some(k) = sketchy {
                    draft.ephemeral = true;
                    draft.quarantine = true;
                    self.note(NoteKind::Safety, format!("\"{k}\": files that cannot be trusted get a throwaway env (ephemeral = true) whose downloads go to quarantine (downloads = \"quarantine\": scanned and held before they reach another env)"));
                }
            }
            (None, None, Some(c)) => {
                self.note(NoteKind::Read, format!("\"{c}\": backend = container"));
            }
            (None, None, None) => {
                self.note(NoteKind::Default, "backend = container: nothing asked for stronger isolation (say \"untrusted\" or \"in a VM\" for a VM)");
            }
        }
    }

    fn desktop(&mut self, draft: &mut Draft, apps: &[usize]) {
        let catalog = Catalog::get();
        let mut want_desktop: Option<String> = None;
        let mut want_terminal: Option<String> = None;
        for (i, w) in self.unused_words() {
            if DESKTOP_WORDS.contains(&w.as_str()) {
                self.used[i] = true;
                if self.negated(i, 2) {
                    want_terminal.get_or_insert(format!("{} {w}", self.negation_word(i)));
                } else {
                    want_desktop.get_or_insert(w);
                }
            } else if TERMINAL_WORDS.contains(&w.as_str())
                || (w == "command" && self.word(i + 1) == Some("line"))
                || (w == "text" && self.word(i + 1) == Some("only"))
            {
                self.used[i] = true;
                if w == "command" {
                    self.used[i + 1] = true;
                }
                want_terminal.get_or_insert(if w == "command" {
                    "command line".into()
                } else {
                    w
                });
            }
        }
        let gui: Vec<&str> = apps
            .iter()
            .filter(|a| catalog.apps[**a].gui)
            .map(|a| catalog.apps[*a].name.as_str())
            .collect();
        match (&want_desktop, &want_terminal) {
            (Some(d), Some(t)) => {
                draft.desktop = true;
                self.note(
                    NoteKind::Conflict,
                    format!("\"{d}\" and \"{t}\": a desktop, with a terminal in it"),
                );
            }
            (Some(d), None) => {
                draft.desktop = true;
                self.graphical = true;
                self.note(
                    NoteKind::Read,
                    format!("\"{d}\": desktop = true (a graphical session, streamed)"),
                );
            }
            (None, Some(t)) => {
                draft.desktop = false;
                self.terminal = true;
                if !gui.is_empty() {
                    self.note(NoteKind::Conflict, format!("\"{t}\": no desktop, but {} {} graphical and will not show without one", gui.join(", "), if gui.len() > 1 { "are" } else { "is" }));
                } else {
                    self.note(
                        NoteKind::Read,
                        format!("\"{t}\": terminal only, no desktop"),
                    );
                }
            }
            (None, None) if !gui.is_empty() => {
                draft.desktop = true;
                self.note(
                    NoteKind::Default,
                    format!(
                        "desktop = true: {} {} graphical",
                        gui.join(", "),
                        if gui.len() > 1 { "are" } else { "is" }
                    ),
                );
            }
            (None, None) => {
                self.note(
                    NoteKind::Default,
                    "terminal only: nothing graphical was asked for",
                );
            }
        }
    }

    fn labels(&mut self, draft: &mut Draft) {
        for (i, w) in self.unused_words() {
            let prev = i.checked_sub(1).and_then(|p| self.word(p));
            let is_label = COLOURS.contains(&w.as_str())
                || (PURPOSES.contains(&w.as_str())
                    && (is(
                        prev,
                        &[
                            "for", "my", "online", "internet", "label", "labelled", "labeled",
                            "tag", "tagged", "as", "called", "named",
                        ],
                    ) || i
                        .checked_sub(1)
                        .is_some_and(|p| matches!(self.tokens[p], Token::Comma))
                        || is(self.word(i + 1), BOX_NOUNS)))
                || (is(prev, &["label", "labelled", "labeled", "tag", "tagged"])
                    && !STOPWORDS.contains(&w.as_str()));
            if is_label {
                self.used[i] = true;
                if !draft.labels.contains(&w) {
                    draft.labels.push(w.clone());
                    self.note(NoteKind::Read, format!("\"{w}\": label {w}"));
                }
            }
        }
    }

    fn base(&mut self, draft: &mut Draft) {
        if let Some((i, w)) = self.find(OTHER_DISTROS) {
            self.used[i] = true;
            self.note(
                NoteKind::Unsure,
                format!("\"{w}\": only Debian images are composed; base = {DEFAULT_BASE}"),
            );
        } else if let Some((i, w)) = self.find(&["debian", "bookworm"]) {
            self.used[i] = true;
            self.note(NoteKind::Read, format!("\"{w}\": base = {DEFAULT_BASE}"));
        } else {
            self.note(
                NoteKind::Default,
                format!("base = {DEFAULT_BASE}: Debian 12 is the default base"),
            );
        }
        draft.base = DEFAULT_BASE.to_string();
    }

    fn mounts(&mut self) {
        let asks = self.prompt.split_whitespace().any(|w| {
            let w = w.trim_matches(|c: char| "\"'`(),;".contains(c));
            (w.starts_with('/') && w.len() > 1) || w.starts_with("~/") || w == "~"
        }) || self.find(&["mount", "mounted", "mounts", "share", "shared"]).is_some()
            || self.tokens.windows(2).any(|p| matches!((&p[0], &p[1]), (Token::Word(a), Token::Word(b)) if a == "home" && (b == "folder" || b == "directory" || b == "dir")));
        if asks {
            for w in MOUNT_WORDS {
                while let Some((i, _)) = self.find(&[w]) {
                    self.used[i] = true;
                }
            }
            self.note(NoteKind::Safety, "host directories are never mounted by compose: add `volumes` to the spec yourself, naming exactly what the env may see");
        }
    }

    fn unknown_words(&mut self) {
        let vocab = vocabulary();
        let catalog = Catalog::get();
        let mut ignored = Vec::new();
        for i in 0..self.tokens.len() {
            if self.used[i] {
                continue;
            }
            let Some(w) = self.word(i).map(str::to_string) else {
                continue;
            };
            if self.used[i] {
                continue;
            }
            if vocab.contains(&w) || w.chars().all(|c| !c.is_alphanumeric()) {
                continue;
            }
            let prev = i.checked_sub(1).map(|p| &self.tokens[p]);
            let next = self.tokens.get(i + 1);
            let in_list = matches!(prev, Some(Token::Comma))
                || matches!(next, Some(Token::Comma))
                || prev
                    .and_then(Token::word)
                    .is_some_and(|p| LIST_MARKERS.contains(&p) || p == "a" || p == "an")
                || next
                    .and_then(Token::word)
                    .is_some_and(|n| n == "and" || n == "installed" || DEV_WORDS.contains(&n))
                || next.is_none();
            if in_list {
                if !self.unknown.iter().any(|u| u.word == w) {
                    self.unknown.push(UnknownApp {
                        word: w.clone(),
                        why: "not in the catalog".into(),
                        suggestions: catalog.closest(&w),
                    });
                }
            } else {
                ignored.push(w);
            }
        }
        if !ignored.is_empty() {
            self.note(
                NoteKind::Unsure,
                format!("words not understood and not used: {}", ignored.join(", ")),
            );
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Derive an env name from what was read: a purpose label, else the first app, else "env".
fn derive_name(draft: &Draft, apps: &[usize]) -> String {
    let catalog = Catalog::get();
    let raw = draft
        .labels
        .iter()
        .find(|l| PURPOSES.contains(&l.as_str()))
        .cloned()
        .or_else(|| apps.first().map(|a| catalog.apps[*a].name.clone()))
        .unwrap_or_else(|| {
            if draft.ephemeral {
                "scratch".into()
            } else {
                "env".into()
            }
        });
    sanitize_name(&raw)
}

/// Lowercase letters, digits and '-', at most 63, starting with a letter or digit.
pub fn sanitize_name(raw: &str) -> String {
    let mut name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    let name: String = name.chars().take(63).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() { "env".into() } else { name }
}

/// Read `prompt` with the offline composer.
pub fn read(prompt: &str, name: Option<&str>) -> (Draft, Vec<Note>, Vec<UnknownApp>) {
    let tokens = tokenize(prompt);
    let mut reader = Reader {
        prompt,
        used: vec![false; tokens.len()],
        tokens,
        notes: Vec::new(),
        unknown: Vec::new(),
        instead: Vec::new(),
        terminal: false,
        graphical: false,
        app_tokens: Vec::new(),
    };
    reader.app_tokens = vec![false; reader.tokens.len()];
    let mut draft = Draft::new("env");
    reader.repair_typos();
    let (apps, hosts) = reader.catalog();
    reader.resources(&mut draft);
    reader.network(&mut draft, &hosts);
    reader.isolation(&mut draft);
    reader.desktop(&mut draft, &apps);
    reader.labels(&mut draft);
    reader.base(&mut draft);
    reader.mounts();
    let want = if reader.terminal {
        resolve::Want::Terminal
    } else if reader.graphical {
        resolve::Want::Graphical
    } else {
        resolve::Want::Either
    };
    let resolved = reader.resolve(&apps, want);
    reader.unknown_words();

    let catalog = Catalog::get();
    let mut apps = apps;
    let generic: Vec<usize> = apps
        .iter()
        .copied()
        .filter(|a| {
            let app = &catalog.apps[*a];
            app.generic
                && apps
                    .iter()
                    .any(|b| b != a && catalog.apps[*b].group == app.group)
        })
        .collect();
    for g in generic {
        apps.retain(|a| *a != g);
        let app = &catalog.apps[g];
        reader.note(
            NoteKind::Read,
            format!(
                "\"{}\" names the group of the apps you chose; its defaults ({}) were not added",
                app.name,
                app.packages.join(", ")
            ),
        );
    }
    let mut packages: BTreeSet<String> = apps
        .iter()
        .flat_map(|a| catalog.apps[*a].packages.iter().cloned())
        .collect();
    let mut graphical: Vec<String> = Vec::new();
    for p in &reader.instead {
        packages.insert(p.clone());
        if crate::index::Index::get()
            .get_package(p)
            .is_some_and(|x| x.gui && !x.console)
        {
            graphical.push(p.clone());
        }
    }
    for (p, gui) in &resolved.packages {
        packages.insert(p.clone());
        if *gui {
            graphical.push(p.clone());
        }
    }
    draft.run = resolved.run;
    if !graphical.is_empty() && !draft.desktop {
        if reader.terminal {
            reader.note(
                NoteKind::Conflict,
                format!(
                    "no desktop was asked for, but {} {} graphical and will not show without one",
                    graphical.join(", "),
                    if graphical.len() > 1 { "are" } else { "is" }
                ),
            );
        } else {
            draft.desktop = true;
            reader.note(
                NoteKind::Default,
                format!(
                    "desktop = true: {} {} graphical",
                    graphical.join(", "),
                    if graphical.len() > 1 { "are" } else { "is" }
                ),
            );
        }
    }
    if draft.desktop && !apps.iter().any(|a| catalog.apps[*a].group == "desktops") {
        packages.extend(catalog.desktop_packages.iter().cloned());
        reader.note(
            NoteKind::Default,
            format!(
                "a desktop needs a session: added {} (name another desktop, e.g. \"lxqt\" or \"kde\", to change it)",
                catalog.desktop_packages.join(", ")
            ),
        );
    }
    if packages.is_empty() {
        reader.note(
            NoteKind::Default,
            "no apps or tools named: the image is the bare base system",
        );
    }
    draft.packages = packages.into_iter().collect();
    for u in &reader.unknown {
        let text = if u.suggestions.is_empty() {
            format!("\"{}\" is not installed: {}", u.word, u.why)
        } else {
            format!(
                "\"{}\" is not installed: {}; closest in the catalog: {}",
                u.word,
                u.why,
                u.suggestions.join(", ")
            )
        };
        reader.notes.push(Note {
            kind: NoteKind::Unknown,
            text,
        });
    }
    match name {
        Some(n) => {
            draft.name = n.to_string();
        }
        None => {
            draft.name = derive_name(&draft, &apps);
            let text = format!(
                "env name {}: from the words (use --name to choose one)",
                draft.name
            );
            reader.note(NoteKind::Default, text);
        }
    }
    if draft.cpu.is_none() {
        reader.note(NoteKind::Default, "no cpu limit: none was asked for");
    }
    if draft.memory.is_none() {
        reader.note(NoteKind::Default, "no memory limit: none was asked for");
    }
    (draft, reader.notes, reader.unknown)
}

/// A DNS name as people write one in a sentence: dotted, ending in a top-level domain of
/// letters ("example.org", "pypi.python.org"), not a version or a file name like "node.js".
fn looks_like_domain(word: &str) -> bool {
    let Some((head, tld)) = word.rsplit_once('.') else {
        return false;
    };
    !head.is_empty()
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_lowercase())
        && ![
            "js", "py", "rs", "sh", "txt", "md", "toml", "json", "pdf", "doc", "docx",
        ]
        .contains(&tld)
        && head
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}
