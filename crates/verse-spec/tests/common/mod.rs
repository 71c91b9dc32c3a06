#![allow(dead_code)]

use verse_spec::{EnvSpec, Spec, SpecErrors, parse_str};

/// Parse a spec that must be valid.
pub fn ok(source: &str) -> Spec {
    match parse_str(source, "verse.toml") {
        Ok(spec) => spec,
        Err(e) => panic!("expected a valid spec, got:\n{e}"),
    }
}

/// Parse `[env.t]` with `image = "busybox"` plus `body`, and return that env.
pub fn env(body: &str) -> EnvSpec {
    let source = format!("[env.t]\nimage = \"busybox\"\n{body}\n");
    ok(&source).envs.remove("t").expect("env t")
}

/// Parse a spec that must be invalid; return its errors.
pub fn errs(source: &str) -> SpecErrors {
    match parse_str(source, "verse.toml") {
        Ok(spec) => panic!("expected errors, parsed: {spec:?}"),
        Err(e) => {
            assert!(!e.is_empty(), "an error result must hold diagnostics");
            e
        }
    }
}

/// The rendered diagnostics, one string per error.
pub fn lines(source: &str) -> Vec<String> {
    errs(source).iter().map(|e| e.to_string()).collect()
}

/// Exactly one error, rendered.
pub fn one(source: &str) -> String {
    let l = lines(source);
    assert_eq!(l.len(), 1, "expected one error, got {l:#?}");
    l.into_iter().next().unwrap()
}

/// One error in `[env.t]` (image on line 2) whose body starts on line 3.
pub fn one_in_env(body: &str) -> String {
    one(&format!("[env.t]\nimage = \"busybox\"\n{body}\n"))
}
