//! JSON round-trip, canonical form and digest.

mod common;

use common::ok;
use verse_spec::Spec;

const FULL: &str = r#"
[env.novel]
image = "busybox"
cpu = 1.5
memory = "512MiB"
pids = 256
ephemeral = true
command = "sleep 1"
env = { B = "2", A = "1" }
hostname = "novel"
volumes = { "/ref" = "/srv/ref:ro", "/data" = "/srv/data" }
workdir = "/data"
user = "1000:100"
stop_timeout = "2m"

[env.scratch]
image = "busybox"
"#;

#[test]
fn round_trips_through_json() {
    let spec = ok(FULL);
    let json = serde_json::to_string_pretty(&spec).unwrap();
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    let back: Spec = serde_json::from_str(&spec.canonical_json()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn json_shape() {
    let spec = ok(FULL);
    let v: serde_json::Value = serde_json::from_str(&spec.canonical_json()).unwrap();
    let novel = &v["envs"]["novel"];
    assert_eq!(novel["backend"], "container");
    assert_eq!(novel["network"], "none");
    assert_eq!(novel["memory"], 512u64 << 20);
    assert_eq!(novel["stop_timeout_ms"], 120_000);
    assert_eq!(novel["user"]["uid"], 1000);
    assert_eq!(novel["volumes"][0]["path"], "/data");
    assert_eq!(novel["volumes"][1]["readonly"], true);
    assert_eq!(v["envs"]["scratch"]["cpu"], serde_json::Value::Null);
}

#[test]
fn canonical_json_is_sorted_and_compact() {
    let json = ok("[env.a]\nimage = \"x\"\n").canonical_json();
    assert_eq!(
        json,
        r#"{"envs":{"a":{"backend":"container","command":null,"cpu":null,"env":{},"ephemeral":false,"hostname":"a","image":"x","memory":null,"network":"none","pids":null,"stop_timeout_ms":10000,"user":null,"volumes":[],"workdir":null}}}"#
    );
}

#[test]
fn disk_is_in_the_json_only_when_set() {
    let json = ok("[env.a]\nimage = \"x\"\ndisk = \"32MiB\"\n").canonical_json();
    assert!(json.contains(r#""disk":33554432"#), "{json}");
    let without = ok("[env.a]\nimage = \"x\"\n");
    assert!(!without.canonical_json().contains("disk"));
    assert_ne!(
        ok("[env.a]\nimage = \"x\"\ndisk = \"32MiB\"\n").digest(),
        without.digest()
    );
}

#[test]
fn digest_ignores_layout_and_order() {
    let a = ok("[env.a]\nimage = \"x\"\ncpu = 2\nmemory = \"1GiB\"\n[env.b]\nimage = \"y\"\n");
    let b = ok(
        "# comment\nenv.b.image = 'y'\n[env.a]\nmemory = 1073741824\ncpu = 2.0\nimage = \"x\"\n",
    );
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert_eq!(a.digest(), b.digest());
    let d = a.digest();
    assert!(d.starts_with("blake3:"));
    assert_eq!(d.len(), "blake3:".len() + 64);

    let c = ok("[env.a]\nimage = \"x\"\ncpu = 3\nmemory = \"1GiB\"\n[env.b]\nimage = \"y\"\n");
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn unknown_json_fields_are_rejected() {
    let err = serde_json::from_str::<Spec>(r#"{"envs":{},"extra":1}"#);
    assert!(err.is_err());
}

/// The API reports an env's backend with its own enum: the same words, for every variant
/// of both.
#[test]
fn backend_words_match_the_api() {
    use verse_spec::Backend;
    let all = [Backend::Container, Backend::Vm, Backend::Gvisor];
    for backend in all {
        let wire = verse_api::Backend::from(backend);
        assert_eq!(wire.as_str(), backend.as_str());
        assert_eq!(
            serde_json::to_string(&wire).unwrap(),
            serde_json::to_string(&backend).unwrap()
        );
    }
    assert_eq!(verse_api::Backend::ALL.len(), all.len());
}
