//! `desktop`, `autostart` and `label` of an env.

use toml::de::DeValue;

use super::{Item, Validator, closest};
use crate::desktop::{
    Clipboard, DesktopSpec, Label, MAX_LABEL_NAME, MAX_SIDE, MIN_SIDE, WINDOW_MANAGERS,
};

/// Keys allowed in `desktop = { ... }`.
pub const DESKTOP_KEYS: &[&str] = &["wm", "size"];
/// Keys allowed in `label = { ... }`.
pub const LABEL_KEYS: &[&str] = &["color", "name"];

/// "WIDTHxHEIGHT" within bounds.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| "write the size as \"WIDTHxHEIGHT\", e.g. \"1600x900\"".to_string())?;
    let side = |s: &str| s.trim().parse::<u32>().ok();
    let (Some(w), Some(h)) = (side(w), side(h)) else {
        return Err("write the size as \"WIDTHxHEIGHT\" in whole pixels, e.g. \"1600x900\"".into());
    };
    for (what, v) in [("width", w), ("height", h)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
            return Err(format!(
                "{what} {v} is out of range: {MIN_SIDE} to {MAX_SIDE} pixels"
            ));
        }
    }
    Ok((w, h))
}

impl Validator<'_> {
    pub(super) fn desktop(&mut self, item: &Item<'_>) -> Option<DesktopSpec> {
        match item.get_ref() {
            DeValue::Boolean(true) => Some(DesktopSpec::default()),
            DeValue::Boolean(false) => None,
            DeValue::Table(table) => {
                let mut desktop = DesktopSpec::default();
                let mut ok = true;
                for (key, value) in table.iter() {
                    match key.get_ref().as_ref() {
                        "wm" => match value.get_ref() {
                            DeValue::String(s) if WINDOW_MANAGERS.contains(&s.as_ref()) => {
                                desktop.wm = s.to_string();
                            }
                            DeValue::String(s) => {
                                let hint = closest(s, WINDOW_MANAGERS)
                                    .map(|c| format!("did you mean \"{c}\"? "))
                                    .unwrap_or_default();
                                self.value_error(
                                    "desktop.wm",
                                    value,
                                    format!(
                                        "unknown window manager; {hint}allowed: {}",
                                        WINDOW_MANAGERS
                                            .iter()
                                            .map(|w| format!("\"{w}\""))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                );
                                ok = false;
                            }
                            _ => {
                                self.type_error(
                                    "desktop.wm",
                                    value,
                                    "a string such as \"openbox\"",
                                );
                                ok = false;
                            }
                        },
                        "size" => match value.get_ref() {
                            DeValue::String(s) => match parse_size(s) {
                                Ok((w, h)) => {
                                    desktop.width = w;
                                    desktop.height = h;
                                }
                                Err(problem) => {
                                    self.value_error("desktop.size", value, problem);
                                    ok = false;
                                }
                            },
                            _ => {
                                self.type_error(
                                    "desktop.size",
                                    value,
                                    "a string such as \"1600x900\"",
                                );
                                ok = false;
                            }
                        },
                        _ => {
                            self.unknown_key(key, "desktop", DESKTOP_KEYS, None);
                            ok = false;
                        }
                    }
                }
                ok.then_some(desktop)
            }
            _ => {
                self.type_error(
                    "desktop",
                    item,
                    "true, false or a table such as { wm = \"openbox\", size = \"1600x900\" }",
                );
                None
            }
        }
    }

    pub(super) fn clipboard(&mut self, item: &Item<'_>) -> Option<Clipboard> {
        let allowed = "\"none\", \"in\" (browser to env), \"out\" (env to browser) or \"both\"";
        match item.get_ref() {
            DeValue::String(s) => match Clipboard::parse(s) {
                Some(c) => Some(c),
                None => {
                    let hint = closest(s, Clipboard::NAMES)
                        .map(|c| format!("did you mean \"{c}\"? "))
                        .unwrap_or_default();
                    self.value_error("clipboard", item, format!("{hint}expected {allowed}"));
                    None
                }
            },
            _ => {
                self.type_error("clipboard", item, allowed);
                None
            }
        }
    }

    pub(super) fn autostart(&mut self, item: &Item<'_>) -> Vec<String> {
        let DeValue::Array(items) = item.get_ref() else {
            self.type_error(
                "autostart",
                item,
                "an array of commands, e.g. [\"xterm\", \"focuswriter\"]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, entry) in items.iter().enumerate() {
            match entry.get_ref() {
                DeValue::String(s) if s.trim().is_empty() => {
                    self.value_error(&format!("autostart[{i}]"), entry, "must not be empty")
                }
                DeValue::String(s) if s.contains('\0') || s.contains('\n') => self.value_error(
                    &format!("autostart[{i}]"),
                    entry,
                    "must be one line without NUL characters",
                ),
                DeValue::String(s) => out.push(s.to_string()),
                _ => self.type_error(
                    &format!("autostart[{i}]"),
                    entry,
                    "a command line (a string)",
                ),
            }
        }
        out
    }

    pub(super) fn label(&mut self, item: &Item<'_>) -> Option<Label> {
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(
                "label",
                item,
                "a table such as { color = \"#E02020\", name = \"banking\" }",
            );
            return None;
        };
        let (mut color, mut name, mut ok) = (None, None, true);
        for (key, value) in table.iter() {
            match (key.get_ref().as_ref(), value.get_ref()) {
                ("color", DeValue::String(s)) => {
                    let hex = s.strip_prefix('#').unwrap_or("");
                    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                        color = Some(format!("#{}", hex.to_ascii_lowercase()));
                    } else {
                        self.value_error(
                            "label.color",
                            value,
                            "write a colour as \"#RRGGBB\", e.g. \"#E02020\"",
                        );
                        ok = false;
                    }
                }
                ("name", DeValue::String(s)) => {
                    if s.trim().is_empty()
                        || s.chars().count() > MAX_LABEL_NAME
                        || s.chars().any(char::is_control)
                    {
                        self.value_error(
                            "label.name",
                            value,
                            format!("must be 1 to {MAX_LABEL_NAME} printable characters"),
                        );
                        ok = false;
                    } else {
                        name = Some(s.to_string());
                    }
                }
                ("color" | "name", _) => {
                    let k = format!("label.{}", key.get_ref());
                    self.type_error(&k, value, "a string");
                    ok = false;
                }
                _ => {
                    self.unknown_key(key, "label", LABEL_KEYS, None);
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        match (color, name) {
            (Some(color), Some(name)) => Some(Label { color, name }),
            (None, _) => {
                self.value_error("label", item, "missing `color`, e.g. color = \"#E02020\"");
                None
            }
            (_, None) => {
                self.value_error("label", item, "missing `name`, e.g. name = \"banking\"");
                None
            }
        }
    }
}
