//! Quarantined downloads and `verse copy`, with real files in real envs: an
//! EICAR test file, a zip bomb made here, a PDF named .txt, clean files, a
//! file still being written, symlinks planted by the env. Nothing lands
//! before its hold has passed; nothing is lost.

mod common;

use common::{Verse, backend_available, can_run, stderr, stdout};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const HOLD_SECS: i64 = 4;

/// The YARA scanner, built by scripts/test.sh (or named by VERSE_SCAN).
fn scanner() -> Option<PathBuf> {
    let path = std::env::var_os("VERSE_SCAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/verse-scan")
        });
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "no YARA scanner at {}; build it with `cargo build --release --manifest-path crates/verse-scan/Cargo.toml --target-dir target` (scripts/test.sh does)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {reason}");
    }
    eprintln!("\n!!! SKIPPED: {reason} !!!\n");
    None
}

fn start() -> Option<Verse> {
    if !can_run() {
        return None;
    }
    let scan = scanner()?;
    Some(Verse::start_with_env(&[(
        "VERSE_SCAN",
        scan.to_str().unwrap(),
    )]))
}

const SPEC: &str = r#"
[env.web]
image = "busybox"
downloads = "quarantine"
hold = "4s"
release_to = "home:/inbox"

[env.home]
image = "busybox"

[env.vault]
image = "busybox"

[copy]
"home -> web" = "allow"
"web -> home" = "quarantine"
"#;

fn items(verse: &Verse) -> Vec<serde_json::Value> {
    serde_json::from_str(&verse.ok(&["quarantine", "ls", "--json"])).unwrap()
}

fn item<'a>(items: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    items
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no quarantined {name} in {items:#?}"))
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn zip_bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("zeros.bin", options).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..300 {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn audit_actions(verse: &Verse) -> Vec<(String, String)> {
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["audit", "log", "--json"])).unwrap();
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn downloads_are_quarantined_scanned_held_and_released() {
    let Some(verse) = start() else { return };
    verse.apply(SPEC);

    let bomb = zip_bomb();
    // A writer that keeps its file open is waited for: the file is taken whole.
    let mut slow = verse
        .command(&[
            "exec",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "exec 3>/downloads/slow.txt; echo part >&3; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo rest >&3",
        ])
        .spawn()
        .unwrap();
    let (code, _, err) = verse.sh(
        "web",
        &format!(
            "printf 'chapter 3: the storm\\n' > /downloads/clean.txt && \
             printf '%s' '{EICAR}' > /downloads/eicar.com && \
             printf '%%PDF-1.4\\n1 0 obj\\n<< /Type /Catalog >>\\nendobj\\n' > /downloads/paper.txt && \
             ln -s /etc/passwd /downloads/link && mkdir /downloads/dir"
        ),
    );
    assert_eq!(code, 0, "{err}");
    let out = verse.run_with_input(
        &[
            "exec",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "cat > /downloads/bomb.zip",
        ],
        &bomb,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // While the writer holds the file open, it stays in the env, however
    // long it has not changed.
    wait_for("the other files to be taken", 20, || {
        items(&verse).len() >= 4
    });
    std::thread::sleep(Duration::from_millis(2500));
    let (_, listing, _) = verse.sh("web", "ls /downloads");
    assert!(listing.contains("slow.txt"), "taken while open: {listing}");
    verse.sh("web", "touch /tmp/go");
    assert!(slow.wait().unwrap().success());

    wait_for("five files in quarantine", 20, || items(&verse).len() >= 5);
    let all = items(&verse);
    assert_eq!(all.len(), 5, "{all:#?}");
    // Out of the env's reach: only what was not a regular file is left.
    let (_, listing, _) = verse.sh("web", "ls -a /downloads");
    let left: Vec<&str> = listing.split_whitespace().collect();
    assert_eq!(left, [".", "..", "dir", "link"], "{listing}");
    for i in &all {
        assert_eq!(i["env"], "web");
        let dir = verse
            .root()
            .join("var/lib/verse/quarantine")
            .join(i["id"].as_str().unwrap());
        if i["state"] == "held" {
            assert!(dir.join("content").is_file());
        } else {
            // Only a clean file whose hold passed may have moved on already.
            assert_eq!(i["state"], "released", "{i:#}");
            assert!(i["report"]["findings"].as_array().unwrap().is_empty());
            assert!(now() >= i["hold_until"].as_i64().unwrap());
        }
    }
    let findings = |name: &str| -> String {
        item(&all, name)["report"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert_eq!(findings("clean.txt"), "");
    assert_eq!(findings("slow.txt"), "");
    assert_eq!(
        item(&all, "slow.txt")["report"]["size"],
        10,
        "part and rest"
    );
    assert!(
        findings("eicar.com").contains("EICAR_Test_File"),
        "{}",
        findings("eicar.com")
    );
    assert!(
        findings("bomb.zip").contains("archive bomb"),
        "{}",
        findings("bomb.zip")
    );
    assert!(
        findings("paper.txt").contains("application/pdf"),
        "{}",
        findings("paper.txt")
    );

    let eicar_id = item(&all, "eicar.com")["id"].as_str().unwrap().to_string();
    let show = verse.ok(&["quarantine", "show", &eicar_id]);
    assert!(
        show.contains("FLAGGED") && show.contains("[yara]"),
        "{show}"
    );

    // Nothing lands early: the clean files appear in home only after their hold.
    let clean_hold = item(&all, "clean.txt")["hold_until"].as_i64().unwrap();
    assert!(clean_hold >= item(&all, "clean.txt")["received_at"].as_i64().unwrap() + HOLD_SECS);
    wait_for("clean.txt released to home", 20, || {
        let (code, _, _) = verse.sh("home", "test -f /inbox/clean.txt");
        if code == 0 {
            assert!(now() >= clean_hold, "landed before its hold passed");
            true
        } else {
            false
        }
    });
    wait_for("slow.txt released to home", 10, || {
        verse.sh("home", "test -f /inbox/slow.txt").0 == 0
    });
    let (_, text, _) = verse.sh(
        "home",
        "cat /inbox/clean.txt /inbox/slow.txt; ls -ln /inbox",
    );
    assert!(
        text.contains("chapter 3: the storm\npart\nrest\n"),
        "{text}"
    );
    // Flagged files wait, however long their hold has passed.
    std::thread::sleep(Duration::from_secs(2));
    let (_, inbox, _) = verse.sh("home", "ls /inbox");
    assert_eq!(
        inbox.split_whitespace().collect::<Vec<_>>(),
        ["clean.txt", "slow.txt"]
    );

    // A flagged file needs --force; a symlink planted at the destination is
    // not followed: the file gets a name of its own.
    let out = verse.run(&["quarantine", "release", &eicar_id, "--to", "home:/inbox"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs --force"), "{}", stderr(&out));
    verse.sh("home", "ln -s /etc/passwd /inbox/eicar.com");
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let out = verse.ok(&[
        "quarantine",
        "release",
        &eicar_id,
        "--to",
        "home:/inbox",
        "--force",
    ]);
    assert!(
        out.contains("home:/inbox/eicar (1).com") && out.contains("forced"),
        "{out}"
    );
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    let (_, text, _) = verse.sh("home", "cat '/inbox/eicar (1).com'");
    assert_eq!(text, EICAR);

    let bomb_id = item(&all, "bomb.zip")["id"].as_str().unwrap().to_string();
    let out = verse.ok(&["quarantine", "reject", &bomb_id]);
    assert!(out.contains("rejected"), "{out}");
    let out = verse.run(&["quarantine", "release", &bomb_id, "--to", "home", "--force"]);
    assert!(
        stderr(&out).contains("already rejected"),
        "{}",
        stderr(&out)
    );

    let all = items(&verse);
    let states: Vec<(String, String)> = all
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().into(),
                i["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, state) in [
        ("clean.txt", "released"),
        ("slow.txt", "released"),
        ("eicar.com", "released"),
        ("bomb.zip", "rejected"),
        ("paper.txt", "held"),
    ] {
        assert!(states.contains(&(name.into(), state.into())), "{states:?}");
    }

    let actions = audit_actions(&verse);
    let count = |a: &str| actions.iter().filter(|(x, _)| x == a).count();
    assert_eq!(count("quarantine-in"), 5, "{actions:#?}");
    assert_eq!(count("quarantine-release"), 3, "{actions:#?}");
    assert_eq!(count("quarantine-reject"), 1);
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "quarantine-release" && d.contains("FORCED"))
    );

    // Nothing is lost: a file still in /downloads when the env is removed
    // goes to quarantine first.
    let (code, _, err) = verse.sh("web", "echo last > /downloads/last.txt");
    assert_eq!(code, 0, "{err}");
    verse.ok(&["rm", "web"]);
    let all = items(&verse);
    assert!(all.iter().any(|i| i["name"] == "last.txt"), "{all:#?}");
    assert!(verse.daemon_log().contains("YARA scanner found"));
}

#[test]
fn copy_follows_the_policy_and_stays_inside_envs() {
    let Some(verse) = start() else { return };
    verse.apply(SPEC);
    let (code, _, err) = verse.sh(
        "home",
        "mkdir -p /work && echo notes > /work/notes.txt && ln -s /../../../../../etc/hostname /work/escape",
    );
    assert_eq!(code, 0, "{err}");

    // allow: written at once, owned by the env's user, never overwriting.
    let out = verse.ok(&["copy", "home:/work/notes.txt", "web:/incoming"]);
    assert!(out.contains("copied to web:/incoming/notes.txt"), "{out}");
    let out = verse.ok(&["copy", "home:/work/notes.txt", "web:/incoming"]);
    assert!(out.contains("web:/incoming/notes (1).txt"), "{out}");
    let (_, text, _) = verse.sh(
        "web",
        "cat /incoming/notes.txt; stat -c %u /incoming/notes.txt",
    );
    assert_eq!(text, "notes\n0\n");

    // A symlink in the source resolves inside the source env, never on the host.
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let out = verse.run(&["copy", "home:/work/escape", "web:/incoming"]);
    if out.status.success() {
        let (_, text, _) = verse.sh("web", "cat /incoming/escape");
        assert_ne!(text, host_hostname, "read the host's /etc/hostname");
    } else {
        assert!(
            stderr(&out).contains("cannot open /work/escape"),
            "{}",
            stderr(&out)
        );
    }

    // deny (the default for pairs the spec does not name): nothing written.
    let out = verse.run(&["copy", "web:/incoming/notes.txt", "vault"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("denied by the spec's [copy] policy"),
        "{}",
        stderr(&out)
    );
    assert_ne!(verse.sh("vault", "test -e /inbox").0, 0);

    // quarantine: scanned and held, then delivered to the target by itself.
    let (code, _, _) = verse.sh("web", "echo report > /incoming/report.txt");
    assert_eq!(code, 0);
    let out = verse.ok(&[
        "copy",
        "--json",
        "web:/incoming/report.txt",
        "home:/from-web",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["policy"], "quarantine");
    let held = &report["quarantined"];
    assert_eq!(held["target"], "home:/from-web");
    let hold_until = held["hold_until"].as_i64().unwrap();
    assert_ne!(verse.sh("home", "test -f /from-web/report.txt").0, 0);
    wait_for("the quarantined copy to land", 20, || {
        if verse.sh("home", "test -f /from-web/report.txt").0 == 0 {
            assert!(now() >= hold_until, "landed before its hold");
            true
        } else {
            false
        }
    });
    let (_, text, _) = verse.sh("home", "cat /from-web/report.txt");
    assert_eq!(text, "report\n");

    let actions = audit_actions(&verse);
    assert!(
        actions.iter().filter(|(a, _)| a == "copy").count() >= 3,
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "copy-denied" && d.contains("to=vault")),
        "{actions:#?}"
    );
    let out = verse.run(&["copy", "nowhere:/x", "home"]);
    assert!(
        stderr(&out).contains("no env named `nowhere`"),
        "{}",
        stdout(&out)
    );
}

/// vm envs: `vdl` (a vm, user 1000) has quarantined downloads released to
/// `vbox` (another vm); `home` is a container env. One daemon, two guests.
const VM_SPEC: &str = r#"
[env.vdl]
image = "busybox"
backend = "vm"
accel = "tcg"
user = "1000"
downloads = "quarantine"
hold = "4s"
release_to = "vbox:/inbox"

[env.vbox]
image = "busybox"
backend = "vm"
accel = "tcg"

[env.home]
image = "busybox"

[copy]
"home -> vdl" = "allow"
"vdl -> vbox" = "allow"
"vdl -> home" = "quarantine"
"vbox -> home" = "deny"
"#;

/// The bytes of `path` in `env`, as `cat` there gives them.
fn bytes_in(verse: &Verse, env: &str, path: &str) -> Vec<u8> {
    let out = verse.run(&["exec", env, "--", "cat", path]);
    assert!(out.status.success(), "{env}:{path}: {}", stderr(&out));
    out.stdout
}

#[test]
fn vm_envs_quarantine_downloads_and_copy_both_ways() {
    if !can_run() || !backend_available("vm") {
        return;
    }
    let Some(verse) = start() else { return };
    let applied = verse.apply(VM_SPEC);
    assert!(!applied.contains("FAILED"), "{applied}");

    // Downloads leave the guest into quarantine, with their verdicts.
    let clean = "chapter 4: the calm\n";
    let (code, _, err) = verse.sh(
        "vdl",
        &format!("printf '{clean}' > /downloads/clean.txt && printf '%s' '{EICAR}' > /downloads/eicar.com"),
    );
    assert_eq!(code, 0, "{err}");
    wait_for("both downloads in quarantine", 30, || {
        items(&verse).len() >= 2
    });
    let all = items(&verse);
    assert_eq!(all.len(), 2, "{all:#?}");
    let (_, listing, _) = verse.sh("vdl", "ls -a /downloads; stat -c %u /downloads");
    assert_eq!(
        listing.split_whitespace().collect::<Vec<_>>(),
        [".", "..", "1000"],
        "left in the guest: {listing}"
    );
    assert!(all.iter().all(|i| i["env"] == "vdl"), "{all:#?}");
    let findings = |name: &str| item(&all, name)["report"]["findings"].to_string();
    assert_eq!(findings("clean.txt"), "[]");
    assert!(
        findings("eicar.com").contains("EICAR_Test_File"),
        "{}",
        findings("eicar.com")
    );

    // The clean one lands in the other guest by itself, only after its hold.
    let hold_until = item(&all, "clean.txt")["hold_until"].as_i64().unwrap();
    wait_for("clean.txt released into vbox", 30, || {
        if verse.sh("vbox", "test -f /inbox/clean.txt").0 == 0 {
            assert!(now() >= hold_until, "landed before its hold passed");
            true
        } else {
            false
        }
    });
    assert_eq!(
        bytes_in(&verse, "vbox", "/inbox/clean.txt"),
        clean.as_bytes()
    );
    // The flagged one waits for --force.
    let eicar_id = item(&all, "eicar.com")["id"].as_str().unwrap().to_string();
    let out = verse.run(&["quarantine", "release", &eicar_id, "--to", "vbox:/inbox"]);
    assert!(stderr(&out).contains("needs --force"), "{}", stderr(&out));
    assert_ne!(verse.sh("vbox", "test -e /inbox/eicar.com").0, 0);
    let out = verse.ok(&[
        "quarantine",
        "release",
        &eicar_id,
        "--to",
        "vbox:/inbox",
        "--force",
    ]);
    assert!(out.contains("vbox:/inbox/eicar.com"), "{out}");
    assert_eq!(
        bytes_in(&verse, "vbox", "/inbox/eicar.com"),
        EICAR.as_bytes()
    );

    // Copies, byte for byte: every byte value, over many frames.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = verse.run_with_input(
        &[
            "exec",
            "home",
            "--",
            "/bin/sh",
            "-c",
            "mkdir -p /work && cat > /work/data.bin",
        ],
        &data,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // container -> vm (allow): written as the guest env's user.
    let out = verse.ok(&["copy", "home:/work/data.bin", "vdl:/tmp/in"]);
    assert!(out.contains("copied to vdl:/tmp/in/data.bin"), "{out}");
    let out = verse.ok(&["copy", "home:/work/data.bin", "vdl:/tmp/in"]);
    assert!(out.contains("vdl:/tmp/in/data (1).bin"), "{out}");
    assert_eq!(bytes_in(&verse, "vdl", "/tmp/in/data.bin"), data);
    let (_, owner, _) = verse.sh("vdl", "stat -c '%u:%g %a' /tmp/in/data.bin /tmp/in");
    assert_eq!(owner, "1000:1000 644\n1000:1000 755\n");
    // vm -> vm (allow).
    let out = verse.ok(&["copy", "vdl:/tmp/in/data.bin", "vbox:/from-vdl"]);
    assert!(out.contains("copied to vbox:/from-vdl/data.bin"), "{out}");
    assert_eq!(bytes_in(&verse, "vbox", "/from-vdl/data.bin"), data);
    assert_eq!(verse.sh("vbox", "stat -c %u /from-vdl/data.bin").1, "0\n");
    // vm -> container (quarantine): held, then delivered.
    let out = verse.ok(&["copy", "--json", "vdl:/tmp/in/data.bin", "home:/from-vdl"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["policy"], "quarantine");
    let hold_until = report["quarantined"]["hold_until"].as_i64().unwrap();
    assert_ne!(verse.sh("home", "test -e /from-vdl/data.bin").0, 0);
    wait_for("the quarantined copy to land in home", 30, || {
        if verse.sh("home", "test -f /from-vdl/data.bin").0 == 0 {
            assert!(now() >= hold_until, "landed before its hold");
            true
        } else {
            false
        }
    });
    assert_eq!(bytes_in(&verse, "home", "/from-vdl/data.bin"), data);
    // vm -> container (deny): nothing written.
    let out = verse.run(&["copy", "vbox:/from-vdl/data.bin", "home:/denied"]);
    assert!(
        stderr(&out).contains("denied by the spec's [copy] policy"),
        "{}",
        stderr(&out)
    );
    assert_ne!(verse.sh("home", "test -e /denied").0, 0);
    // A guest path that is not a regular file is refused with its name.
    let out = verse.run(&["copy", "vdl:/tmp", "vbox"]);
    assert!(
        stderr(&out).contains("/tmp is not a regular file"),
        "{}",
        stderr(&out)
    );

    let actions = audit_actions(&verse);
    let count = |a: &str| actions.iter().filter(|(x, _)| x == a).count();
    assert_eq!(count("quarantine-in"), 2, "{actions:#?}");
    assert!(count("copy") >= 4, "{actions:#?}");
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "copy-denied" && d.contains("from=vbox:")),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "quarantine-release" && d.contains("to=vbox:/inbox/clean.txt auto")),
        "{actions:#?}"
    );

    // Nothing is lost: what is in a vm env's /downloads when it is removed
    // goes to quarantine first.
    let (code, _, err) = verse.sh("vdl", "echo last > /downloads/last.txt");
    assert_eq!(code, 0, "{err}");
    verse.ok(&["rm", "vdl"]);
    let all = items(&verse);
    assert!(
        all.iter()
            .any(|i| i["name"] == "last.txt" && i["env"] == "vdl"),
        "{all:#?}"
    );
}
