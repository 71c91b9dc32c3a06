//! Desktops and labels: what an env shows a person (`desktop`, `autostart`, `label`).

use serde::{Deserialize, Serialize};

/// Window managers a desktop may run.
pub const WINDOW_MANAGERS: &[&str] = &["openbox"];
/// The window manager of `desktop = true`.
pub const DEFAULT_WM: &str = "openbox";
/// The screen of `desktop = true`, in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1600, 900);
/// Smallest and largest width or height accepted, in pixels.
pub const MIN_SIDE: u32 = 200;
pub const MAX_SIDE: u32 = 8192;
/// Longest label name, in characters.
pub const MAX_LABEL_NAME: usize = 32;

/// A virtual display inside the env (`desktop = true` or a table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopSpec {
    /// The window manager started on the display.
    pub wm: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for DesktopSpec {
    fn default() -> Self {
        DesktopSpec {
            wm: DEFAULT_WM.to_string(),
            width: DEFAULT_SIZE.0,
            height: DEFAULT_SIZE.1,
        }
    }
}

/// The colour and name an env wears on its tab and around its desktop.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// `#RRGGBB`, lowercase.
    pub color: String,
    pub name: String,
}

/// Which way the clipboard may cross between the browser and an env's desktop
/// (`clipboard = "none" | "in" | "out" | "both"`; `in` is towards the env).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clipboard {
    /// Nothing crosses (the default).
    #[default]
    None,
    /// Text pasted in the browser reaches the env; nothing comes out.
    In,
    /// Text copied in the env reaches the browser; nothing goes in.
    Out,
    /// Both ways.
    Both,
}

impl Clipboard {
    /// The values `clipboard` accepts, as written in a spec.
    pub const NAMES: &[&str] = &["none", "in", "out", "both"];

    pub fn parse(text: &str) -> Option<Clipboard> {
        Some(match text {
            "none" => Clipboard::None,
            "in" => Clipboard::In,
            "out" => Clipboard::Out,
            "both" => Clipboard::Both,
            _ => return None,
        })
    }

    /// As written in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Clipboard::None => "none",
            Clipboard::In => "in",
            Clipboard::Out => "out",
            Clipboard::Both => "both",
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Clipboard::None
    }

    /// Browser → env allowed.
    pub fn allows_in(self) -> bool {
        matches!(self, Clipboard::In | Clipboard::Both)
    }

    /// Env → browser allowed.
    pub fn allows_out(self) -> bool {
        matches!(self, Clipboard::Out | Clipboard::Both)
    }
}
