//! Every container env has a host uid/gid range of its own, while image files stay
//! shared checkouts (presented to each env through idmapped mounts): what a security
//! reviewer would check from the host, and that the image still looks right inside.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const ID_BASE: u32 = 100_000_000;
const RANGE: u32 = 65_536;

fn base(verse: &Verse, env: &str) -> u32 {
    let info = verse.env(env);
    info["host_id_base"]
        .as_u64()
        .unwrap_or_else(|| panic!("no host_id_base for {env}: {info:#}")) as u32
}

/// Real, effective, saved and fs uid of a host process, from /proc/PID/status.
fn host_uids(pid: u64) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(|w| w.parse().unwrap())
        .collect()
}

fn owner(path: &Path) -> (u32, u32) {
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (md.uid(), md.gid())
}

/// `ls -ln PATH` inside `env`: (uid, gid) columns.
fn owner_inside(verse: &Verse, env: &str, path: &str) -> (String, String) {
    let (code, out, err) = verse.sh(env, &format!("ls -lnd {path}"));
    assert_eq!(code, 0, "ls -ln {path} in {env}: {err}");
    let cols: Vec<&str> = out.split_whitespace().collect();
    (cols[2].to_string(), cols[3].to_string())
}

#[test]
fn two_envs_get_distinct_ranges_and_both_see_the_shared_image_as_their_own() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let shared = verse.root().join("shared");
    std::fs::create_dir(&shared).unwrap();
    // Writable by anyone, so each env's root may create files there.
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spec = format!(
        "[env.alpha]\nimage = \"busybox\"\nvolumes = {{ \"/shared\" = \"{0}\" }}\n\n[env.beta]\nimage = \"busybox\"\nvolumes = {{ \"/shared\" = \"{0}\" }}\n",
        shared.display()
    );
    verse.apply(&spec);
    let (a, b) = (base(&verse, "alpha"), base(&verse, "beta"));
    assert!(a >= ID_BASE + RANGE && b >= ID_BASE + RANGE, "{a} {b}");
    assert!(a.abs_diff(b) >= RANGE, "ranges overlap: {a} and {b}");

    for (env, base) in [("alpha", a), ("beta", b)] {
        // From the host: the env's processes run as its own range's root.
        let pid = verse.env(env)["pid"].as_u64().unwrap();
        assert_eq!(host_uids(pid), vec![base; 4], "{env} pid {pid}");
        let (code, out, _) = verse.sh(env, "sleep 0.1 & cat /proc/$!/status | grep ^Uid; wait");
        assert_eq!(code, 0);
        assert!(out.contains("\t0\t0\t0\t0"), "{env}: {out}");
        // Inside: the image's files belong to the env's root, readable and runnable.
        assert_eq!(
            owner_inside(&verse, env, "/bin/busybox"),
            ("0".into(), "0".into())
        );
        assert_eq!(owner_inside(&verse, env, "/etc"), ("0".into(), "0".into()));
        let (code, out, err) = verse.sh(env, "id -u; echo more >> /etc/motd && cat /etc/motd");
        assert_eq!(code, 0, "{env}: {err}");
        assert!(out.starts_with("0\n"), "{out}");
        // What it writes (a new file, and a copied-up image file) is owned by its range.
        verse.sh(env, "touch /root/mine; chown 1000:1000 /root/mine");
        let upper = verse.env_dir(env).join("upper");
        assert_eq!(owner(&upper.join("root/mine")), (base + 1000, base + 1000));
        assert_eq!(owner(&upper.join("etc/motd")), (base, base));
        assert_eq!(owner(&upper), (base, base));
    }

    // The checkout both envs share was not copied nor re-owned.
    let checkouts = verse.root().join("var/lib/verse/store/checkouts");
    let farms: Vec<_> = std::fs::read_dir(&checkouts)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".state"))
        .collect();
    assert!(
        farms.iter().all(|n| n.ends_with(&format!("-{ID_BASE}"))),
        "checkouts per range: {farms:?}"
    );
    for farm in &farms {
        let busybox = checkouts.join(farm).join("bin/busybox");
        if busybox.exists() {
            assert_eq!(owner(&busybox), (ID_BASE, ID_BASE));
        }
    }

    // A file alpha's root writes in a volume both mount is not beta's to change.
    let (code, _, err) = verse.sh(
        "alpha",
        "echo from-alpha > /shared/a && chmod 644 /shared/a",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(owner(&shared.join("a")), (a, a));
    assert_eq!(
        owner_inside(&verse, "beta", "/shared/a"),
        ("65534".into(), "65534".into())
    );
    let (code, _, err) = verse.sh("beta", "echo from-beta >> /shared/a");
    assert_ne!(code, 0, "beta's root wrote alpha's file");
    assert!(err.contains("denied"), "{err}");
    let (code, _, _) = verse.sh("beta", "chmod 666 /shared/a");
    assert_ne!(code, 0, "beta's root changed the mode of alpha's file");
    assert_eq!(
        std::fs::read_to_string(shared.join("a")).unwrap(),
        "from-alpha\n"
    );
}

#[test]
fn a_slot_is_kept_across_restarts_and_reused_after_rm() {
    if !can_run() {
        return;
    }
    let mut verse = Verse::start();
    verse.apply("[env.one]\nimage = \"busybox\"\n\n[env.two]\nimage = \"busybox\"\n");
    let (one, two) = (base(&verse, "one"), base(&verse, "two"));
    assert_ne!(one, two);

    verse.ok(&["down", "one"]);
    verse.ok(&["up", "one"]);
    assert_eq!(base(&verse, "one"), one, "restart changed the range");
    verse.kill_daemon();
    verse.start_daemon();
    assert_eq!(base(&verse, "one"), one, "daemon restart changed the range");
    assert_eq!(base(&verse, "two"), two);
    let pid = verse.env("one")["pid"].as_u64().unwrap();
    assert_eq!(host_uids(pid)[0], one);
    let (code, _, err) = verse.sh("one", "echo again > /root/again");
    assert_eq!(code, 0, "{err}");

    // `one` goes; the next new env takes its range (the lowest free one).
    verse.apply("[env.two]\nimage = \"busybox\"\n");
    verse.apply("[env.two]\nimage = \"busybox\"\n\n[env.three]\nimage = \"busybox\"\n");
    assert_eq!(base(&verse, "three"), one, "the freed range was not reused");
    assert_eq!(base(&verse, "two"), two);
    // It starts afresh: nothing of `one` is in its layer.
    let (code, _, _) = verse.sh("three", "test -e /root/again");
    assert_ne!(code, 0);
    let pid = verse.env("three")["pid"].as_u64().unwrap();
    assert_eq!(host_uids(pid)[0], one);
}

#[test]
fn snapshot_restore_and_copy_keep_files_in_the_envs_range() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(
        "[env.src]\nimage = \"busybox\"\n\n[env.dst]\nimage = \"busybox\"\n\n[copy]\n\"src -> dst\" = \"allow\"\n",
    );
    let (src, dst) = (base(&verse, "src"), base(&verse, "dst"));
    let (code, _, err) = verse.sh(
        "src",
        "echo v1 > /root/f && chown 1000:1001 /root/f && rm /etc/hostname",
    );
    assert_eq!(code, 0, "{err}");
    verse.ok(&["snapshot", "src", "before"]);
    verse.sh(
        "src",
        "echo v2 > /root/f; chown 0:0 /root/f; echo back > /etc/hostname",
    );
    verse.ok(&["restore", "src", "before"]);
    let upper = verse.env_dir("src").join("upper");
    assert_eq!(owner(&upper.join("root/f")), (src + 1000, src + 1001));
    assert_eq!(owner(&upper.join("root")), (src, src));
    assert_eq!(owner(&upper), (src, src));
    assert_eq!(owner(&verse.env_dir("src").join("work")), (src, src));
    let (code, out, _) = verse.sh("src", "cat /root/f; ls -ln /root/f; test -e /etc/hostname");
    assert_ne!(code, 0, "the deleted image file came back: {out}");
    assert!(out.starts_with("v1\n"), "{out}");
    assert!(out.contains(" 1000 ") && out.contains(" 1001 "), "{out}");
    // The restored env can write its files as before.
    let (code, _, err) = verse.sh("src", "echo v3 >> /root/f && mkdir /root/new");
    assert_eq!(code, 0, "{err}");

    // A copy lands owned by the target env's root, in the target's range.
    verse.ok(&["copy", "src:/root/f", "dst"]);
    let copied = verse.env_dir("dst").join("upper/inbox/f");
    assert_eq!(owner(&copied), (dst, dst));
    assert_eq!(
        owner_inside(&verse, "dst", "/inbox/f"),
        ("0".into(), "0".into())
    );
}

#[test]
fn hibernate_and_resume_keep_the_envs_range() {
    if !can_run() || !have_criu() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.first]\nimage = \"busybox\"\n\n[env.sleeper]\nimage = \"busybox\"\ncommand = [\"sh\", \"-c\", \"echo $$ > /tmp/pid; while true; do sleep 0.1; done\"]\n");
    let base = base(&verse, "sleeper");
    assert!(base > ID_BASE + RANGE, "{base}");
    verse.ok(&["hibernate", "sleeper"]);
    verse.ok(&["resume", "sleeper"]);
    let pid = verse.env("sleeper")["pid"].as_u64().unwrap();
    assert_eq!(host_uids(pid), vec![base; 4]);
    assert_eq!(
        owner_inside(&verse, "sleeper", "/bin/busybox"),
        ("0".into(), "0".into())
    );
    let (code, out, err) = verse.sh("sleeper", "cat /tmp/pid; echo after > /root/after");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1", "not the restored PID 1's file");
    let upper = verse.env_dir("sleeper").join("upper");
    assert_eq!(owner(&upper.join("root/after")), (base, base));
}

#[test]
fn an_env_made_before_per_env_ranges_keeps_id_base() {
    if !can_run() {
        return;
    }
    let mut verse = Verse::start();
    verse.apply("[env.old]\nimage = \"busybox\"\n");
    verse.sh("old", "echo kept > /root/kept");
    verse.ok(&["down", "old"]);
    verse.kill_daemon();
    // What an older daemon left: no slot in the row, a layer owned by ID_BASE.
    let db = rusqlite::Connection::open(verse.root().join("var/lib/verse/state.db")).unwrap();
    db.execute("UPDATE envs SET id_slot = NULL WHERE name = 'old'", [])
        .unwrap();
    drop(db);
    let st = std::process::Command::new("chown")
        .args(["-R", &format!("{ID_BASE}:{ID_BASE}")])
        .arg(verse.env_dir("old").join("upper"))
        .arg(verse.env_dir("old").join("work"))
        .status()
        .unwrap();
    assert!(st.success());
    verse.start_daemon();
    verse.ok(&["up", "old"]);
    assert_eq!(base(&verse, "old"), ID_BASE);
    let pid = verse.env("old")["pid"].as_u64().unwrap();
    assert_eq!(host_uids(pid)[0], ID_BASE);
    let (code, out, err) = verse.sh("old", "cat /root/kept && echo more >> /root/kept");
    assert_eq!((code, out.as_str()), (0, "kept\n"), "{err}");
    assert_eq!(
        owner_inside(&verse, "old", "/bin/busybox"),
        ("0".into(), "0".into())
    );
    // A new env still gets a range of its own.
    verse.apply("[env.old]\nimage = \"busybox\"\n\n[env.new]\nimage = \"busybox\"\n");
    assert_eq!(base(&verse, "new"), ID_BASE + RANGE);
}
