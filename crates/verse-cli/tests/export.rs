//! `verse image export` on one daemon and `verse image import` on another (different
//! VERSE_ROOTs): same manifest hash, signatures still valid, the trust policy satisfied, the
//! env runs with whiteouts and opaque dirs intact; an altered archive is refused.

mod common;

use common::{Verse, can_run, stderr};

const SPEC: &str = r#"
[image.app]
base = "busybox"
files = { "/etc/app.conf" = "port = 80" }
run = ["mkdir -p /srv/old && echo x > /srv/old/x", "rm /etc/motd && rm -rf /srv/old && mkdir /srv/old && echo y > /srv/old/y"]
workdir = "/srv"
"#;

fn inspect(v: &Verse, name: &str) -> serde_json::Value {
    serde_json::from_str(&v.ok(&["image", "inspect", name, "--json"])).unwrap()
}

#[test]
fn export_import_between_daemons_keeps_manifest_and_signatures() {
    if !can_run() {
        return;
    }
    let a = Verse::start();
    let b = Verse::start();
    let file = a.write_spec("verse.toml", SPEC);
    a.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    let key = a.root().join("k.key");
    let public = a.ok(&["key", "generate", "--out", key.to_str().unwrap()]);
    let public = public.trim();
    a.ok(&["image", "sign", "app", "--key", key.to_str().unwrap()]);
    let archive = b.root().join("app.oci.tar");
    let out = a.ok(&["image", "export", "app", archive.to_str().unwrap()]);
    assert!(
        out.contains("4 layers") && out.contains("1 signature(s)"),
        "{out}"
    );

    let out = b.ok(&["image", "import", "moved", archive.to_str().unwrap()]);
    assert!(out.contains("imported moved"), "{out}");
    let (da, db) = (inspect(&a, "app"), inspect(&b, "moved"));
    assert_eq!(da["info"]["manifest"], db["info"]["manifest"]);
    assert_eq!(da["layers"], db["layers"], "roots and inputs survive");
    assert_eq!(db["workdir"], "/srv");
    assert_eq!(db["signatures"][0]["key"], public);
    assert_eq!(db["signatures"][0]["valid"], true);
    assert!(b.ok(&["image", "verify", "moved"]).starts_with("ok: image"));

    let spec = format!(
        "[trust]\nrequire_signed = true\nkeys = [\"{public}\"]\n\n[env.m]\nimage = \"moved\"\nstop_timeout = \"100ms\"\n"
    );
    b.apply(&spec);
    let (code, out, err) = b.sh(
        "m",
        "pwd; ls /srv/old; test -e /etc/motd || echo no-motd; cat /etc/app.conf",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/srv\ny\nno-motd\nport = 80");

    // An archive whose verse manifest names other layers than it carries is refused.
    let bytes = std::fs::read(&archive).unwrap();
    let top = db["layers"][3]["root"].as_str().unwrap();
    let other = db["layers"][2]["root"].as_str().unwrap();
    let needle = format!("{{\"root\":\"{top}\"");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("manifest.json in the tar");
    let mut altered = bytes.clone();
    altered[at + 9..at + 9 + 64].copy_from_slice(other.as_bytes());
    let bad = b.root().join("altered.tar");
    std::fs::write(&bad, altered).unwrap();
    let out = b.run(&["image", "import", "altered", bad.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("layer 4") && err.contains("the archive was altered"),
        "{err}"
    );
    assert!(!b.ok(&["image", "ls"]).contains("altered"));
}
