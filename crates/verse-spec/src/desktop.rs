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
