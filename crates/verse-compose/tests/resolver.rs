//! The package resolver's rules, each on words that are in neither prompt set (so they show
//! the rule, not a tuned answer): what a user reads in the fragment and the explanation.

use verse_compose::{Composition, Options, compose};

fn run(prompt: &str) -> Composition {
    compose(prompt, &Options::default()).expect("composes")
}

fn explained(c: &Composition, words: &[&str]) -> bool {
    let text = c.explain();
    words.iter().all(|w| text.contains(w))
}

#[test]
fn a_metapackage_is_installed_as_named_and_a_transitional_one_is_replaced() {
    let c = run("wesnoth");
    assert!(c.draft.packages.contains(&"wesnoth".to_string()), "{c:?}");
    assert!(c.draft.desktop, "wesnoth is a game with a window");
    // "ninja" is no package; Debian ships it as ninja-build
    let c = run("ninja and cmake");
    assert_eq!(c.draft.packages, ["cmake", "ninja-build"]);
    assert!(explained(&c, &["ninja-build"]), "{}", c.explain());
}

#[test]
fn programs_without_a_window_bring_no_desktop() {
    // syncthing ships a desktop file that only opens a browser; gradle needs a headless JRE
    for prompt in ["syncthing", "gradle and a jdk", "ffmpeg and sox"] {
        let c = run(prompt);
        assert!(!c.draft.desktop, "{prompt}: {:?}", c.draft.packages);
        assert!(
            !c.draft.packages.contains(&"xfce4".to_string()),
            "{prompt}: {:?}",
            c.draft.packages
        );
    }
}

#[test]
fn a_front_end_gives_its_program_unless_a_window_is_asked_for() {
    let c = run("a video converter in the terminal");
    assert_eq!(c.draft.packages, ["ffmpeg"], "{}", c.explain());
    let c = run("a virus scanner");
    assert_eq!(c.draft.packages, ["clamav"]);
    assert!(explained(&c, &["clamtk", "front-end"]), "{}", c.explain());
    let c = run("a graphical virus scanner");
    assert!(c.draft.packages.contains(&"clamtk".to_string()));
    assert!(c.draft.desktop);
}

#[test]
fn verbs_and_places_are_not_programs() {
    // "sent" is a Debian package (a presentation tool) but here a verb; "torrent" after
    // "from" says where the file came from
    let c = run("a colleague sent us a sketchy exe from a torrent site");
    assert!(c.draft.packages.is_empty(), "{:?}", c.draft.packages);
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    assert_eq!(c.draft.backend.as_str(), "vm");
    assert!(c.draft.quarantine);
}

#[test]
fn what_is_watched_or_opened_asks_for_its_program() {
    let c = run("watch videos from a sketchy site");
    assert!(c.draft.packages.contains(&"vlc".to_string()), "{c:?}");
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    // a file named by its extension, with a word describing it
    let c = run("my friend sent me a weird .xlsx");
    assert!(
        c.draft.packages.contains(&"libreoffice-calc".to_string()),
        "{:?}",
        c.draft.packages
    );
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
}

#[test]
fn a_need_takes_its_modifiers_and_its_verb_object() {
    // "3d" modifies "modeller" (a UML modeller is not meant)
    let c = run("a 3d modeller");
    assert!(
        c.draft.packages.contains(&"blender".to_string()),
        "{}",
        c.explain()
    );
    // "record my screen" is a screen recorder, not a sound recorder
    let c = run("something to record my screen");
    let recorder = c
        .draft
        .packages
        .iter()
        .find(|p| !p.starts_with("xfce4"))
        .expect("a program");
    let index = verse_compose::index::Index::get();
    let description = index.get_package(recorder).unwrap().description;
    assert!(
        description.to_lowercase().contains("screen")
            || index
                .get_package(recorder)
                .unwrap()
                .appstream
                .to_lowercase()
                .contains("screen"),
        "{recorder}: {description}"
    );
}

#[test]
fn word_use_tells_english_words_from_names() {
    let index = verse_compose::index::Index::get();
    // descriptions write "stick" in lower case, "Octave" capitalized
    assert!(index.is_english("stick", 3));
    assert!(index.is_english("tree", 40));
    assert!(!index.is_english("octave", 3));
    let (total, lower) = index.word_use("octave");
    assert!(total >= 40 && lower * 4 < total, "{total} {lower}");
    assert_eq!(index.word_use("frobnicatorx"), (0, 0));
}

#[test]
fn the_shipped_index_is_whole_and_every_record_parses() {
    let index = verse_compose::index::Index::get();
    assert!(index.len() > 60_000, "{} packages", index.len());
    index.validate().expect("every package record parses");
    let gimp = index.get_package("gimp").expect("gimp is in bookworm");
    assert!(gimp.gui && gimp.program && !gimp.console);
    assert!(index.get_package("frobnicator-desktop").is_none());
}
