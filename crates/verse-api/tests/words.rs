//! The API's fixed vocabularies were strings before they were enums: each enum must read
//! and write exactly the words the strings carried, so clients, stored records and the
//! database see byte-identical JSON. The words below are copied from the code that wrote
//! them as strings (reconcile, diff, events, copy), not generated from the enums.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::str::FromStr;
use verse_api::quarantine::{Check, CopyPolicy, CopyReport, Item};
use verse_api::{
    Applies, ApplyAction, Backend, ChangeApplies, EnvDiff, EventInfo, EventKind, FieldChange,
    PlannedAction,
};

/// Every old word reads as a variant and writes back as the same JSON string, `as_str`,
/// `Display` and `FromStr` agree, and the words cover every variant.
fn same_words<T>(all: &[T], words: &[&str])
where
    T: Serialize + DeserializeOwned + Display + FromStr + PartialEq + std::fmt::Debug + Copy,
    <T as FromStr>::Err: Display,
{
    assert_eq!(all.len(), words.len(), "every variant has its old word");
    for word in words {
        let json = format!("\"{word}\"");
        let value: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(value.to_string(), *word);
        match word.parse::<T>() {
            Ok(parsed) => assert_eq!(parsed, value),
            Err(e) => panic!("{word}: {e}"),
        }
    }
}

#[test]
fn backends_are_the_words_the_spec_uses() {
    same_words(Backend::ALL, &["container", "vm", "gvisor"]);
}

#[test]
fn apply_actions_are_the_words_reconcile_wrote() {
    same_words(
        ApplyAction::ALL,
        &[
            "create",
            "network",
            "update",
            "start",
            "unchanged",
            "remove",
        ],
    );
}

#[test]
fn diff_applies_are_the_words_diff_wrote() {
    same_words(Applies::ALL, &["live", "restart", "start", "stop", "none"]);
    same_words(ChangeApplies::ALL, &["live", "restart"]);
}

#[test]
fn event_kinds_are_the_words_the_engine_emitted() {
    same_words(
        EventKind::ALL,
        &[
            "created",
            "started",
            "stopped",
            "exited",
            "failed",
            "paused",
            "unpaused",
            "snapshot",
            "snapshot-failed",
            "snapshot-removed",
            "restored",
            "restarting",
            "health",
            "fallback",
            "updated",
            "removed",
            "hibernated",
            "hibernate-refused",
            "resumed",
            "net-drop",
        ],
    );
}

#[test]
fn copy_policies_are_the_words_of_the_copy_table() {
    same_words(CopyPolicy::ALL, &["allow", "deny", "quarantine"]);
    assert_eq!(CopyPolicy::default(), CopyPolicy::Deny);
}

#[test]
fn scan_checks_are_the_words_the_scanners_wrote() {
    same_words(Check::ALL, &["type", "archive", "yara"]);
}

#[test]
fn an_unknown_word_is_refused_naming_what_and_the_allowed_words() {
    let e = "kvm".parse::<Backend>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "`kvm` is not a backend (allowed: container, vm, gvisor)"
    );
    assert!(serde_json::from_str::<EventKind>("\"exploded\"").is_err());
}

/// Bodies as an older daemon (string fields) wrote them read and write back byte for byte.
fn same_json<T: Serialize + DeserializeOwned>(json: &str) {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(serde_json::to_string(&value).unwrap(), json);
}

#[test]
fn bodies_with_words_are_byte_identical_to_the_string_fields() {
    same_json::<PlannedAction>(
        r#"{"env":"web","action":"network","detail":"changed: reach, live"}"#,
    );
    same_json::<EnvDiff>(
        r#"{"env":"db","action":"update","applies":"live","changes":[{"field":"cpu","old":1.0,"new":2.0,"applies":"live"}]}"#,
    );
    same_json::<EnvDiff>(r#"{"env":"old","action":"remove","applies":"stop","changes":[]}"#);
    same_json::<FieldChange>(r#"{"field":"image","old":"a","new":"b","applies":"restart"}"#);
    same_json::<EventInfo>(
        r#"{"id":7,"time_ms":1700000000000,"env":"web","kind":"snapshot-removed","state":null,"cause":"verse snapshot rm web s1"}"#,
    );
    // An item.json as the quarantine wrote it before (also the body of /v1/quarantine/ID).
    same_json::<Item>(
        r#"{"id":"q1","env":"web","name":"a.pdf","received_at":1,"hold_until":5,"state":"held","report":{"size":3,"blake3":"ab","content_type":null,"findings":[{"check":"type","message":"not a pdf"},{"check":"yara","message":"rule Eicar"}]},"released_to":null,"forced":false}"#,
    );
    same_json::<CopyReport>(r#"{"policy":"allow","copied_to":"/inbox/a.txt","quarantined":null}"#);
}

#[test]
fn words_line_up_in_tables_like_the_strings_did() {
    assert_eq!(format!("{:<12}|", EventKind::Paused), "paused      |");
    assert_eq!(format!("{:<10}|", Backend::Vm), "vm        |");
}
