//! `[image.NAME]` recipes and `[trust]`.

use std::collections::{BTreeMap, BTreeSet};

use toml::de::DeValue;

use super::{Item, Key, Validator, closest, describe, normalise_absolute};
use crate::image::{
    DEBIAN_SUITES, FileSource, ImageBase, ImageFile, ImageSpec, KEY_PREFIX, TrustPolicy,
    parse_public_key,
};
use crate::model::Spec;

/// Keys allowed in `[image.NAME]`.
pub const IMAGE_KEYS: &[&str] = &["base", "packages", "files", "run", "user", "workdir", "env"];

/// Keys allowed in `[trust]`.
pub const TRUST_KEYS: &[&str] = &["require_signed", "keys"];

/// A Debian package name (policy 5.6.1), optionally with `:arch` or `=version`.
fn package_problem(package: &str) -> Option<&'static str> {
    let name = package.split([':', '=']).next().unwrap_or("");
    let bytes = name.as_bytes();
    if bytes.len() < 2 {
        return Some("package names are at least two characters");
    }
    if !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit() {
        return Some("package names start with a lowercase letter or digit");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(b))
    {
        return Some("package names use only a-z, 0-9, '+', '-' and '.'");
    }
    if package
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Some("no spaces, control characters or '/' in a package");
    }
    None
}

/// A user as written in an image: "root", a login name, "UID" or "UID:GID".
fn user_problem(user: &str) -> Option<&'static str> {
    let id =
        |s: &str| !s.is_empty() && s.len() <= 10 && s.parse::<u32>().is_ok_and(|n| n < u32::MAX);
    let name = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 32
            && (b[0].is_ascii_lowercase() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c))
    };
    let ok = match user.split_once(':') {
        Some((u, g)) => id(u) && id(g),
        None => id(user) || name(user),
    };
    (!ok).then_some(
        "write \"root\", a login name such as \"writer\" (a-z, 0-9, '_', '-'), a uid such as \"1000\" or \"uid:gid\"",
    )
}

impl Validator<'_> {
    /// `[image.NAME]` tables, added to `spec.images`.
    pub(super) fn images(&mut self, item: &Item<'_>, spec: &mut Spec) {
        let DeValue::Table(images) = item.get_ref() else {
            let found = describe(item.get_ref());
            self.diags.error(
                item.span().start,
                format!(
                    "image = {}: expected a table of image recipes ([image.NAME]), found {found}",
                    self.shown(item)
                ),
            );
            return;
        };
        for (name, recipe) in images.iter() {
            if let Some(image) = self.image_recipe(name, recipe) {
                spec.images.insert(name.get_ref().to_string(), image);
            }
        }
    }

    fn image_recipe(&mut self, name_key: &Key<'_>, item: &Item<'_>) -> Option<ImageSpec> {
        let name = name_key.get_ref().as_ref();
        let (ok, table) = self.named_table("image", "image", name_key, item);
        let table = table?;
        let place = format!("[image.{name}]");
        let errors_before = self.diags.len();
        let mut base = None;
        let mut image = ImageSpec {
            base: ImageBase::Debian {
                suite: String::new(),
            },
            packages: Vec::new(),
            files: Vec::new(),
            run: Vec::new(),
            user: None,
            workdir: None,
            env: BTreeMap::new(),
        };
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            match k {
                "base" => {
                    base = self.image_base(name, value);
                    if base.is_some() {
                        self.base_spans.insert(name.to_string(), value.span().start);
                    }
                }
                "packages" => image.packages = self.packages(value),
                "files" => image.files = self.files(&place, value),
                "run" => image.run = self.run_steps(value),
                "user" => {
                    if let Some(user) = self.string("user", value, "a user such as \"writer\"") {
                        match user_problem(user) {
                            Some(problem) => self.value_error("user", value, problem),
                            None => image.user = Some(user.to_string()),
                        }
                    }
                }
                "workdir" => image.workdir = self.workdir(value),
                "env" => image.env = self.env_vars(&place, value),
                _ => self.unknown_key(key, &place, IMAGE_KEYS, None),
            }
        }
        if !table.contains_key("base") {
            self.diags.error(
                item.span().start,
                format!(
                    "{place}: missing required key `base`; add e.g. base = \"debian:bookworm\""
                ),
            );
        }
        image.base = base?;
        (ok && self.diags.len() == errors_before).then_some(image)
    }

    fn image_base(&mut self, image: &str, item: &Item<'_>) -> Option<ImageBase> {
        let s = self.string(
            "base",
            item,
            "\"debian:SUITE\" or the name of another image (e.g. \"debian:bookworm\")",
        )?;
        if let Some(suite) = s.strip_prefix("debian:") {
            if DEBIAN_SUITES.contains(&suite) {
                return Some(ImageBase::Debian {
                    suite: suite.to_string(),
                });
            }
            let hint = closest(suite, DEBIAN_SUITES)
                .map(|c| format!("did you mean \"debian:{c}\"? "))
                .unwrap_or_default();
            self.value_error(
                "base",
                item,
                format!(
                    "unknown Debian suite `{suite}`; {hint}allowed: {}",
                    DEBIAN_SUITES.join(", ")
                ),
            );
            return None;
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.value_error(
                "base",
                item,
                "write \"debian:SUITE\" or the name of an image (no spaces or control characters)",
            );
            return None;
        }
        if s == image {
            self.value_error(
                "base",
                item,
                format!("image `{image}` cannot be built on itself; name another image or \"debian:bookworm\""),
            );
            return None;
        }
        Some(ImageBase::Image {
            name: s.to_string(),
        })
    }

    fn packages(&mut self, item: &Item<'_>) -> Vec<String> {
        let DeValue::Array(items) = item.get_ref() else {
            self.type_error(
                "packages",
                item,
                "an array of Debian package names, e.g. [\"pandoc\"]",
            );
            return Vec::new();
        };
        let mut packages = Vec::with_capacity(items.len());
        let mut seen = BTreeSet::new();
        for (i, value) in items.iter().enumerate() {
            let key = format!("packages[{i}]");
            let Some(package) = self.string(&key, value, "a package name (quote it)") else {
                continue;
            };
            if let Some(problem) = package_problem(package) {
                self.value_error(&key, value, problem);
            } else if !seen.insert(package.to_string()) {
                self.value_error(&key, value, "listed twice; name each package once");
            } else {
                packages.push(package.to_string());
            }
        }
        packages
    }

    fn files(&mut self, place: &str, item: &Item<'_>) -> Vec<ImageFile> {
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "files",
                item,
                "a table of image path = content or \"./host/path\", e.g. { \"/etc/motd\" = \"hello\" }",
            );
            return Vec::new();
        };
        let mut files: BTreeMap<String, (ImageFile, String)> = BTreeMap::new();
        for (key, value) in table.iter() {
            let raw_path = key.get_ref().as_ref();
            let path = match normalise_absolute(raw_path) {
                Ok(p) if p == "/" => {
                    self.diags.error(
                        key.span().start,
                        format!("file path `{raw_path}` in {place}: name a file, not /"),
                    );
                    continue;
                }
                Ok(p) => p,
                Err(problem) => {
                    self.diags.error(
                        key.span().start,
                        format!("file path `{raw_path}` in {place}: {problem}"),
                    );
                    continue;
                }
            };
            let shown_key = format!("{raw_path:?}");
            let Some(content) = self.string(
                &shown_key,
                value,
                "the file's content as a string, or \"./path/on/host\"",
            ) else {
                continue;
            };
            let source = if content.starts_with("./") || content.starts_with("../") {
                if content.contains('\0') {
                    self.value_error(&shown_key, value, "must not contain a NUL character");
                    continue;
                }
                FileSource::Host(content.to_string())
            } else {
                FileSource::Text(content.to_string())
            };
            if let Some((_, other)) = files.get(&path) {
                let other = other.clone();
                self.diags.error(
                    key.span().start,
                    format!("file path `{raw_path}` in {place} is the same file as `{other}`, given earlier; write each file once"),
                );
                continue;
            }
            files.insert(
                path.clone(),
                (ImageFile { path, source }, raw_path.to_string()),
            );
        }
        files.into_values().map(|(f, _)| f).collect()
    }

    fn run_steps(&mut self, item: &Item<'_>) -> Vec<String> {
        let DeValue::Array(items) = item.get_ref() else {
            self.type_error(
                "run",
                item,
                "an array of shell commands, e.g. [\"useradd -m writer\"]",
            );
            return Vec::new();
        };
        let mut steps = Vec::with_capacity(items.len());
        for (i, value) in items.iter().enumerate() {
            let key = format!("run[{i}]");
            let Some(step) = self.string(&key, value, "a shell command (quote it)") else {
                continue;
            };
            if step.trim().is_empty() {
                self.value_error(&key, value, "an empty step does nothing; remove it");
            } else if step.contains('\0') {
                self.value_error(&key, value, "must not contain a NUL character");
            } else {
                steps.push(step.to_string());
            }
        }
        steps
    }

    /// `[trust]`.
    pub(super) fn trust(&mut self, item: &Item<'_>) -> TrustPolicy {
        let mut policy = TrustPolicy::default();
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "trust",
                item,
                "a table ([trust] with require_signed and keys)",
            );
            return policy;
        };
        let mut keys_ok = true;
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "require_signed" => match value.get_ref() {
                    DeValue::Boolean(b) => policy.require_signed = *b,
                    _ => self.type_error("require_signed", value, "true or false"),
                },
                "keys" => {
                    let DeValue::Array(items) = value.get_ref() else {
                        self.type_error(
                            "keys",
                            value,
                            "an array of public keys such as [\"ed25519:...\"]",
                        );
                        keys_ok = false;
                        continue;
                    };
                    for (i, k) in items.iter().enumerate() {
                        let shown = format!("keys[{i}]");
                        let Some(s) = self.string(&shown, k, "a public key \"ed25519:HEX\"") else {
                            keys_ok = false;
                            continue;
                        };
                        if parse_public_key(s).is_none() {
                            self.value_error(
                                &shown,
                                k,
                                format!("not a public key; write \"{KEY_PREFIX}\" and 64 lowercase hex digits, as printed by `verse key generate`"),
                            );
                            keys_ok = false;
                        } else if !policy.keys.iter().any(|have| have == s) {
                            policy.keys.push(s.to_string());
                        }
                    }
                }
                _ => self.unknown_key(key, "[trust]", TRUST_KEYS, None),
            }
        }
        if policy.require_signed && policy.keys.is_empty() && keys_ok {
            self.diags.error(
                item.span().start,
                "[trust]: require_signed = true needs at least one key; add keys = [\"ed25519:...\"] (see `verse key generate`)",
            );
        }
        policy.keys.sort();
        policy
    }

    /// Reports every `base` chain among the spec's images that comes back to itself.
    pub(super) fn check_base_cycles(&mut self, spec: &Spec) {
        let mut reported: BTreeSet<String> = BTreeSet::new();
        for start in spec.images.keys() {
            let mut chain = vec![start.clone()];
            let mut current = start.clone();
            while let Some(ImageSpec {
                base: ImageBase::Image { name },
                ..
            }) = spec.images.get(&current)
            {
                if let Some(at) = chain.iter().position(|c| c == name) {
                    let cycle = &chain[at..];
                    if cycle.iter().all(|c| !reported.contains(c)) {
                        reported.extend(cycle.iter().cloned());
                        let mut shown: Vec<&str> = cycle.iter().map(String::as_str).collect();
                        shown.push(name);
                        let first = &cycle[0];
                        let offset = self.base_spans.get(first).copied().unwrap_or(0);
                        self.diags.error(
                            offset,
                            format!(
                                "image `{first}`: its base chain comes back to itself ({}); one of them must start from \"debian:SUITE\" or an imported image",
                                shown.join(" -> ")
                            ),
                        );
                    }
                    break;
                }
                chain.push(name.clone());
                current = name.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages() {
        for good in ["pandoc", "g++", "libc6:amd64", "vim=2:9.0", "0ad"] {
            assert_eq!(package_problem(good), None, "{good}");
        }
        for bad in ["a", "Pandoc", "-x", "a b", "x/y", "x_y"] {
            assert!(package_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn users() {
        for good in ["root", "writer", "_apt", "1000", "1000:100", "www-data"] {
            assert_eq!(user_problem(good), None, "{good}");
        }
        for bad in ["", "Writer", "1000:", ":1", "a b", "4294967295"] {
            assert!(user_problem(bad).is_some(), "{bad}");
        }
    }
}
