//! `desktop`, `autostart` and `label`: values, defaults and positioned errors.

mod common;

use common::{env, one_in_env};
use verse_spec::desktop::{Clipboard, DEFAULT_SIZE, DesktopSpec, Label};

#[test]
fn desktop_true_gets_the_defaults_and_a_table_sets_wm_and_size() {
    let e = env("desktop = true");
    assert_eq!(e.desktop, Some(DesktopSpec::default()));
    assert_eq!(
        (e.desktop.unwrap().width, DEFAULT_SIZE.1),
        (DEFAULT_SIZE.0, 900)
    );
    let e = env("desktop = { wm = \"openbox\", size = \"1024x768\" }");
    let d = e.desktop.unwrap();
    assert_eq!((d.wm.as_str(), d.width, d.height), ("openbox", 1024, 768));
    assert_eq!(env("desktop = false").desktop, None);
    assert_eq!(env("").desktop, None);
}

#[test]
fn autostart_and_label_are_kept() {
    let e = env(
        "desktop = true\nautostart = [\"xterm\", \"xclock -digital\"]\nlabel = { color = \"#E02020\", name = \"banking\" }",
    );
    assert_eq!(e.autostart, ["xterm", "xclock -digital"]);
    assert_eq!(
        e.label,
        Some(Label {
            color: "#e02020".into(),
            name: "banking".into()
        })
    );
}

#[test]
fn specs_without_desktops_keep_their_digest_shape() {
    let json = serde_json::to_string(&env("")).unwrap();
    assert!(!json.contains("desktop") && !json.contains("label") && !json.contains("autostart"));
}

#[test]
fn desktop_errors_are_positioned_and_say_what_is_allowed() {
    assert_eq!(
        one_in_env("desktop = \"yes\""),
        "verse.toml:3:11: desktop = \"yes\": expected true, false or a table such as { wm = \"openbox\", size = \"1600x900\" }, found a string"
    );
    assert_eq!(
        one_in_env("desktop = { wm = \"openbx\" }"),
        "verse.toml:3:18: desktop.wm = \"openbx\": unknown window manager; did you mean \"openbox\"? allowed: \"openbox\""
    );
    assert_eq!(
        one_in_env("desktop = { size = \"1600by900\" }"),
        "verse.toml:3:20: desktop.size = \"1600by900\": write the size as \"WIDTHxHEIGHT\", e.g. \"1600x900\""
    );
    assert_eq!(
        one_in_env("desktop = { size = \"100x900\" }"),
        "verse.toml:3:20: desktop.size = \"100x900\": width 100 is out of range: 200 to 8192 pixels"
    );
    assert!(one_in_env("desktop = { colour = 1 }").contains("unknown key `colour` in desktop"));
}

#[test]
fn autostart_and_label_errors() {
    assert_eq!(
        one_in_env("autostart = \"xterm\""),
        "verse.toml:3:13: autostart = \"xterm\": expected an array of commands, e.g. [\"xterm\", \"focuswriter\"], found a string"
    );
    assert_eq!(
        one_in_env("autostart = [\"xterm\", \"\"]"),
        "verse.toml:3:23: autostart[1] = \"\": must not be empty"
    );
    assert_eq!(
        one_in_env("label = { color = \"red\", name = \"x\" }"),
        "verse.toml:3:19: label.color = \"red\": write a colour as \"#RRGGBB\", e.g. \"#E02020\""
    );
    assert_eq!(
        one_in_env("label = { color = \"#E02020\" }"),
        "verse.toml:3:9: label = { color = \"#E02020\" }: missing `name`, e.g. name = \"banking\""
    );
    assert!(one_in_env("label = \"banking\"").contains("expected a table such as"));
}

#[test]
fn clipboard_defaults_to_none_and_takes_each_direction() {
    assert_eq!(env("").clipboard, Clipboard::None);
    for (text, want) in [
        ("none", Clipboard::None),
        ("in", Clipboard::In),
        ("out", Clipboard::Out),
        ("both", Clipboard::Both),
    ] {
        assert_eq!(env(&format!("clipboard = \"{text}\"")).clipboard, want);
    }
    assert!(Clipboard::In.allows_in() && !Clipboard::In.allows_out());
    assert!(Clipboard::Out.allows_out() && !Clipboard::Out.allows_in());
    // The default stays out of the JSON, so existing specs keep their digests.
    assert!(
        !serde_json::to_string(&env("clipboard = \"none\""))
            .unwrap()
            .contains("clipboard")
    );
    assert!(
        serde_json::to_string(&env("clipboard = \"out\""))
            .unwrap()
            .contains("\"clipboard\":\"out\"")
    );
}

#[test]
fn clipboard_errors_are_positioned() {
    assert_eq!(
        one_in_env("clipboard = \"bth\""),
        "verse.toml:3:13: clipboard = \"bth\": did you mean \"both\"? expected \"none\", \"in\" (browser to env), \"out\" (env to browser) or \"both\""
    );
    assert_eq!(
        one_in_env("clipboard = true"),
        "verse.toml:3:13: clipboard = true: expected \"none\", \"in\" (browser to env), \"out\" (env to browser) or \"both\", found a boolean"
    );
}
