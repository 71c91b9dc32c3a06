//! The audit log as a user sees it: every act of a real daemon recorded in
//! order, `verse audit verify` naming the record someone changed, exported
//! checkpoints, and the root-only local socket.

mod common;
use common::*;
use std::path::PathBuf;

fn records(verse: &Verse, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "log", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&verse.ok(&all)).unwrap()
}

fn actions(records: &[serde_json::Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["env"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

fn log_path(verse: &Verse) -> PathBuf {
    verse.root().join("var/lib/verse/audit/audit.log")
}

#[test]
fn every_act_is_recorded_and_tampering_is_named() {
    if !can_run() {
        return;
    }
    let mut verse = Verse::start();
    verse.apply("[env.novel]\nimage = \"busybox\"\n");
    verse.sh("novel", "true");
    verse.ok(&["down", "novel"]);
    verse.ok(&["up", "novel"]);
    verse.ok(&["run", "--rm", "busybox", "--", "true"]);
    verse.ok(&["rm", "novel"]);

    let all = records(&verse, &[]);
    let got = actions(&all);
    let want: Vec<(String, String)> = [
        ("image-import", "-"),
        ("apply", "-"),
        ("create", "novel"),
        ("exec", "novel"),
        ("stop", "novel"),
        ("start", "novel"),
    ]
    .iter()
    .map(|(a, e)| (a.to_string(), e.to_string()))
    .collect();
    assert_eq!(got[..6], want[..], "{all:#?}");
    assert_eq!(got[6].0, "run");
    assert_eq!(got[7], ("rm".into(), "novel".into()));
    assert!(all.iter().all(|r| r["actor"] == "local:uid=0"), "{all:#?}");
    assert_eq!(all[3]["detail"], r#"argv=["/bin/sh","-c","true"]"#);
    let novel = records(&verse, &["--env", "novel"]);
    assert_eq!(novel.len(), 5, "{novel:#?}");

    // The host key exists and is private.
    use std::os::unix::fs::PermissionsExt;
    let key = verse.root().join("etc/verse/host.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = verse.ok(&["audit", "verify"]);
    assert!(out.starts_with("ok: 8 records"), "{out}");
    let exported = verse.root().join("checkpoint.json");
    let out = verse.ok(&[
        "audit",
        "checkpoint",
        "--export",
        exported.to_str().unwrap(),
    ]);
    assert!(out.contains("signed record 8"), "{out}");
    let out = verse.ok(&[
        "audit",
        "verify",
        "--checkpoint",
        exported.to_str().unwrap(),
    ]);
    assert!(out.contains("2 signed checkpoint(s) match"), "{out}");

    // Someone edits record 4 to hide what was run.
    let original = std::fs::read_to_string(log_path(&verse)).unwrap();
    std::fs::write(log_path(&verse), original.replace("/bin/sh", "/bin/ls")).unwrap();
    let out = verse.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("record 4 (line 4) was changed"),
        "{}",
        stdout(&out)
    );
    // Someone removes the tail: only the checkpoints can tell.
    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(log_path(&verse), lines[..6].join("\n") + "\n").unwrap();
    let out = verse.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("records 7 to 8 were removed from the end"),
        "{}",
        stdout(&out)
    );
    std::fs::write(log_path(&verse), &original).unwrap();

    // A restarted daemon continues the same chain, and a copy verifies offline.
    verse.kill_daemon();
    verse.start_daemon();
    verse.ok(&[
        "image",
        "import",
        "again",
        busybox_rootfs().to_str().unwrap(),
    ]);
    let all = records(&verse, &[]);
    assert_eq!(all.len(), 9);
    assert_eq!(all[8]["prev"], all[7]["hash"]);
    let copy = tempfile::tempdir().unwrap();
    for f in ["audit.log", "checkpoints.log"] {
        std::fs::copy(log_path(&verse).with_file_name(f), copy.path().join(f)).unwrap();
    }
    let out = verse.ok(&[
        "audit",
        "verify",
        "--dir",
        copy.path().to_str().unwrap(),
        "--checkpoint",
        exported.to_str().unwrap(),
    ]);
    assert!(out.starts_with("ok: 9 records"), "{out}");
}

#[test]
fn the_local_socket_refuses_non_root_peers_even_if_its_modes_are_loosened() {
    if !can_run() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let verse = Verse::start();
    let run = verse.root().join("run/verse");
    let as_nobody = || {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                VERSE,
                "ls",
            ])
            .env("VERSE_ROOT", verse.root())
            .output()
            .unwrap()
    };
    let out = as_nobody();
    assert_ne!(
        out.status.code(),
        Some(0),
        "nobody reached the root-only socket"
    );
    // Loosen every mode on the way: SO_PEERCRED still refuses.
    for dir in [
        verse.root().to_path_buf(),
        verse.root().join("run"),
        run.clone(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        run.join("verse.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("root-only; this client runs as uid 65534"),
        "{}",
        stderr(&out)
    );
    verse.ok(&["ls"]);
}
