//! Word lists of the package resolver ([`crate::resolve`]): which words make a phrase a
//! described need ("a pdf *viewer*"), which say nothing about what is needed ("program"),
//! synonyms that widen a search, and how language libraries are named in Debian.

/// Nouns that make the words before them a described need: "a pdf viewer", "a circuit design
/// suite", "an offline encyclopedia".
pub const NEED_NOUNS: &[&str] = &[
    "viewer",
    "viewers",
    "reader",
    "editor",
    "editors",
    "player",
    "client",
    "manager",
    "program",
    "programs",
    "programme",
    "software",
    "app",
    "apps",
    "application",
    "tool",
    "tools",
    "utility",
    "suite",
    "game",
    "games",
    "simulator",
    "workstation",
    "scanner",
    "analyzer",
    "analyser",
    "recorder",
    "converter",
    "organizer",
    "organiser",
    "tutor",
    "generator",
    "language",
    "encyclopedia",
    "dictionary",
    "messenger",
    "planetarium",
    "calculator",
    "designer",
    "modeller",
    "modeler",
    "emulator",
    "library",
    "notation",
    "publishing",
    "synthesizer",
    "sequencer",
    "mixer",
    "tracker",
    "downloader",
    "uploader",
    "monitor",
    "visualizer",
    "launcher",
    "keyboard",
    "terminal-emulator",
    "ide",
    "debugger",
];

/// Need nouns that carry no meaning for a search ("a music *program*").
pub const GENERIC_NOUNS: &[&str] = &[
    "program",
    "programs",
    "programme",
    "software",
    "app",
    "apps",
    "application",
    "tool",
    "tools",
    "utility",
    "something",
    "thing",
    "stuff",
    "good",
    "simple",
    "nice",
    "decent",
    "lightweight",
    "free",
    "open",
    "source",
    "best",
    "popular",
    "small",
    "some",
    "any",
    "that",
    "which",
    "can",
    "lets",
    "let",
    "me",
    "us",
    "play",
    "against",
    "computer",
    "way",
];

/// Words that, before "to", introduce a need as a verb phrase: "something to edit photos".
pub const NEED_LEADS: &[&str] = &["something", "program", "app", "tool", "software", "way"];

/// Words that say the files are sketchy: a vm, a throwaway env and quarantined downloads.
pub const SKETCHY_WORDS: &[&str] = &[
    "untrusted",
    "untrustworthy",
    "malware",
    "malicious",
    "suspicious",
    "sketchy",
    "dangerous",
    "viruses",
    "hostile",
    "risky",
    "dodgy",
    "shady",
    "phishing",
];

/// Synonyms added (at half weight) to a search: description words differ from people's.
pub const SYNONYMS: &[(&str, &[&str])] = &[
    ("photo", &["image", "picture", "raw"]),
    ("edit", &["manipulat", "retouch", "paint"]),
    ("pictur", &["image", "photo"]),
    ("music", &["audio"]),
    ("messeng", &["instant", "messaging", "chat", "xmpp"]),
    ("chat", &["instant", "messaging", "irc", "xmpp"]),
    ("virus", &["anti"]),
    ("antivirus", &["virus"]),
    ("encyclopedia", &["wikipedia", "offline"]),
    ("ebook", &["e-book", "epub"]),
    ("drawing", &["paint"]),
    ("draw", &["paint"]),
    ("children", &["kids", "child"]),
    ("flashcard", &["memoriz", "spaced"]),
    ("movie", &["video"]),
    ("diagram", &["flowchart", "uml"]),
    ("circuit", &["schematic", "pcb", "electronic"]),
    ("finance", &["accounting", "money"]),
    ("numeric", &["numerical", "matrix", "matlab"]),
    ("torrent", &["bittorrent"]),
];

/// Python libraries whose Debian name is not python3-<pip name>.
pub const PYTHON_ALIASES: &[(&str, &str)] = &[
    ("beautifulsoup", "python3-bs4"),
    ("beautifulsoup4", "python3-bs4"),
    ("bs4", "python3-bs4"),
    ("pillow", "python3-pil"),
    ("pyyaml", "python3-yaml"),
    ("yaml", "python3-yaml"),
    ("scikit-learn", "python3-sklearn"),
    ("sklearn", "python3-sklearn"),
    ("pytorch", "python3-torch"),
    ("torch", "python3-torch"),
    ("opencv", "python3-opencv"),
    ("cv2", "python3-opencv"),
    ("dateutil", "python3-dateutil"),
    ("python-dateutil", "python3-dateutil"),
    ("pyqt", "python3-pyqt5"),
    ("pyqt5", "python3-pyqt5"),
    ("psycopg2", "python3-psycopg2"),
    ("psycopg", "python3-psycopg"),
    ("jinja", "python3-jinja2"),
    ("protobuf", "python3-protobuf"),
    ("pygobject", "python3-gi"),
];

/// A language ecosystem: the words that name it, and how Debian names its libraries.
pub struct Ecosystem {
    pub name: &'static str,
    /// Catalog app names whose choice means the language is present.
    pub apps: &'static [&'static str],
    /// Debian package name patterns for library `{}`, tried in order.
    pub patterns: &'static [&'static str],
    /// How to install a library Debian does not package (a `run` step), if there is a way.
    pub fallback: Option<Fallback>,
}

/// A `run` step installing libraries Debian does not package.
pub struct Fallback {
    /// Packages the step needs.
    pub needs: &'static [&'static str],
    /// The command, with `{}` for the space-separated names.
    pub command: &'static str,
    pub said: &'static str,
}

pub const ECOSYSTEMS: &[Ecosystem] = &[
    Ecosystem {
        name: "python",
        apps: &["python", "jupyter", "data-science"],
        patterns: &["python3-{}"],
        fallback: Some(Fallback {
            needs: &["python3", "python3-venv"],
            command: "python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir {}",
            said: "installed with pip into the venv /opt/venv when the image is built (from PyPI, not Debian: not reviewed by Debian, and the build needs network)",
        }),
    },
    Ecosystem {
        name: "node",
        apps: &["nodejs", "node", "typescript"],
        patterns: &["node-{}"],
        fallback: None,
    },
    Ecosystem {
        name: "rust",
        apps: &["rust"],
        patterns: &["librust-{}-dev"],
        fallback: None,
    },
    Ecosystem {
        name: "ruby",
        apps: &["ruby"],
        patterns: &["ruby-{}"],
        fallback: None,
    },
    Ecosystem {
        name: "perl",
        apps: &["perl"],
        patterns: &["lib{}-perl"],
        fallback: None,
    },
    Ecosystem {
        name: "go",
        apps: &["go"],
        patterns: &["golang-{}-dev", "golang-*-{}-dev"],
        fallback: None,
    },
    Ecosystem {
        name: "r",
        apps: &["r"],
        patterns: &["r-cran-{}"],
        fallback: None,
    },
];
