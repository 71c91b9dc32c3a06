//! `downloads`, `hold`, `release_to` and `[copy]`: values and positioned errors.

mod common;

use common::{lines, ok, one};
use verse_spec::{CopyAction, Target};

const TWO: &str = "[env.home]\nimage = \"busybox\"\n[env.web]\nimage = \"busybox\"\n";

#[test]
fn downloads_defaults_and_values() {
    let spec = ok(&format!("{TWO}downloads = \"quarantine\"\n"));
    let d = spec.envs["web"].downloads.clone().expect("downloads");
    assert_eq!(d.hold_ms, 600_000, "default hold is 10 minutes");
    assert_eq!(d.release_to, None);
    assert_eq!(spec.envs["home"].downloads, None);

    let spec = ok(&format!(
        "{TWO}downloads = \"quarantine\"\nhold = \"30s\"\nrelease_to = \"home:/srv/in//x/.\"\n"
    ));
    let d = spec.envs["web"].downloads.clone().expect("downloads");
    assert_eq!(d.hold_ms, 30_000);
    assert_eq!(
        d.release_to,
        Some(Target {
            env: "home".into(),
            path: Some("/srv/in/x".into())
        })
    );
    let spec = ok(&format!(
        "{TWO}downloads = \"quarantine\"\nrelease_to = \"home\"\n"
    ));
    let target = spec.envs["web"]
        .downloads
        .clone()
        .unwrap()
        .release_to
        .unwrap();
    assert_eq!(target.dir(), "/inbox");
    assert_eq!(target.to_string(), "home");
}

#[test]
fn a_spec_without_the_keys_keeps_its_digest() {
    let spec = ok(TWO);
    assert!(!spec.canonical_json().contains("downloads"));
    assert!(!spec.canonical_json().contains("copy"));
}

#[test]
fn download_errors_are_positioned() {
    assert_eq!(
        one(&format!("{TWO}downloads = \"quarantin\"\n")),
        "verse.toml:5:13: downloads = \"quarantin\": unknown downloads mode; did you mean \"quarantine\"? allowed: \"quarantine\""
    );
    assert_eq!(
        one(&format!(
            "{TWO}downloads = \"quarantine\"\nhold = \"ten minutes\"\n"
        )),
        "verse.toml:6:8: hold = \"ten minutes\": not a duration; write e.g. \"500ms\", \"10s\" or \"1h\" (units: ms, s, m, h)"
    );
    assert_eq!(
        one(&format!("{TWO}downloads = \"quarantine\"\nhold = 600\n")),
        "verse.toml:6:8: hold = 600: needs a unit; write e.g. \"500ms\", \"10s\" or \"1h\" (units: ms, s, m, h)"
    );
    assert_eq!(
        one(&format!(
            "{TWO}downloads = \"quarantine\"\nrelease_to = \"hom:/in\"\n"
        )),
        "verse.toml:6:14: env `web`: release_to names env `hom`, which the spec does not declare; did you mean `home`?"
    );
    assert_eq!(
        one(&format!(
            "{TWO}downloads = \"quarantine\"\nrelease_to = \"home:in\"\n"
        )),
        "verse.toml:6:14: release_to = \"home:in\": the path `in` must be an absolute path (starting with /)"
    );
    assert_eq!(
        one(&format!(
            "{TWO}downloads = \"quarantine\"\nrelease_to = \"web\"\n"
        )),
        "verse.toml:6:14: release_to = \"web\": an env cannot release its downloads to itself"
    );
    assert_eq!(
        one(&format!("{TWO}hold = \"1m\"\n")),
        "verse.toml:5:8: hold applies to quarantined downloads only; add downloads = \"quarantine\""
    );
    assert_eq!(
        one(&format!(
            "{TWO}backend = \"gvisor\"\ndownloads = \"quarantine\"\n"
        )),
        "verse.toml:6:13: downloads = \"quarantine\" works on container and vm envs only for now; this env's backend is \"gvisor\""
    );
}

#[test]
fn copy_policy() {
    let spec = ok(&format!(
        "{TWO}[copy]\n\"web -> home\" = \"quarantine\"\n\"home->web\" = \"allow\"\n\"* -> home\" = \"deny\"\n"
    ));
    assert_eq!(spec.copy_policy("web", "home"), CopyAction::Quarantine);
    assert_eq!(spec.copy_policy("home", "web"), CopyAction::Allow);
    assert_eq!(
        spec.copy_policy("other", "web"),
        CopyAction::Deny,
        "default"
    );
    let spec = ok(&format!("{TWO}[copy]\n\"* -> *\" = \"allow\"\n"));
    assert_eq!(spec.copy_policy("home", "web"), CopyAction::Allow);
}

#[test]
fn copy_errors_are_positioned() {
    assert_eq!(
        one(&format!("{TWO}[copy]\n\"web -> hom\" = \"allow\"\n")),
        "verse.toml:6:1: [copy] names env `hom`, which the spec does not declare; did you mean `home`?"
    );
    assert_eq!(
        one(&format!("{TWO}[copy]\n\"web to home\" = \"allow\"\n")),
        "verse.toml:6:1: [copy] `web to home`: write a pair of envs as \"FROM -> TO\" (either may be \"*\")"
    );
    assert_eq!(
        one(&format!("{TWO}[copy]\n\"web -> home\" = \"alow\"\n")),
        "verse.toml:6:17: [copy] \"web -> home\" = \"alow\": unknown policy; did you mean \"allow\"? allowed: \"allow\", \"deny\", \"quarantine\""
    );
    assert_eq!(
        one(&format!("{TWO}[copy]\n\"web -> web\" = \"allow\"\n")),
        "verse.toml:6:1: [copy] `web -> web`: a copy goes between two different envs"
    );
    let l = lines(&format!("copy = 3\n{TWO}"));
    assert!(l[0].contains("copy = 3: expected a table"), "{l:?}");
}
