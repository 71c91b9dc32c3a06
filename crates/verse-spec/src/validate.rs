//! Walks the span-carrying TOML document and builds a [`Spec`], collecting every problem.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::caps::{Feature, Support};
use crate::error::Diagnostics;
use crate::model::{
    Accel, Backend, EnvSpec, Health, Network, Reach, Restart, SnapshotSchedule, Spec, UserSpec,
    Volume,
};
use crate::net::{parse_destination, parse_proxy};
use crate::units::{self, SIZE_UNITS, UnitError};

type Item<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;

mod desktop;
mod guard;
mod image;

pub use desktop::{DESKTOP_KEYS, LABEL_KEYS};
pub use image::{IMAGE_KEYS, TRUST_KEYS};

/// Keys allowed at the top level of `verse.toml`.
pub const TOP_KEYS: &[&str] = &["env", "image", "trust", "copy"];

/// Keys allowed in `[env.NAME]`.
pub const ENV_KEYS: &[&str] = &[
    "image",
    "backend",
    "accel",
    "cpu",
    "memory",
    "pids",
    "network",
    "ephemeral",
    "command",
    "env",
    "hostname",
    "volumes",
    "workdir",
    "user",
    "stop_timeout",
    "reach",
    "router",
    "restart",
    "health",
    "snapshots",
    "desktop",
    "autostart",
    "label",
    "clipboard",
    "downloads",
    "hold",
    "release_to",
    "log_max",
    "disk",
    "shm",
];

/// Top-level keys that are planned but not implemented, with what to do meanwhile.
const PLANNED_TOP_KEYS: &[(&str, &str)] = &[];

/// Env keys that are planned but not implemented.
const PLANNED_ENV_KEYS: &[&str] = &["shared", "extends"];

/// Largest CPU limit accepted, in cores.
pub const MAX_CPU: f64 = 1024.0;
/// Smallest memory limit accepted, in bytes (4 MiB).
pub const MIN_MEMORY: u64 = 4 << 20;
/// Smallest disk accepted, in bytes (16 MiB: an ext4 filesystem with its journal and
/// inode tables, and room left for the env's writes).
pub const MIN_DISK: u64 = 16 << 20;
/// Largest pids limit accepted (the kernel's PID_MAX_LIMIT).
pub const MAX_PIDS: u64 = 4 << 20;
/// Largest stop timeout accepted, in milliseconds (one hour).
pub const MAX_STOP_TIMEOUT_MS: u64 = 3_600_000;
/// Largest host name accepted, in bytes (the kernel's HOST_NAME_MAX).
pub const MAX_HOSTNAME: usize = 64;

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&word_lower, c), *c))
        .filter(|(d, _)| *d <= 2 && *d < word.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// An integer value as i128 (TOML integers are 64-bit signed, so this never overflows).
fn integer(value: &DeValue<'_>) -> Option<i128> {
    match value {
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// Normalise an absolute path: collapse `//` and `.`; reject relative paths, `..` and NUL.
pub(crate) fn normalise_absolute(path: &str) -> Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute path (starting with /)");
    }
    if path.contains('\0') {
        return Err("must not contain a NUL character");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain `..`"),
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

pub(crate) fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 1123 host name: dot-separated labels of 1-63 letters, digits and hyphens, not starting
/// or ending with a hyphen; at most [`MAX_HOSTNAME`] bytes in all.
fn hostname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_HOSTNAME {
        return Some(format!(
            "is {} bytes; at most {MAX_HOSTNAME} are allowed",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some(
                "has an empty label (two dots in a row, or a leading/trailing dot)".into(),
            );
        }
        if label.len() > 63 {
            return Some(format!("label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "contains `{c}`; only letters, digits, '-' and '.' between labels are allowed"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label `{label}` starts or ends with '-'"));
        }
    }
    None
}

struct Validator<'s> {
    source: &'s str,
    diags: Diagnostics<'s>,
    /// Names other envs refer to, checked once every env is known: (env, target, what, offset).
    refs: Vec<(String, String, RefKind, usize)>,
    /// Every `[env.NAME]` in the file, valid or not: a reference to an env
    /// that has errors of its own is not also "undeclared".
    declared: std::collections::BTreeSet<String>,
    /// Where each image's `base` value starts, for cycle diagnostics.
    base_spans: BTreeMap<String, usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefKind {
    Via,
    Reach,
    ReleaseTo,
    Copy,
}

impl<'s> Validator<'s> {
    /// The value's source text, shortened for messages.
    fn shown(&self, item: &Item<'_>) -> String {
        let text = self.source.get(item.span()).unwrap_or("");
        let text = text.trim();
        let first_line = text.lines().next().unwrap_or("");
        if first_line.chars().count() > 40 || first_line.len() != text.len() {
            let cut: String = first_line.chars().take(37).collect();
            format!("{cut}...")
        } else {
            first_line.to_string()
        }
    }

    /// Report `key = <value>: problem` at the value.
    fn value_error(&mut self, key: &str, item: &Item<'_>, problem: impl AsRef<str>) {
        let message = format!("{key} = {}: {}", self.shown(item), problem.as_ref());
        self.diags.error(item.span().start, message);
    }

    fn type_error(&mut self, key: &str, item: &Item<'_>, expected: &str) {
        let found = describe(item.get_ref());
        self.value_error(key, item, format!("expected {expected}, found {found}"));
    }

    fn unknown_key(&mut self, key: &Key<'_>, place: &str, allowed: &[&str], planned: Option<&str>) {
        let mut message = if let Some(note) = planned {
            format!("`{}` in {place}: {note}", key.get_ref())
        } else {
            format!("unknown key `{}` in {place}", key.get_ref())
        };
        if planned.is_none() {
            if let Some(best) = closest(key.get_ref(), allowed) {
                message.push_str(&format!("; did you mean `{best}`?"));
                message.push_str(&format!(" allowed: {}", allowed.join(", ")));
            } else {
                message.push_str(&format!("; allowed: {}", allowed.join(", ")));
            }
        }
        self.diags.error(key.span().start, message);
    }

    fn spec(&mut self, root: &DeTable<'_>) -> Spec {
        let mut spec = Spec::default();
        for (key, item) in root.iter() {
            match key.get_ref().as_ref() {
                "env" => match item.get_ref() {
                    DeValue::Table(envs) => {
                        for (name, env) in envs.iter() {
                            self.declared.insert(name.get_ref().to_string());
                            if let Some(env_spec) = self.env(name, env) {
                                spec.envs.insert(name.get_ref().to_string(), env_spec);
                            }
                        }
                    }
                    other => {
                        let found = describe(other);
                        self.diags.error(
                            item.span().start,
                            format!(
                                "env = {}: expected a table of environments ([env.NAME]), found {found}",
                                self.shown(item)
                            ),
                        );
                    }
                },
                "image" => self.images(item, &mut spec),
                "trust" => spec.trust = self.trust(item),
                "copy" => spec.copy = self.copy_table(item),
                other => {
                    let planned = PLANNED_TOP_KEYS
                        .iter()
                        .find(|(k, _)| *k == other)
                        .map(|(_, note)| *note);
                    self.unknown_key(key, "the top level", TOP_KEYS, planned);
                }
            }
        }
        self.check_base_cycles(&spec);
        self.check_refs(&spec);
        spec
    }

    /// `via` must name a router env, chains of `via` must end, `reach` must name an env.
    fn check_refs(&mut self, spec: &Spec) {
        for (env, target, kind, offset) in std::mem::take(&mut self.refs) {
            let what = match kind {
                RefKind::Via => "network.via",
                RefKind::Reach => "reach",
                RefKind::ReleaseTo => "release_to",
                RefKind::Copy => "[copy]",
            };
            let Some(other) = spec.envs.get(&target) else {
                if self.declared.contains(&target) {
                    // Declared with errors, which are reported where they are.
                    continue;
                }
                let names: Vec<&str> = spec.envs.keys().map(String::as_str).collect();
                let hint = closest(&target, &names)
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                let who = if kind == RefKind::Copy {
                    String::new()
                } else {
                    format!("env `{env}`: ")
                };
                self.diags.error(
                    offset,
                    format!(
                        "{who}{what} names env `{target}`, which the spec does not declare{hint}"
                    ),
                );
                continue;
            };
            if kind == RefKind::ReleaseTo || kind == RefKind::Copy {
                if let Support::Refused(why) = other.backend.takes(Feature::Files) {
                    self.diags.error(
                        offset,
                        format!(
                            "{what} names `{target}`, a {} env; {why}",
                            other.backend.as_str()
                        ),
                    );
                }
                continue;
            }
            if kind == RefKind::Reach {
                if target == env {
                    self.diags.error(offset, format!("env `{env}`: reach names the env itself; an env always reaches its own services over lo"));
                } else if other.network == Network::None {
                    self.diags.error(offset, format!("env `{env}`: reach names `{target}`, whose network is \"none\" (loopback only); give it a network such as \"nat\""));
                }
                continue;
            }
            if !other.router {
                self.diags.error(
                    offset,
                    format!("env `{env}`: network.via = \"{target}\", but `{target}` is not a router; add `router = true` to [env.{target}]"),
                );
                continue;
            }
            // Follow the chain; a name seen twice is a loop.
            let mut chain = vec![env.clone()];
            let mut next = Some(target.clone());
            while let Some(hop) = next {
                if chain.contains(&hop) {
                    chain.push(hop);
                    self.diags.error(
                        offset,
                        format!("env `{env}`: network.via makes a loop: {}; a chain must end at a router with its own way out", chain.join(" -> ")),
                    );
                    break;
                }
                chain.push(hop.clone());
                next = match spec.envs.get(&hop).map(|e| &e.network) {
                    Some(Network::Via(n)) => Some(n.clone()),
                    _ => None,
                };
            }
        }
    }

    /// Checks a `[KIND.NAME]` header: the name (reported, `false` when bad) and that the value
    /// is a table (`None` when not, reported).
    fn named_table<'a, 'i>(
        &mut self,
        kind: &str,
        noun: &str,
        name_key: &Key<'_>,
        item: &'a Item<'i>,
    ) -> (bool, Option<&'a DeTable<'i>>) {
        let name = name_key.get_ref().as_ref();
        let ok = is_env_name(name);
        if !ok {
            self.diags.error(
                name_key.span().start,
                format!(
                    "invalid {noun} name `{name}`: use 1-63 characters from a-z, 0-9 and '-', starting with a letter or digit"
                ),
            );
        }
        match item.get_ref() {
            DeValue::Table(t) => (ok, Some(t)),
            other => {
                let found = describe(other);
                self.diags.error(
                    item.span().start,
                    format!(
                        "{kind}.{name} = {}: expected a table of settings (write [{kind}.{name}] and keys under it), found {found}",
                        self.shown(item)
                    ),
                );
                (ok, None)
            }
        }
    }

    fn env(&mut self, name_key: &Key<'_>, item: &Item<'_>) -> Option<EnvSpec> {
        let name = name_key.get_ref().as_ref();
        let (ok, table) = self.named_table("env", "environment", name_key, item);
        let table = table?;
        let place = format!("[env.{name}]");

        let mut spec = EnvSpec::new(name, "");
        let mut image = None;
        let mut downloads = guard::DownloadKeys::default();
        let errors_before = self.diags.len();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            match k {
                "image" => image = self.image(value),
                "backend" => {
                    if let Some(b) = self.backend(value) {
                        spec.backend = b;
                    }
                }
                "accel" => {
                    if let Some(a) = self.accel(value) {
                        spec.accel = a;
                    }
                }
                "cpu" => spec.cpu = self.cpu(value),
                "memory" => spec.memory = self.memory(value),
                "log_max" => {
                    spec.log_max = self.size(k, value, crate::model::MIN_LOG_MAX, "128KiB")
                }
                "disk" => spec.disk = self.disk(value),
                "shm" => spec.shm = self.size(k, value, 1 << 20, "1MiB"),
                "pids" => spec.pids = self.pids(value),
                "network" => {
                    if let Some(n) = self.network(name, value) {
                        spec.network = n;
                    }
                }
                "reach" => spec.reach = self.reach(name, value),
                "router" => match value.get_ref() {
                    DeValue::Boolean(b) => spec.router = *b,
                    _ => self.type_error(k, value, "true or false"),
                },
                "ephemeral" => match value.get_ref() {
                    DeValue::Boolean(b) => spec.ephemeral = *b,
                    _ => self.type_error(k, value, "true or false"),
                },
                "command" => spec.command = self.command(value),
                "env" => spec.env = self.env_vars(&place, value),
                "hostname" => {
                    if let Some(h) = self.hostname(value) {
                        spec.hostname = h;
                    }
                }
                "volumes" => spec.volumes = self.volumes(&place, value),
                "workdir" => spec.workdir = self.workdir(value),
                "user" => spec.user = self.user(value),
                "stop_timeout" => {
                    if let Some(ms) = self.stop_timeout(value) {
                        spec.stop_timeout_ms = ms;
                    }
                }
                "restart" => {
                    if let Some(r) = self.restart(value) {
                        spec.restart = r;
                    }
                }
                "health" => spec.health = self.health(value),
                "snapshots" => spec.snapshots = self.snapshot_schedule(value),
                "desktop" => spec.desktop = self.desktop(value),
                "autostart" => spec.autostart = self.autostart(value),
                "label" => spec.label = self.label(value),
                "clipboard" => {
                    if let Some(c) = self.clipboard(value) {
                        spec.clipboard = c;
                    }
                }
                "downloads" | "hold" | "release_to" => {
                    self.download_key(name, k, value, &mut downloads)
                }
                other => {
                    let planned = PLANNED_ENV_KEYS
                        .contains(&other)
                        .then_some("not supported yet (planned)");
                    self.unknown_key(key, &place, ENV_KEYS, planned);
                }
            }
        }
        if image.is_none() && !table.contains_key("image") {
            self.diags.error(
                item.span().start,
                format!("{place}: missing required key `image`; add e.g. image = \"busybox\""),
            );
        }
        spec.downloads = self.downloads(&spec, downloads);
        self.backend_limits(&spec, table);
        spec.image = image?;
        (ok && self.diags.len() == errors_before).then_some(spec)
    }

    /// Keys a backend cannot honour yet: refused here, at the key, rather than
    /// by a start that fails after `verse apply` has recorded the generation.
    fn backend_limits(&mut self, spec: &EnvSpec, table: &DeTable<'_>) {
        // (A `network` that failed to parse left the default; its error is enough.)
        let network_unset_or_none = table
            .get("network")
            .is_none_or(|v| matches!(v.get_ref(), DeValue::String(s) if s == "none"));
        let takes = |feature| spec.backend.takes(feature);
        let mut refuse = |key: &str, support: Support| {
            if let (Some(item), Support::Refused(why)) = (table.get(key), support) {
                self.diags.error(item.span().start, format!("{key}: {why}"));
            }
        };
        if !spec.volumes.is_empty() {
            refuse("volumes", takes(Feature::Volumes));
        }
        if spec.shm.is_some() {
            refuse("shm", takes(Feature::Shm));
        }
        if spec.desktop.is_some() {
            refuse("desktop", takes(Feature::Desktop));
        }
        if !spec.accel.is_auto() {
            refuse("accel", takes(Feature::Accel));
        }
        if spec.router && network_unset_or_none {
            refuse(
                "router",
                Support::Refused(
                    "a router needs a way out itself; give it network = \"nat\", an allow list, or via another router",
                ),
            );
        }
        if spec.router {
            refuse("router", takes(Feature::Router));
        }
    }

    fn string<'a>(&mut self, key: &str, item: &'a Item<'_>, expected: &str) -> Option<&'a str> {
        match item.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(key, item, expected);
                None
            }
        }
    }

    fn image(&mut self, item: &Item<'_>) -> Option<String> {
        let s = self.string(
            "image",
            item,
            "the name of an image in the store (e.g. \"busybox\")",
        )?;
        if s.is_empty() {
            self.value_error(
                "image",
                item,
                "must name an image in the store, e.g. \"busybox\"",
            );
            return None;
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.value_error(
                "image",
                item,
                "image names contain no spaces or control characters",
            );
            return None;
        }
        Some(s.to_string())
    }

    fn backend(&mut self, item: &Item<'_>) -> Option<Backend> {
        // The words are `Backend::as_str`'s: one place names each backend.
        let allowed = "\"container\", \"vm\" or \"gvisor\"";
        let s = self.string("backend", item, allowed)?;
        if let Some(backend) = Backend::ALL.into_iter().find(|b| b.as_str() == s) {
            return Some(backend);
        }
        let words = Backend::ALL.map(|b| b.as_str());
        let hint = closest(s, &words)
            .map(|c| format!("did you mean \"{c}\"? "))
            .unwrap_or_default();
        self.value_error(
            "backend",
            item,
            format!("unknown backend; {hint}allowed: {allowed}"),
        );
        None
    }

    fn accel(&mut self, item: &Item<'_>) -> Option<Accel> {
        let allowed = "\"auto\", \"kvm\" or \"tcg\"";
        let s = self.string("accel", item, allowed)?;
        match s {
            "auto" => Some(Accel::Auto),
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            other => {
                let hint = closest(other, &["auto", "kvm", "tcg"])
                    .map(|c| format!("did you mean \"{c}\"? "))
                    .unwrap_or_default();
                self.value_error(
                    "accel",
                    item,
                    format!("unknown accelerator; {hint}allowed: {allowed}"),
                );
                None
            }
        }
    }

    fn cpu(&mut self, item: &Item<'_>) -> Option<f64> {
        let cores = match item.get_ref() {
            DeValue::Integer(_) => integer(item.get_ref()).map(|i| i as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => {
                self.type_error("cpu", item, "a number of cores (e.g. 2 or 1.5)");
                return None;
            }
        };
        match cores {
            Some(c) if c.is_finite() && c > 0.0 && c <= MAX_CPU => Some(c),
            _ => {
                self.value_error(
                    "cpu",
                    item,
                    format!("must be more than 0 and at most {MAX_CPU} cores (fractions like 0.5 are allowed)"),
                );
                None
            }
        }
    }

    fn memory(&mut self, item: &Item<'_>) -> Option<u64> {
        self.size("memory", item, MIN_MEMORY, "4MiB")
    }

    fn disk(&mut self, item: &Item<'_>) -> Option<u64> {
        self.size("disk", item, MIN_DISK, "16MiB")
    }

    /// A size in bytes of at least `min` (`min_text` as written in a spec).
    fn size(&mut self, key: &str, item: &Item<'_>, min: u64, min_text: &str) -> Option<u64> {
        let not_a_size =
            format!("not a size; write e.g. \"512MiB\" or \"2GiB\" (units: {SIZE_UNITS})");
        let bytes = match item.get_ref() {
            DeValue::Integer(_) => match integer(item.get_ref()) {
                Some(i) if i >= 0 => i as u64,
                _ => {
                    self.value_error(
                        key,
                        item,
                        "must not be negative; write bytes or a size like \"512MiB\"",
                    );
                    return None;
                }
            },
            DeValue::String(s) => match units::parse_size(s) {
                Ok(b) => b,
                Err(UnitError::TooLarge) => {
                    self.value_error(key, item, "too large to fit in 64 bits");
                    return None;
                }
                Err(_) => {
                    self.value_error(key, item, not_a_size);
                    return None;
                }
            },
            DeValue::Float(_) => {
                self.value_error(
                    key,
                    item,
                    "write whole bytes or a size string such as \"1.5GiB\"",
                );
                return None;
            }
            _ => {
                self.type_error(key, item, "a size such as \"512MiB\" or a number of bytes");
                return None;
            }
        };
        if bytes < min {
            self.value_error(
                key,
                item,
                format!("is {bytes} bytes; at least \"{min_text}\" ({min} bytes) is needed"),
            );
            return None;
        }
        Some(bytes)
    }

    fn pids(&mut self, item: &Item<'_>) -> Option<u64> {
        let Some(n) = integer(item.get_ref()) else {
            self.type_error("pids", item, "a whole number of processes (e.g. 256)");
            return None;
        };
        if n < 1 || n > MAX_PIDS as i128 {
            self.value_error("pids", item, format!("must be between 1 and {MAX_PIDS}"));
            return None;
        }
        Some(n as u64)
    }

    fn network(&mut self, env: &str, item: &Item<'_>) -> Option<Network> {
        const MODES: &str = "allowed: \"none\" (loopback only), \"nat\", { allow = [\"host:port\", ...] }, { proxy = \"socks5://HOST:PORT\" }, { via = \"ROUTER-ENV\" }";
        match item.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "none" => Some(Network::None),
                "nat" => Some(Network::Nat),
                other => {
                    let hint = closest(other, &["none", "nat"])
                        .map(|c| format!("did you mean \"{c}\"? "))
                        .unwrap_or_default();
                    self.value_error(
                        "network",
                        item,
                        format!("unknown network mode; {hint}{MODES}"),
                    );
                    None
                }
            },
            DeValue::Table(table) => {
                let keys: Vec<&str> = table.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
                if keys.len() != 1 {
                    self.value_error(
                        "network",
                        item,
                        format!("a policy table has exactly one of allow, proxy, via; {MODES}"),
                    );
                    return None;
                }
                let (key, value) = table.iter().next().expect("one key");
                match key.get_ref().as_ref() {
                    "allow" => {
                        let DeValue::Array(entries) = value.get_ref() else {
                            self.type_error(
                                "network.allow",
                                value,
                                "an array of \"host:port\" strings",
                            );
                            return None;
                        };
                        let mut allow = Vec::new();
                        for (i, entry) in entries.iter().enumerate() {
                            let key = format!("network.allow[{i}]");
                            let Some(text) = self.string(&key, entry, "a \"host:port\" string")
                            else {
                                continue;
                            };
                            match parse_destination(text) {
                                Ok(_) => allow.push(text.to_string()),
                                Err(problem) => self.value_error(&key, entry, problem),
                            }
                        }
                        (allow.len() == entries.len()).then_some(Network::Allow(allow))
                    }
                    "proxy" => {
                        let text = self.string(
                            "network.proxy",
                            value,
                            "a URL such as \"socks5://10.0.0.1:1080\"",
                        )?;
                        match parse_proxy(text) {
                            Ok(_) => Some(Network::Proxy(text.to_string())),
                            Err(problem) => {
                                self.value_error("network.proxy", value, problem);
                                None
                            }
                        }
                    }
                    "via" => {
                        let text = self.string("network.via", value, "the name of a router env")?;
                        if text == env {
                            self.value_error(
                                "network.via",
                                value,
                                "an env cannot route through itself",
                            );
                            return None;
                        }
                        self.refs.push((
                            env.to_string(),
                            text.to_string(),
                            RefKind::Via,
                            value.span().start,
                        ));
                        Some(Network::Via(text.to_string()))
                    }
                    other => {
                        let hint = closest(other, &["allow", "proxy", "via"])
                            .map(|c| format!("did you mean `{c}`? "))
                            .unwrap_or_default();
                        self.diags.error(
                            key.span().start,
                            format!("unknown network policy `{other}`; {hint}{MODES}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.type_error("network", item, "\"none\", \"nat\" or a policy table");
                None
            }
        }
    }

    fn reach(&mut self, env: &str, item: &Item<'_>) -> Vec<Reach> {
        let DeValue::Array(entries) = item.get_ref() else {
            self.type_error("reach", item, "an array of \"env:port\" strings");
            return Vec::new();
        };
        let mut reach = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let key = format!("reach[{i}]");
            let Some(text) = self.string(&key, entry, "an \"env:port\" string") else {
                continue;
            };
            let parsed = text.split_once(':').and_then(|(name, port)| {
                let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
                is_env_name(name).then(|| (name.to_string(), port))
            });
            match parsed {
                Some((name, port)) => {
                    self.refs.push((
                        env.to_string(),
                        name.clone(),
                        RefKind::Reach,
                        entry.span().start,
                    ));
                    reach.push(Reach { env: name, port });
                }
                None => self.value_error(&key, entry, "write \"other-env:PORT\" (port 1-65535)"),
            }
        }
        reach
    }

    fn command(&mut self, item: &Item<'_>) -> Option<Vec<String>> {
        match item.get_ref() {
            DeValue::String(s) => {
                if s.trim().is_empty() {
                    self.value_error(
                        "command",
                        item,
                        "must not be empty; leave `command` out to get the default shell",
                    );
                    return None;
                }
                Some(vec!["/bin/sh".into(), "-c".into(), s.to_string()])
            }
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.value_error(
                        "command",
                        item,
                        "must not be empty; leave `command` out to get the default shell",
                    );
                    return None;
                }
                let mut argv = Vec::with_capacity(items.len());
                for (i, arg) in items.iter().enumerate() {
                    match arg.get_ref() {
                        DeValue::String(s) if s.contains('\0') => self.value_error(
                            &format!("command[{i}]"),
                            arg,
                            "must not contain a NUL character",
                        ),
                        DeValue::String(s) if i == 0 && s.is_empty() => self.value_error(
                            "command[0]",
                            arg,
                            "the program to run must not be empty",
                        ),
                        DeValue::String(s) => argv.push(s.to_string()),
                        _ => self.type_error(
                            &format!("command[{i}]"),
                            arg,
                            "a string (quote every argument)",
                        ),
                    }
                }
                (argv.len() == items.len()).then_some(argv)
            }
            _ => {
                self.type_error(
                    "command",
                    item,
                    "an array of strings (argv) or a string run with /bin/sh -c",
                );
                None
            }
        }
    }

    fn env_vars(&mut self, place: &str, item: &Item<'_>) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "env",
                item,
                "a table of variables, e.g. { LANG = \"C.UTF-8\" }",
            );
            return vars;
        };
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if !is_env_var_name(name) {
                self.diags.error(
                    key.span().start,
                    format!(
                        "invalid variable name `{name}` in env of {place}: use letters, digits and '_', not starting with a digit"
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(s) if s.contains('\0') => {
                    self.value_error(name, value, "must not contain a NUL character")
                }
                DeValue::String(s) => {
                    vars.insert(name.to_string(), s.to_string());
                }
                _ => self.type_error(name, value, "a string (quote the value)"),
            }
        }
        vars
    }

    fn hostname(&mut self, item: &Item<'_>) -> Option<String> {
        let s = self.string("hostname", item, "a host name such as \"novel\"")?;
        if let Some(problem) = hostname_problem(s) {
            self.value_error(
                "hostname",
                item,
                format!("not a valid host name (RFC 1123): {problem}"),
            );
            return None;
        }
        Some(s.to_string())
    }

    fn volumes(&mut self, place: &str, item: &Item<'_>) -> Vec<Volume> {
        let mut volumes: BTreeMap<String, (Volume, String)> = BTreeMap::new();
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "volumes",
                item,
                "a table of env path = host dir, e.g. { \"/data\" = \"/srv/data\" }",
            );
            return Vec::new();
        };
        for (key, value) in table.iter() {
            let raw_path = key.get_ref().as_ref();
            let path = match normalise_absolute(raw_path) {
                Ok(p) => p,
                Err(problem) => {
                    self.diags.error(
                        key.span().start,
                        format!("volume path `{raw_path}` in {place}: {problem}"),
                    );
                    continue;
                }
            };
            let forbidden = ["/proc", "/sys", "/dev"]
                .iter()
                .find(|f| path == **f || path.starts_with(&format!("{f}/")));
            if path == "/" || forbidden.is_some() {
                self.diags.error(
                    key.span().start,
                    format!(
                        "volume path `{raw_path}` in {place}: cannot mount over /, /proc, /sys, /dev or below them; pick another directory such as /data"
                    ),
                );
                continue;
            }
            let shown_key = format!("{:?}", raw_path);
            let Some(spec) = self.string(
                &shown_key,
                value,
                "a host directory such as \"/srv/data\" or \"/srv/data:ro\"",
            ) else {
                continue;
            };
            let Some((host, readonly)) = self.volume_source(&shown_key, value, spec) else {
                continue;
            };
            if let Some((_, other)) = volumes.get(&path) {
                let other = other.clone();
                self.diags.error(
                    key.span().start,
                    format!("volume path `{raw_path}` in {place} is the same directory as `{other}`, given earlier; mount each path once"),
                );
                continue;
            }
            let volume = Volume {
                path: path.clone(),
                host,
                readonly,
            };
            volumes.insert(path, (volume, raw_path.to_string()));
        }
        volumes.into_values().map(|(v, _)| v).collect()
    }

    /// Parse `"/host/dir"`, `"/host/dir:ro"` or `"/host/dir:rw"`.
    fn volume_source(&mut self, key: &str, item: &Item<'_>, spec: &str) -> Option<(String, bool)> {
        if spec.starts_with("identity:") {
            self.value_error(
                key,
                item,
                "identity volumes are not available yet (planned); give a host directory",
            );
            return None;
        }
        let (host, readonly) = match spec.rsplit_once(':') {
            Some((host, "ro")) => (host, true),
            Some((host, "rw")) => (host, false),
            Some((_, option)) => {
                self.value_error(
                    key,
                    item,
                    format!("unknown volume option `{option}`; allowed suffixes: \":ro\" (read-only), \":rw\" (host paths cannot contain ':')"),
                );
                return None;
            }
            None => (spec, false),
        };
        match normalise_absolute(host) {
            Ok(h) => Some((h, readonly)),
            Err(problem) => {
                self.value_error(key, item, format!("host directory {problem}"));
                None
            }
        }
    }

    fn workdir(&mut self, item: &Item<'_>) -> Option<String> {
        let s = self.string("workdir", item, "an absolute path such as \"/home/user\"")?;
        match normalise_absolute(s) {
            Ok(p) => Some(p),
            Err(problem) => {
                self.value_error("workdir", item, problem);
                None
            }
        }
    }

    fn user(&mut self, item: &Item<'_>) -> Option<UserSpec> {
        // An env maps ids 0..65536 of its own onto the host; ids above
        // that range exist nowhere inside the env.
        const MAX_ID: u64 = 65_535;
        let parse_id = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_ID)
                .map(|n| n as u32)
        };
        let hint = format!(
            "write \"root\", a uid such as \"1000\", or \"uid:gid\" such as \"1000:100\" (ids 0-{MAX_ID})"
        );
        let parsed = match item.get_ref() {
            DeValue::Integer(_) => integer(item.get_ref())
                .filter(|n| (0..=MAX_ID as i128).contains(n))
                .map(|n| UserSpec {
                    uid: n as u32,
                    gid: n as u32,
                }),
            DeValue::String(s) => match s.as_ref() {
                "root" => Some(UserSpec { uid: 0, gid: 0 }),
                s => match s.split_once(':') {
                    Some((u, g)) => parse_id(u)
                        .zip(parse_id(g))
                        .map(|(uid, gid)| UserSpec { uid, gid }),
                    None if s.chars().all(|c| c.is_ascii_digit()) => {
                        parse_id(s).map(|uid| UserSpec { uid, gid: uid })
                    }
                    None => {
                        self.value_error(
                            "user",
                            item,
                            format!("user names other than \"root\" are not looked up in the image; {hint}"),
                        );
                        return None;
                    }
                },
            },
            _ => {
                self.type_error("user", item, "\"root\", a uid or \"uid:gid\"");
                return None;
            }
        };
        if parsed.is_none() {
            self.value_error("user", item, format!("not a user; {hint}"));
        }
        parsed
    }

    fn stop_timeout(&mut self, item: &Item<'_>) -> Option<u64> {
        let hint = format!(
            "write e.g. \"500ms\", \"10s\" or \"2m\" (units: {})",
            units::DURATION_UNITS
        );
        let ms = match item.get_ref() {
            DeValue::String(s) => match units::parse_duration_ms(s) {
                Ok(ms) => ms,
                Err(_) => {
                    self.value_error("stop_timeout", item, format!("not a duration; {hint}"));
                    return None;
                }
            },
            DeValue::Integer(_) | DeValue::Float(_) => {
                self.value_error("stop_timeout", item, format!("needs a unit; {hint}"));
                return None;
            }
            _ => {
                self.type_error("stop_timeout", item, "a duration string such as \"10s\"");
                return None;
            }
        };
        if ms > MAX_STOP_TIMEOUT_MS {
            self.value_error("stop_timeout", item, "at most \"1h\" is allowed");
            return None;
        }
        Some(ms)
    }
}

/// Lifecycle keys: `restart`, `health`, `snapshots`.
impl Validator<'_> {
    fn restart(&mut self, item: &Item<'_>) -> Option<Restart> {
        match item.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "no" => Some(Restart::No),
                "on-failure" => Some(Restart::OnFailure),
                "always" => Some(Restart::Always),
                _ => {
                    self.value_error(
                        "restart",
                        item,
                        "not a restart policy; allowed: \"no\", \"on-failure\", \"always\"",
                    );
                    None
                }
            },
            _ => {
                self.type_error("restart", item, "\"no\", \"on-failure\" or \"always\"");
                None
            }
        }
    }

    /// A duration key inside an inline table, in milliseconds, within `min..=max`.
    fn duration_in(&mut self, key: &str, item: &Item<'_>, min: u64, max: u64) -> Option<u64> {
        let hint = format!(
            "write e.g. \"500ms\", \"10s\" or \"1h\" (units: {})",
            units::DURATION_UNITS
        );
        let ms = match item.get_ref() {
            DeValue::String(s) => match units::parse_duration_ms(s) {
                Ok(ms) => ms,
                Err(_) => {
                    self.value_error(key, item, format!("not a duration; {hint}"));
                    return None;
                }
            },
            DeValue::Integer(_) | DeValue::Float(_) => {
                self.value_error(key, item, format!("needs a unit; {hint}"));
                return None;
            }
            _ => {
                self.type_error(key, item, "a duration string such as \"10s\"");
                return None;
            }
        };
        if ms < min || ms > max {
            self.value_error(key, item, format!("must be between {min} ms and {max} ms"));
            return None;
        }
        Some(ms)
    }

    fn small_count(&mut self, key: &str, item: &Item<'_>, min: i128, max: i128) -> Option<u32> {
        match integer(item.get_ref()) {
            Some(n) if (min..=max).contains(&n) => Some(n as u32),
            Some(_) => {
                self.value_error(key, item, format!("must be between {min} and {max}"));
                None
            }
            None => {
                self.type_error(key, item, "a whole number");
                None
            }
        }
    }

    fn health(&mut self, item: &Item<'_>) -> Option<Health> {
        const KEYS: &[&str] = &["command", "interval", "timeout", "retries", "grace"];
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "health",
                item,
                "a table such as { command = \"test -f /ready\", interval = \"10s\" }",
            );
            return None;
        };
        let before = self.diags.len();
        let mut health = Health {
            command: Vec::new(),
            interval_ms: crate::model::DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: crate::model::DEFAULT_HEALTH_TIMEOUT_MS,
            retries: crate::model::DEFAULT_HEALTH_RETRIES,
            grace_ms: crate::model::DEFAULT_HEALTH_GRACE_MS,
        };
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "command" => {
                    if let Some(argv) = self.command(value) {
                        health.command = argv;
                    }
                }
                "interval" => {
                    if let Some(ms) = self.duration_in("health.interval", value, 100, 86_400_000) {
                        health.interval_ms = ms;
                    }
                }
                "timeout" => {
                    if let Some(ms) = self.duration_in("health.timeout", value, 10, 3_600_000) {
                        health.timeout_ms = ms;
                    }
                }
                "retries" => {
                    if let Some(n) = self.small_count("health.retries", value, 1, 100) {
                        health.retries = n;
                    }
                }
                "grace" => {
                    if let Some(ms) = self.duration_in("health.grace", value, 0, 86_400_000) {
                        health.grace_ms = ms;
                    }
                }
                _ => self.unknown_key(key, "health", KEYS, None),
            }
        }
        if !table.contains_key("command") {
            self.diags.error(
                item.span().start,
                "health: missing required key `command`; add e.g. command = \"test -f /ready\"",
            );
        }
        (self.diags.len() == before).then_some(health)
    }

    fn snapshot_schedule(&mut self, item: &Item<'_>) -> Option<SnapshotSchedule> {
        const KEYS: &[&str] = &["every", "keep"];
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "snapshots",
                item,
                "a table such as { every = \"1h\", keep = 24 }",
            );
            return None;
        };
        let before = self.diags.len();
        let mut schedule = SnapshotSchedule {
            every_ms: 0,
            keep: 24,
        };
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "every" => {
                    if let Some(ms) =
                        self.duration_in("snapshots.every", value, 1_000, 366 * 86_400_000)
                    {
                        schedule.every_ms = ms;
                    }
                }
                "keep" => {
                    if let Some(n) = self.small_count("snapshots.keep", value, 1, 10_000) {
                        schedule.keep = n;
                    }
                }
                _ => self.unknown_key(key, "snapshots", KEYS, None),
            }
        }
        if !table.contains_key("every") {
            self.diags.error(
                item.span().start,
                "snapshots: missing required key `every`; add e.g. every = \"1h\"",
            );
        }
        (self.diags.len() == before).then_some(schedule)
    }
}

/// Parse and validate `source`; `file_name` is used in diagnostics.
pub(crate) fn parse(source: &str, file_name: &str) -> Result<Spec, crate::SpecErrors> {
    let mut diags = Diagnostics::new(file_name, source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            diags.error(at, format!("TOML syntax error: {}", e.message().trim_end()));
        }
        return Err(diags.finish());
    }
    let mut validator = Validator {
        source,
        diags,
        refs: Vec::new(),
        declared: Default::default(),
        base_spans: BTreeMap::new(),
    };
    let spec = validator.spec(root.get_ref());
    if validator.diags.is_empty() {
        Ok(spec)
    } else {
        Err(validator.diags.finish())
    }
}
