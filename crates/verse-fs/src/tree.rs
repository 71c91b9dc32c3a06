//! The shape of the tree: every path the filesystem serves parsed into a
//! [`Node`], with its kind, mode and (for directories with fixed contents)
//! its children. What exists under a dynamic directory (envs, snapshots,
//! images...) is asked of the daemon's API by the caller.

/// A file of `envs/NAME/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFile {
    State,
    Ctl,
    Error,
    Spec,
    Console,
    Events,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Cpu,
    Memory,
    Pids,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Cpu,
    Memory,
    Pids,
    Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFile {
    Policy,
    Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFile {
    Layers,
    Size,
    Signatures,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineFile {
    Report,
    State,
    Ctl,
    Error,
}

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Root,
    Status,
    Events,
    Envs,
    Env(String),
    EnvFile(String, EnvFile),
    Limits(String),
    Limit(String, Limit),
    Stats(String),
    Stat(String, Stat),
    Net(String),
    NetFile(String, NetFile),
    Snapshots(String),
    Snapshot(String, String),
    /// `envs/NAME/files/...`: the env's own file at this absolute path
    /// (`/` for `files` itself). What it is (file, dir, symlink) only the
    /// daemon knows.
    EnvPath(String, String),
    Images,
    Image(String),
    ImageFile(String, ImageFile),
    Generations,
    Current,
    Generation(u64),
    GenerationSpec(u64),
    Quarantine,
    QuarantineItem(String),
    QuarantineFile(String, QuarantineFile),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

const ENV_FILES: &[(&str, EnvFile)] = &[
    ("state", EnvFile::State),
    ("ctl", EnvFile::Ctl),
    ("error", EnvFile::Error),
    ("spec.toml", EnvFile::Spec),
    ("console", EnvFile::Console),
    ("events", EnvFile::Events),
];
const LIMITS: &[(&str, Limit)] = &[
    ("cpu", Limit::Cpu),
    ("memory", Limit::Memory),
    ("pids", Limit::Pids),
];
const STATS: &[(&str, Stat)] = &[
    ("cpu", Stat::Cpu),
    ("memory", Stat::Memory),
    ("pids", Stat::Pids),
    ("net", Stat::Net),
];
const NET_FILES: &[(&str, NetFile)] =
    &[("policy", NetFile::Policy), ("counters", NetFile::Counters)];
const IMAGE_FILES: &[(&str, ImageFile)] = &[
    ("layers", ImageFile::Layers),
    ("size", ImageFile::Size),
    ("signatures", ImageFile::Signatures),
];
const QUARANTINE_FILES: &[(&str, QuarantineFile)] = &[
    ("report", QuarantineFile::Report),
    ("state", QuarantineFile::State),
    ("ctl", QuarantineFile::Ctl),
    ("error", QuarantineFile::Error),
];

fn find<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Names that can never be an env, image, snapshot or quarantine id.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

impl Node {
    /// The node at `path` (components below the mount, `""` for the root),
    /// if the tree has such a place. Whether a named env, image... exists is
    /// not checked here.
    pub fn parse(path: &str) -> Option<Node> {
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        if !parts.iter().all(|p| plain(p)) {
            return None;
        }
        let s = |v: &str| v.to_string();
        Some(match parts.as_slice() {
            [] => Node::Root,
            [".status"] => Node::Status,
            ["events"] => Node::Events,
            ["envs"] => Node::Envs,
            ["envs", env] => Node::Env(s(env)),
            ["envs", env, "limits"] => Node::Limits(s(env)),
            ["envs", env, "limits", l] => Node::Limit(s(env), find(LIMITS, l)?),
            ["envs", env, "stats"] => Node::Stats(s(env)),
            ["envs", env, "stats", st] => Node::Stat(s(env), find(STATS, st)?),
            ["envs", env, "net"] => Node::Net(s(env)),
            ["envs", env, "net", n] => Node::NetFile(s(env), find(NET_FILES, n)?),
            ["envs", env, "snapshots"] => Node::Snapshots(s(env)),
            ["envs", env, "snapshots", id] => Node::Snapshot(s(env), s(id)),
            ["envs", env, "files", rest @ ..] => {
                Node::EnvPath(s(env), format!("/{}", rest.join("/")))
            }
            ["envs", env, f] => Node::EnvFile(s(env), find(ENV_FILES, f)?),
            ["images"] => Node::Images,
            ["images", image] => Node::Image(s(image)),
            ["images", image, f] => Node::ImageFile(s(image), find(IMAGE_FILES, f)?),
            ["generations"] => Node::Generations,
            ["generations", "current"] => Node::Current,
            ["generations", n] => Node::Generation(n.parse().ok()?),
            ["generations", n, "spec.toml"] => Node::GenerationSpec(n.parse().ok()?),
            ["quarantine"] => Node::Quarantine,
            ["quarantine", id] => Node::QuarantineItem(s(id)),
            ["quarantine", id, f] => Node::QuarantineFile(s(id), find(QUARANTINE_FILES, f)?),
            _ => return None,
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Node::Root
            | Node::Envs
            | Node::Env(_)
            | Node::Limits(_)
            | Node::Stats(_)
            | Node::Net(_)
            | Node::Snapshots(_)
            | Node::Images
            | Node::Image(_)
            | Node::Generations
            | Node::Generation(_)
            | Node::Quarantine
            | Node::QuarantineItem(_) => Kind::Dir,
            Node::Current => Kind::Symlink,
            Node::EnvPath(_, path) if path == "/" => Kind::Dir,
            _ => Kind::File,
        }
    }

    /// Permission bits shown by `ls -l`: what the tree lets one do, before
    /// the daemon's own checks of the mount's identity.
    pub fn perm(&self) -> u16 {
        match self {
            Node::Snapshots(_) => 0o755,
            _ if self.kind() != Kind::File => 0o555,
            Node::EnvFile(_, EnvFile::Ctl) | Node::QuarantineFile(_, QuarantineFile::Ctl) => 0o200,
            Node::Limit(..) => 0o644,
            _ => 0o444,
        }
    }

    /// Whether writing to it is an act (a command or a new value).
    pub fn writable(&self) -> bool {
        matches!(
            self,
            Node::EnvFile(_, EnvFile::Ctl)
                | Node::Limit(..)
                | Node::QuarantineFile(_, QuarantineFile::Ctl)
        )
    }

    /// The env this node belongs to, if any.
    pub fn env(&self) -> Option<&str> {
        match self {
            Node::Env(e)
            | Node::EnvFile(e, _)
            | Node::Limits(e)
            | Node::Limit(e, _)
            | Node::Stats(e)
            | Node::Stat(e, _)
            | Node::Net(e)
            | Node::NetFile(e, _)
            | Node::Snapshots(e)
            | Node::Snapshot(e, _)
            | Node::EnvPath(e, _) => Some(e),
            _ => None,
        }
    }

    /// Children of a directory whose contents are fixed by the tree.
    pub fn fixed_children(&self) -> Option<Vec<(&'static str, Kind)>> {
        fn files<T>(t: &[(&'static str, T)]) -> Vec<(&'static str, Kind)> {
            t.iter().map(|(n, _)| (*n, Kind::File)).collect()
        }
        Some(match self {
            Node::Root => vec![
                (".status", Kind::File),
                ("events", Kind::File),
                ("envs", Kind::Dir),
                ("images", Kind::Dir),
                ("generations", Kind::Dir),
                ("quarantine", Kind::Dir),
            ],
            Node::Env(_) => {
                let mut all = files(ENV_FILES);
                all.extend([
                    ("limits", Kind::Dir),
                    ("stats", Kind::Dir),
                    ("net", Kind::Dir),
                    ("snapshots", Kind::Dir),
                    ("files", Kind::Dir),
                ]);
                all
            }
            Node::Limits(_) => files(LIMITS),
            Node::Stats(_) => files(STATS),
            Node::Net(_) => files(NET_FILES),
            Node::Image(_) => files(IMAGE_FILES),
            Node::Generation(_) => vec![("spec.toml", Kind::File)],
            Node::QuarantineItem(_) => files(QUARANTINE_FILES),
            _ => return None,
        })
    }
}

/// What a symlink at `link` (a path in the env) shows as its target in
/// `files/`: a path relative to the link's own directory that stays inside
/// `files/`, so that following it (the kernel does, on the host) reaches the
/// env's file, never the host's. `..` stops at the env's root, as in the
/// env; the resolution is by name (a `..` after a symlink goes back to the
/// symlink's directory, not its target's parent).
pub fn contained_target(link: &str, target: &str) -> String {
    let mut dir: Vec<&str> = link.split('/').filter(|c| !c.is_empty()).collect();
    dir.pop();
    let depth = dir.len();
    let mut resolved = if target.starts_with('/') {
        Vec::new()
    } else {
        dir
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                resolved.pop();
            }
            name => resolved.push(name),
        }
    }
    let mut out: Vec<&str> = vec![".."; depth];
    out.extend(resolved);
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_stay_inside_the_env() {
        assert_eq!(
            contained_target("/etc/link", "/etc/shadow"),
            "../etc/shadow"
        );
        assert_eq!(contained_target("/link", "/etc/shadow"), "etc/shadow");
        assert_eq!(
            contained_target("/a/b/link", "../../../../../etc/passwd"),
            "../../etc/passwd"
        );
        assert_eq!(contained_target("/a/link", "b/./c"), "../a/b/c");
        assert_eq!(contained_target("/link", "/"), ".");
        assert_eq!(
            Node::parse("envs/web/files/etc/hostname"),
            Some(Node::EnvPath("web".into(), "/etc/hostname".into()))
        );
        assert_eq!(
            Node::parse("envs/web/files"),
            Some(Node::EnvPath("web".into(), "/".into()))
        );
    }

    #[test]
    fn paths_parse_to_their_nodes() {
        assert_eq!(Node::parse(""), Some(Node::Root));
        assert_eq!(
            Node::parse("envs/web/state"),
            Some(Node::EnvFile("web".into(), EnvFile::State))
        );
        assert_eq!(
            Node::parse("envs/web/limits/memory"),
            Some(Node::Limit("web".into(), Limit::Memory))
        );
        assert_eq!(
            Node::parse("envs/web/snapshots/s1"),
            Some(Node::Snapshot("web".into(), "s1".into()))
        );
        assert_eq!(Node::parse("generations/current"), Some(Node::Current));
        assert_eq!(
            Node::parse("generations/3/spec.toml"),
            Some(Node::GenerationSpec(3))
        );
        assert_eq!(Node::parse("envs/web/nonsense"), None);
        assert_eq!(Node::parse("generations/x"), None);
        assert_eq!(Node::parse("envs/../etc"), None);
    }

    #[test]
    fn only_command_and_limit_files_take_writes() {
        for path in ["envs/a/ctl", "envs/a/limits/cpu", "quarantine/q1/ctl"] {
            assert!(Node::parse(path).unwrap().writable(), "{path}");
        }
        for path in ["envs/a/state", "envs/a/console", "events", "images/x/size"] {
            assert!(!Node::parse(path).unwrap().writable(), "{path}");
        }
    }
}
