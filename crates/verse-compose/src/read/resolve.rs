//! The package resolver: words the catalog did not take are read against the whole Debian
//! archive ([`crate::index`]). A run of words that names a package gets it ("ardour",
//! "yt-dlp", "musescore" as musescore3); a run with a need noun ("a pdf viewer") is searched
//! for (BM25 over descriptions, weighted by popularity); a library next to a language
//! ("python with requests") becomes Debian's packaging of it, or a plainly said pip step.
//! Nothing is installed that is not a package of the suite.

use super::{Reader, is, vocabulary};
use crate::catalog::Catalog;
pub(crate) use crate::index::Want;
use crate::index::{Hit, Index, stem};
use crate::vocab::{
    COMPOUND_STOPS, DESKTOP_WORDS, DETERMINERS, FILE_KINDS, LIST_MARKERS, NEGATIONS,
    OBJECT_PRONOUNS, SKETCHY_WORDS, STOPWORDS, SUBJECT_WORDS, TERMINAL_WORDS, VIEW_OBJECTS,
    VIEW_VERBS,
};
use crate::vocab::{
    ECOSYSTEMS, GENERIC_NOUNS, NEED_LEADS, NEED_NOUNS, PHRASE_SYNONYMS, PYTHON_ALIASES, SYNONYMS,
};
use crate::words::Token;
use crate::{NoteKind, UnknownApp};

/// Descriptions using a word this often make it ordinary English rather than a program name.
const ENGLISH_FREQUENCY: u32 = 40;

/// What the resolver adds to the draft.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    /// (package, graphical)
    pub packages: Vec<(String, bool)>,
    pub run: Vec<String>,
}

impl Resolved {
    fn add(&mut self, hit: &Hit) {
        if !self.packages.iter().any(|(p, _)| p == hit.package.name) {
            self.packages.push((
                hit.package.name.to_string(),
                hit.package.gui && !hit.package.console,
            ));
        }
    }
}

struct Run {
    start: usize,
    end: usize,
    words: Vec<String>,
    /// Contains a need noun, or follows "something to".
    described: bool,
    /// Follows "something to": a verb phrase ("something to merge and split pdf files").
    lead: bool,
    /// Words next to the need that other readers took ("offline" in "an offline
    /// encyclopedia reader"): they refine the search without being required.
    context: Vec<String>,
    /// Directly follows an app the catalog read ("an ebook library manager"): the need
    /// describes that app.
    follows_app: Option<String>,
}

impl Reader<'_> {
    /// Maximal runs of unused content words, split at stopwords, commas and used words.
    fn runs(&self) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        let mut i = 0;
        while i < self.tokens.len() {
            // a need noun is content even when it is also a box word ("a digital audio
            // workstation"), and so is the verb of "something to *edit* photos"
            let after_lead = |j: usize| {
                j >= 2 && self.word(j - 1) == Some("to") && is(self.word(j - 2), NEED_LEADS)
            };
            let content = |j: usize| {
                !self.used[j]
                    && self.word(j).is_some_and(|w| {
                        !STOPWORDS.contains(&w)
                            || NEED_LEADS.contains(&w)
                            || NEED_NOUNS.contains(&w)
                            || after_lead(j)
                    })
                    && self.word(j) != Some("something")
            };
            if !content(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < self.tokens.len() && content(i) {
                i += 1;
            }
            let words: Vec<String> = (start..i)
                .filter_map(|j| self.word(j).map(str::to_string))
                .collect();
            let lead = start >= 2
                && self.word(start - 1) == Some("to")
                && is(self.word(start - 2), NEED_LEADS);
            let described = lead || words.iter().any(|w| NEED_NOUNS.contains(&w.as_str()));
            // "a diff and merge tool": one need across "and" when no article starts the second
            if let Some(prev) = runs.last_mut()
                && described
                && !prev.described
                && prev.end + 1 == start
                && is(self.word(prev.end), &["and", "or"])
            {
                prev.words.extend(words);
                prev.end = i;
                prev.described = true;
                continue;
            }
            // "something to record my screen": the verb's object, past a determiner
            if let Some(prev) = runs.last_mut()
                && prev.lead
                && !described
                && start > prev.end
                && (prev.end..start).all(|j| is(self.word(j), DETERMINERS))
            {
                prev.words.extend(words);
                prev.end = i;
                continue;
            }
            // "something to merge and split pdf files": verbs joined by "and" are one need
            if let Some(prev) = runs.last_mut()
                && prev.lead
                && !described
                && prev.end + 1 == start
                && is(self.word(prev.end), &["and", "or"])
            {
                prev.words.extend(words);
                prev.end = i;
                continue;
            }
            // "a backup tool with deduplication": a word after a need refines it
            if let Some(prev) = runs.last_mut()
                && prev.described
                && !described
                && prev.end + 1 == start
                && is(self.word(prev.end), &["with", "that", "for"])
                && words.len() == 1
                && Index::get().named(&words[0]).is_none()
            {
                prev.words.extend(words);
                prev.end = i;
                continue;
            }
            runs.push(Run {
                start,
                end: i,
                words,
                described,
                lead,
                context: Vec::new(),
                follows_app: None,
            });
        }
        self.modifiers(&mut runs);
        runs
    }

    /// A need noun's modifiers to its left belong to the need: "an *image* viewer", "a
    /// *remote desktop* client", "an *offline* encyclopedia reader". Unused words become
    /// terms of the search; words another reader took (a setting) become context; an app the
    /// catalog read ("an *ebook* library manager") makes the need a description of that app.
    fn modifiers(&self, runs: &mut Vec<Run>) {
        let mut k = 0;
        while k < runs.len() {
            if !runs[k].described || runs[k].lead {
                k += 1;
                continue;
            }
            let mut j = runs[k].start;
            while j > 0 {
                let Some(w) = self.word(j - 1) else { break };
                if COMPOUND_STOPS.contains(&w)
                    || NEGATIONS.contains(&w)
                    || SKETCHY_WORDS.contains(&w)
                    || LIST_MARKERS.contains(&w)
                {
                    break;
                }
                if self.app_tokens[j - 1] {
                    runs[k].follows_app = Some(w.to_string());
                    break;
                }
                if k > 0 && runs[k - 1].end == j && !runs[k - 1].described {
                    let prev = runs.remove(k - 1);
                    k -= 1;
                    let mut words = prev.words;
                    words.append(&mut runs[k].words);
                    runs[k].words = words;
                    runs[k].start = prev.start;
                    j = prev.start;
                    continue;
                }
                if DESKTOP_WORDS.contains(&w) || TERMINAL_WORDS.contains(&w) {
                    // "graphical", "terminal": said through `want`, not words to look for
                } else if self.used[j - 1] {
                    runs[k].context.insert(0, w.to_string());
                } else {
                    runs[k].words.insert(0, w.to_string());
                    runs[k].start = j - 1;
                }
                j -= 1;
            }
            k += 1;
        }
    }

    /// True when the word at `i` is a verb by its place: after a subject ("somebody *sent*
    /// me", "I *got*") or before an object pronoun ("*sent* me"). A verb is never a package.
    fn verb_slot(&self, i: usize) -> bool {
        is(i.checked_sub(1).and_then(|p| self.word(p)), SUBJECT_WORDS)
            || is(self.word(i + 1), OBJECT_PRONOUNS)
    }

    /// The words after "from" name where something comes from ("from a forum", "from a
    /// dodgy usb stick"), not a program: they are marked read.
    fn places(&mut self) {
        for i in 0..self.tokens.len() {
            if self.word(i) != Some("from") {
                continue;
            }
            let mut j = i + 1;
            while let Some(w) = self.word(j) {
                if matches!(w, "a" | "an" | "the" | "my" | "some" | "this" | "that") || self.used[j]
                {
                    j += 1;
                    continue;
                }
                if COMPOUND_STOPS.contains(&w) || self.app_tokens[j] {
                    break;
                }
                self.used[j] = true;
                j += 1;
            }
        }
    }

    /// "look at photos", "browse to a site", "open ... a .docx": what is looked at, browsed
    /// or opened asks for the program that shows it. Returns the needs, as words.
    fn viewed(&mut self) -> Vec<Vec<String>> {
        let mut needs: Vec<Vec<String>> = Vec::new();
        let push = |needs: &mut Vec<Vec<String>>, need: &str| {
            let need: Vec<String> = need.split(' ').map(str::to_string).collect();
            if !needs.contains(&need) {
                needs.push(need);
            }
        };
        // a file named by its extension, anywhere: ".docx", "report.xlsx"
        for i in 0..self.tokens.len() {
            let Some(w) = self.word(i) else { continue };
            let Some((_, ext)) = w.rsplit_once('.') else {
                continue;
            };
            if let Some((_, need)) = FILE_KINDS.iter().find(|(e, _)| *e == ext) {
                self.used[i] = true;
                // "a weird .xlsx": words before the file describe it
                let mut j = i;
                while j > 0
                    && let Some(w) = self.word(j - 1)
                    && !COMPOUND_STOPS.contains(&w)
                    && !self.app_tokens[j - 1]
                {
                    self.used[j - 1] = true;
                    j -= 1;
                }
                push(&mut needs, need);
            }
        }
        for i in 0..self.tokens.len() {
            let Some(verb) = self.word(i).map(str::to_string) else {
                continue;
            };
            let verb = verb.as_str();
            let Some((_, object_words)) = VIEW_VERBS.iter().find(|(v, _)| *v == verb) else {
                continue;
            };
            // "browse" alone (or "browse to a site") is a browser
            let mut found = false;
            for j in i + 1..(i + 6).min(self.tokens.len()) {
                let Some(w) = self.word(j) else { break };
                if let Some((_, need)) = VIEW_OBJECTS
                    .iter()
                    .find(|(o, _)| stem(w).starts_with(o) && object_words.contains(o))
                {
                    if !self.used[j] && !self.app_tokens[j] {
                        self.used[i] = true;
                        self.used[j] = true;
                        push(&mut needs, need);
                    }
                    found = true;
                    break;
                }
                if !(COMPOUND_STOPS.contains(&w) || self.used[j] || STOPWORDS.contains(&w)) {
                    break;
                }
            }
            if !found && verb == "browse" && !self.used[i] {
                self.used[i] = true;
                push(&mut needs, "web browser");
            }
        }
        needs
    }

    fn in_list(&self, i: usize) -> bool {
        let prev = i.checked_sub(1).map(|p| &self.tokens[p]);
        let next = self.tokens.get(i + 1);
        matches!(prev, Some(Token::Comma))
            || matches!(next, Some(Token::Comma))
            || prev
                .and_then(Token::word)
                .is_some_and(|p| LIST_MARKERS.contains(&p) || p == "a" || p == "an")
            || next.and_then(Token::word).is_some_and(|n| n == "and")
            || next.is_none()
    }

    /// Resolve what the catalog left: named packages, described needs, language libraries.
    pub(super) fn resolve(&mut self, apps: &[usize], want: Want) -> Resolved {
        let mut out = Resolved::default();
        self.places();
        let catalog = Catalog::get();
        for need in self.viewed() {
            let phrase = need.join(" ");
            match catalog.phrases.get(&phrase) {
                Some(crate::catalog::Meaning::App(a)) => {
                    let app = &catalog.apps[*a];
                    self.note(
                        NoteKind::Read,
                        format!(
                            "opening or viewing that needs a {phrase}: {} ({})",
                            app.name,
                            app.packages.join(", ")
                        ),
                    );
                    for p in &app.packages {
                        if !out.packages.iter().any(|(q, _)| q == p) {
                            out.packages.push((p.clone(), app.gui));
                        }
                    }
                }
                _ => self.described(&need, &[], want, &mut out),
            }
        }
        let runs = self.runs();
        if runs.is_empty() {
            return out;
        }
        let index = Index::get();
        let vocab = vocabulary();
        let mut ecosystems: Vec<_> = ECOSYSTEMS
            .iter()
            .filter(|e| {
                apps.iter()
                    .any(|a| e.apps.contains(&catalog.apps[*a].name.as_str()))
            })
            .collect();
        // "django and fastapi": a word that is no program but a Python library brings Python
        if ecosystems.is_empty()
            && let Some(python) = ECOSYSTEMS.iter().find(|e| e.name == "python")
            && let Some(w) = runs.iter().find_map(|r| {
                r.words.iter().enumerate().find_map(|(k, w)| {
                    // "yt dlp" is the program yt-dlp, not the library yt
                    let hyphenated = [k.checked_sub(1).map(|j| j..k + 1), Some(k..k + 2)]
                        .into_iter()
                        .flatten()
                        .filter_map(|range| r.words.get(range))
                        .any(|ws| index.contains(&ws.join("-")));
                    (!vocab.contains(w)
                        && !hyphenated
                        && index.named(w).is_none()
                        && library(index, python.name, python.patterns, w).is_some())
                    .then_some(w)
                })
            })
        {
            self.note(
                NoteKind::Read,
                format!("\"{w}\" is a Python library: added python3"),
            );
            out.packages.push(("python3".into(), false));
            ecosystems.push(python);
        }
        let mut pip: Vec<String> = Vec::new();
        for run in runs {
            let mut done = vec![false; run.words.len()];
            // language libraries first: "python with requests and beautifulsoup"
            for eco in &ecosystems {
                for (k, w) in run.words.iter().enumerate() {
                    if done[k] || vocab.contains(w) {
                        continue;
                    }
                    if let Some(p) = library(index, eco.name, eco.patterns, w) {
                        done[k] = true;
                        self.note(
                            NoteKind::Read,
                            format!(
                                "\"{w}\": the {} library, packaged by Debian as {p}",
                                eco.name
                            ),
                        );
                        out.packages.push((p, false));
                    }
                }
            }
            // a name split around a word the catalog took: "docker compose" after "docker"
            if run.start > 0
                && self.app_tokens[run.start - 1]
                && let Some(prev) = self.word(run.start - 1)
                && let Some(p) = index.get_package(&format!("{prev}-{}", run.words[0]))
                && p.program
            {
                self.note(
                    NoteKind::Read,
                    format!(
                        "\"{prev} {}\": the Debian package {} ({})",
                        run.words[0], p.name, p.description
                    ),
                );
                out.packages.push((p.name.to_string(), p.gui && !p.console));
                done[0] = true;
            }
            // hyphenated names the tokenizer split: "yt dlp", "docker compose"
            let mut k = 0;
            while k < run.words.len() {
                let mut took = 0;
                for n in (2..=(run.words.len() - k).min(4)).rev() {
                    if done[k..k + n].iter().any(|d| *d) {
                        continue;
                    }
                    let joined = run.words[k..k + n].join("-");
                    let found = ecosystems
                        .iter()
                        .find_map(|e| library(index, e.name, e.patterns, &joined))
                        .map(|p| (p, "library"))
                        .or_else(|| {
                            index
                                .get_package(&joined)
                                .map(|p| (p.name.to_string(), "package"))
                        });
                    if let Some((p, what)) = found {
                        let gui = index.get_package(&p).is_some_and(|x| x.gui && !x.console);
                        self.note(
                            NoteKind::Read,
                            format!(
                                "\"{}\": the Debian {what} {p}",
                                run.words[k..k + n].join(" ")
                            ),
                        );
                        out.packages.push((p, gui));
                        took = n;
                        break;
                    }
                }
                if took > 0 {
                    done[k..k + took].iter_mut().for_each(|d| *d = true);
                    k += took;
                } else {
                    k += 1;
                }
            }
            if run.described
                && let Some(app) = &run.follows_app
            {
                self.note(
                    NoteKind::Read,
                    format!(
                        "\"{app} {}\": read as describing {app}, not as another program",
                        run.words.join(" ")
                    ),
                );
                for j in run.start..run.end {
                    self.used[j] = true;
                }
                continue;
            }
            if run.described {
                let rest: Vec<String> = run
                    .words
                    .iter()
                    .zip(&done)
                    .filter(|(_, d)| !**d)
                    .map(|(w, _)| w.clone())
                    .collect();
                if !rest.is_empty() {
                    self.described(&rest, &run.context, want, &mut out);
                }
                for j in run.start..run.end {
                    self.used[j] = true;
                }
                continue;
            }
            for (k, w) in run.words.iter().enumerate() {
                let i = run.start + k;
                if done[k] {
                    self.used[i] = true;
                    continue;
                }
                if vocab.contains(w) || w.chars().count() < 2 || self.verb_slot(i) {
                    continue;
                }
                let listed = self.in_list(i);
                let hit = index.named(w).or_else(|| index.described_as_command(w));
                match hit {
                    Some(hit)
                        if listed
                            || (hit.package.program && !index.is_english(w, ENGLISH_FREQUENCY)) =>
                    {
                        self.used[i] = true;
                        self.note(NoteKind::Read, format!("\"{w}\": {}", hit.why));
                        out.add(&hit);
                    }
                    _ => {
                        // a library Debian does not package, next to a language that has a way
                        let fallback = ecosystems.iter().find_map(|e| e.fallback.as_ref());
                        if let Some(fb) = fallback
                            && listed
                            && !index.is_english(w, ENGLISH_FREQUENCY)
                        {
                            self.used[i] = true;
                            self.note(
                                NoteKind::Read,
                                format!("\"{w}\": no Debian package; {}", fb.said),
                            );
                            pip.push(w.clone());
                        }
                    }
                }
            }
        }
        if !pip.is_empty()
            && let Some(fb) = ecosystems.iter().find_map(|e| e.fallback.as_ref())
        {
            for p in fb.needs {
                out.packages.push((p.to_string(), false));
            }
            let names = pip.join(" ");
            out.run.push(fb.command.replace("{}", &names));
            self.note(
                NoteKind::Unsure,
                format!("{}: not packaged by Debian; {}", pip.join(", "), fb.said),
            );
        }
        out
    }

    /// A described need: search the index and take the best program.
    fn described(&mut self, words: &[String], context: &[String], want: Want, out: &mut Resolved) {
        let index = Index::get();
        let mut joined = words.join(" ");
        for (phrase, one) in PHRASE_SYNONYMS {
            joined = joined.replace(phrase, one);
        }
        let words: Vec<String> = joined.split(' ').map(str::to_string).collect();
        let terms: Vec<String> = words
            .iter()
            .filter(|w| !GENERIC_NOUNS.contains(&w.as_str()))
            .map(|w| stem(w))
            .filter(|t| t.len() >= 2)
            .collect();
        let said = words.join(" ");
        if terms.is_empty() {
            return;
        }
        let extra: Vec<(usize, String)> = terms
            .iter()
            .enumerate()
            .flat_map(|(n, t)| {
                SYNONYMS
                    .iter()
                    .filter(move |(k, _)| t.starts_with(k))
                    .flat_map(move |(_, s)| s.iter().map(move |x| (n, x.to_string())))
            })
            .filter(|(_, x)| !terms.contains(x))
            .collect();
        let context: Vec<String> = context
            .iter()
            .filter(|w| !GENERIC_NOUNS.contains(&w.as_str()))
            .map(|w| stem(w))
            .filter(|t| t.len() >= 2 && !terms.contains(t))
            .collect();
        let hits = index.search(&terms, &extra, &context, want);
        match hits.first() {
            Some(best) => {
                let others: Vec<&str> = hits[1..].iter().map(|h| h.package.name).collect();
                self.note(
                    NoteKind::Read,
                    format!(
                        "\"{said}\": {} — {}{}",
                        best.package.name,
                        best.why,
                        if others.is_empty() {
                            String::new()
                        } else {
                            format!("; also close: {}", others.join(", "))
                        }
                    ),
                );
                out.add(best);
            }
            None => {
                self.unknown.push(UnknownApp {
                    word: said.clone(),
                    why: format!(
                        "no program in Debian {} matches these words",
                        crate::draft::DEFAULT_BASE
                    ),
                    suggestions: Vec::new(),
                });
            }
        }
    }
}

/// Debian's packaging of a language library, if it has one.
pub(super) fn library(index: &Index, eco: &str, patterns: &[&str], word: &str) -> Option<String> {
    if eco == "python"
        && let Some((_, p)) = PYTHON_ALIASES.iter().find(|(w, _)| *w == word)
    {
        return Some(p.to_string());
    }
    for pattern in patterns {
        if let Some((head, tail)) = pattern.split_once("*-") {
            // "golang-*-{}-dev": any project path ending in the word
            let tail = tail.replace("{}", word);
            if let Some(p) = index.find_by_prefix_suffix(head, &format!("-{tail}")) {
                return Some(p);
            }
            continue;
        }
        let name = pattern.replace("{}", word);
        if index.contains(&name) {
            return Some(name);
        }
    }
    None
}
