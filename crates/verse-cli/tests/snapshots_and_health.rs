//! Lifecycle end to end: pause, snapshots and restore, events, diff, restart
//! policies, health checks and fallback; real daemons, real envs.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn events(verse: &Verse, env: &str) -> Vec<serde_json::Value> {
    verse
        .ok(&["events", "--json", "--env", env])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kinds(verse: &Verse, env: &str) -> Vec<String> {
    events(verse, env)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pause_freezes_every_process_and_unpause_lets_them_run() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(
        r#"
[env.tick]
image = "busybox"
command = "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"
"#,
    );
    let read = || {
        verse
            .sh("tick", "cat /tmp/n")
            .1
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    wait_for("the counter to start", Duration::from_secs(5), || {
        read() > 0
    });
    assert!(verse.ok(&["pause", "tick"]).contains("paused"));
    assert_eq!(verse.env("tick")["state"], "paused");
    let counter = verse.env_dir("tick").join("upper/tmp/n");
    let frozen = std::fs::read_to_string(&counter).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        frozen,
        "the counter moved while the env was paused"
    );
    let out = verse.run(&["exec", "tick", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    let again = verse.run(&["pause", "tick"]);
    assert!(
        stderr(&again).contains("already paused"),
        "{}",
        stderr(&again)
    );
    assert!(verse.ok(&["unpause", "tick"]).contains("running"));
    let before: u64 = frozen.trim().parse().unwrap();
    wait_for("the counter to move again", Duration::from_secs(5), || {
        read() > before
    });
    // A paused env still stops promptly (it is thawed to get its signal).
    verse.ok(&["pause", "tick"]);
    let started = Instant::now();
    assert!(verse.ok(&["down", "tick"]).contains("stopped"));
    assert!(started.elapsed() < Duration::from_secs(8));
    let kinds = kinds(&verse, "tick");
    for kind in ["created", "started", "paused", "unpaused", "stopped"] {
        assert!(
            kinds.contains(&kind.to_string()),
            "no {kind} event in {kinds:?}"
        );
    }
}

#[test]
fn snapshot_and_restore_bring_back_files_deletions_owners_and_opaque_dirs() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.box]\nimage = \"busybox\"\n");
    let (code, _, err) = verse.sh(
        "box",
        "echo one > /root/f && chown 1000:1000 /root/f && rm /bin/ls && rm -rf /etc && mkdir /etc && echo x > /etc/only",
    );
    assert_eq!(code, 0, "{err}");
    let out = verse.ok(&["snapshot", "box", "before"]);
    assert!(out.contains("snapshot s1 \"before\""), "{out}");
    verse.sh(
        "box",
        "echo two > /root/f && mkdir /new && touch /etc/more && echo back > /bin/ls",
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["snapshots", "box", "--json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["label"], "before");

    assert!(verse.ok(&["restore", "box", "before"]).contains("running"));
    let (_, out, _) = verse.sh(
        "box",
        "cat /root/f; stat -c %u:%g /root/f; ls /etc; ls /new 2>&1; ls /bin/ls 2>&1",
    );
    assert!(out.starts_with("one\n1000:1000\nonly\n"), "{out}");
    assert!(out.contains("/new: No such file"), "{out}");
    assert!(out.contains("/bin/ls: No such file"), "{out}");

    // Unknown snapshots are named; removal works; a second snapshot shares data.
    let bad = verse.run(&["restore", "box", "nope"]);
    assert!(
        stderr(&bad).contains("no snapshot `nope`"),
        "{}",
        stderr(&bad)
    );
    let second: serde_json::Value =
        serde_json::from_str(&verse.ok(&["snapshot", "box", "--json"])).unwrap();
    assert_eq!(second["id"], "s2");
    assert_eq!(
        second["new_bytes"], 0,
        "an unchanged writable layer stored new bytes: {second}"
    );
    verse.ok(&["snapshot", "rm", "box", "s1"]);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["snapshots", "box", "--json"])).unwrap();
    assert_eq!(list.len(), 1);
    let kinds = kinds(&verse, "box");
    for kind in ["snapshot", "restored", "snapshot-removed"] {
        assert!(
            kinds.contains(&kind.to_string()),
            "no {kind} event in {kinds:?}"
        );
    }
}

#[test]
fn snapshot_with_volumes_brings_the_volume_back_and_one_without_leaves_it_alone() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let data = verse.root().join("voldata");
    std::fs::create_dir_all(&data).unwrap();
    let spec = verse.write_spec(
        "vol.toml",
        &format!(
            "[env.vol]\nimage = \"busybox\"\nvolumes = {{ \"/data\" = \"{}\" }}\n",
            data.display()
        ),
    );
    verse.ok(&["apply", spec.to_str().unwrap()]);
    // Let the env's root (the start of its own host id range) write there.
    let base = verse.env("vol")["host_id_base"].as_u64().unwrap() as u32;
    std::os::unix::fs::chown(&data, Some(base), Some(base)).unwrap();
    let (code, _, err) = verse.sh(
        "vol",
        "echo kept > /data/a && mkdir /data/d && echo deep > /data/d/b && echo layer > /root/l",
    );
    assert_eq!(code, 0, "{err}");
    let out = verse.ok(&["snapshot", "vol", "withvol", "--volumes"]);
    assert!(out.contains("with volumes /data"), "{out}");
    let list = verse.ok(&["snapshots", "vol"]);
    assert!(list.contains("VOLUMES"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains("withvol") && l.contains("/data")),
        "{list}"
    );

    // Change, delete and add in the volume (from inside), and in the layer.
    let (code, _, err) = verse.sh(
        "vol",
        "echo changed > /data/a && rm -rf /data/d && echo new > /data/n && echo other > /root/l",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("a")).unwrap(),
        "changed\n"
    );
    // The store's gc keeps what the snapshot's volume needs.
    verse.ok(&["image", "gc"]);
    assert!(verse.ok(&["restore", "vol", "withvol"]).contains("running"));
    assert_eq!(std::fs::read_to_string(data.join("a")).unwrap(), "kept\n");
    assert_eq!(std::fs::read_to_string(data.join("d/b")).unwrap(), "deep\n");
    assert!(
        !data.join("n").exists(),
        "a file made after the snapshot survived"
    );
    let (code, out, err) = verse.sh("vol", "cat /data/a /data/d/b /root/l && ls /data");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "kept\ndeep\nlayer\na\nd\n");
    // The env still owns (and can write) its restored volume; nothing is left beside it.
    let (code, _, err) = verse.sh("vol", "echo again > /data/w");
    assert_eq!(code, 0, "the restored volume is not writable: {err}");
    let siblings: Vec<String> = std::fs::read_dir(verse.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("voldata"))
        .collect();
    assert_eq!(siblings, ["voldata"]);

    // Without --volumes, the volume is left as it is now.
    let plain: serde_json::Value =
        serde_json::from_str(&verse.ok(&["snapshot", "vol", "plain", "--json"])).unwrap();
    assert_eq!(plain["volumes"], serde_json::json!([]));
    verse.sh("vol", "echo later > /data/a && echo later > /root/l");
    verse.ok(&["restore", "vol", "plain"]);
    let (_, out, _) = verse.sh("vol", "cat /data/a /root/l");
    assert_eq!(
        out, "later\nlayer\n",
        "the plain snapshot touched the volume"
    );
    // A snapshot of volumes the env does not have is refused by name.
    verse.apply("[env.bare]\nimage = \"busybox\"\n");
    let bad = verse.run(&["snapshot", "bare", "--volumes"]);
    assert!(
        stderr(&bad).contains("no read-write volumes"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn diff_tells_live_from_restart_and_live_changes_keep_the_env_running() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.web]\nimage = \"busybox\"\nmemory = \"128MiB\"\n");
    let pid = verse.env("web")["pid"].as_u64().unwrap();
    let live = verse.write_spec(
        "live.toml",
        "[env.web]\nimage = \"busybox\"\nmemory = \"256MiB\"\n",
    );
    let out = verse.ok(&["diff", live.to_str().unwrap()]);
    assert!(out.contains("web update (live, no restart)"), "{out}");
    assert!(out.contains("memory") && out.contains("[live]"), "{out}");
    let restart = verse.write_spec(
        "restart.toml",
        "[env.web]\nimage = \"busybox\"\nmemory = \"256MiB\"\nhostname = \"other\"\n",
    );
    let out = verse.ok(&["diff", restart.to_str().unwrap()]);
    assert!(out.contains("web update (needs a restart)"), "{out}");
    assert!(
        out.contains("hostname") && out.contains("[restart]"),
        "{out}"
    );
    // diff changes nothing.
    assert_eq!(verse.env("web")["memory"], 128 << 20);

    verse.ok(&["apply", live.to_str().unwrap()]);
    let env = verse.env("web");
    assert_eq!(
        env["pid"].as_u64(),
        Some(pid),
        "a live change restarted the env"
    );
    assert_eq!(env["memory"], 256 << 20);
    let limit = verse
        .cgroup_dirs("web")
        .into_iter()
        .find_map(|d| {
            ["memory.max", "memory.limit_in_bytes"]
                .iter()
                .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
        })
        .expect("the env's memory cgroup");
    assert_eq!(limit.trim(), (256u64 << 20).to_string());
}

#[test]
fn restart_on_failure_restarts_with_backoff_and_says_why() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(
        r#"
[env.flaky]
image = "busybox"
restart = "on-failure"
command = "echo run >> /root/runs; exit 3"

[env.done]
image = "busybox"
restart = "on-failure"
command = "exit 0"
"#,
    );
    wait_for("two restarts", Duration::from_secs(15), || {
        kinds(&verse, "flaky")
            .iter()
            .filter(|k| *k == "started")
            .count()
            >= 3
    });
    let events = events(&verse, "flaky");
    let restarting: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "restarting")
        .collect();
    assert!(
        restarting[0]["cause"].as_str().unwrap().contains("1000 ms")
            && restarting[1]["cause"].as_str().unwrap().contains("2000 ms"),
        "backoff does not double: {restarting:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "failed" && e["cause"].as_str().unwrap().contains("code 3")),
        "{events:?}"
    );
    // A clean exit is not restarted under on-failure.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        kinds(&verse, "done")
            .iter()
            .filter(|k| *k == "started")
            .count(),
        1
    );
    // The user's `down` wins over the policy.
    verse.ok(&["down", "flaky"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(verse.env("flaky")["state"], "running");
}

#[test]
fn a_change_that_fails_its_health_check_falls_back_to_the_previous_definition() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let good = r#"
[env.app]
image = "busybox"
command = "touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"
env = { VERSION = "1" }
health = { command = "test -f /tmp/ready", interval = "200ms", timeout = "1s", retries = 2, grace = "30s" }
"#;
    verse.apply(good);
    wait_for("app healthy", Duration::from_secs(10), || {
        verse.env("app")["health"] == "healthy"
    });
    let bad = good
        .replace("touch /tmp/ready; ", "")
        .replace("VERSION = \"1\"", "VERSION = \"2\"")
        .replace("test -f /tmp/ready", "rm -f /tmp/ready; test -f /tmp/ready");
    verse.apply(&bad);
    wait_for("the fallback", Duration::from_secs(20), || {
        verse.env("app")["note"]
            .as_str()
            .is_some_and(|n| n.contains("fell back"))
    });
    wait_for("app running again", Duration::from_secs(10), || {
        verse.env("app")["state"] == "running"
    });
    assert_eq!(verse.sh("app", "echo $VERSION").1, "1\n");
    let ls = verse.ok(&["ls"]);
    assert!(
        ls.contains("note: app: fell back to generation 1's definition"),
        "{ls}"
    );
    let events = events(&verse, "app");
    let fallback = events
        .iter()
        .find(|e| e["kind"] == "fallback")
        .expect("a fallback event");
    assert!(
        fallback["cause"].as_str().unwrap().contains("health check"),
        "{fallback}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "health" && e["cause"].as_str().unwrap().starts_with("unhealthy")),
        "{events:?}"
    );
}

#[test]
fn events_follow_streams_new_events_as_they_happen() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.e]\nimage = \"busybox\"\n");
    let mut follower = verse
        .command(&["events", "-f", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    verse.ok(&["pause", "e"]);
    verse.ok(&["unpause", "e"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = follower.kill();
    let out = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["created", "started", "paused", "unpaused"],
        "{text}"
    );
}

#[test]
fn bad_lifecycle_keys_are_reported_where_they_are() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let path = verse.write_spec(
        "bad.toml",
        "[env.x]\nimage = \"busybox\"\nrestart = \"sometimes\"\nhealth = { interval = \"1s\" }\n",
    );
    let out = verse.run(&["apply", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("bad.toml:3:11"), "{err}");
    assert!(err.contains("\"on-failure\""), "{err}");
    assert!(err.contains("missing required key `command`"), "{err}");
    assert!(verse.envs().is_empty());
}

/// The size of the env's root filesystem as it sees it, in KiB.
fn root_kib(verse: &Verse, env: &str) -> u64 {
    let (_, df, _) = verse.sh(env, "df -k / | tail -1");
    df.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_env_with_a_disk_keeps_it_across_stop_start_snapshot_restore_and_resize() {
    if !can_run() || !loops_usable() {
        return;
    }
    let verse = Verse::start();
    let spec = |disk: &str| format!("[env.box]\nimage = \"busybox\"\ndisk = \"{disk}\"\n");
    verse.apply(&spec("32MiB"));
    let env_dir = verse.env_dir("box");
    let (code, _, err) = verse.sh("box", "echo one > /root/f && rm /bin/ls");
    assert_eq!(code, 0, "{err}");
    assert!(env_dir.join("disk/upper/root/f").is_file());
    assert!(!env_dir.join("upper").exists(), "a layer outside the disk");

    // Stop and start: the disk stays mounted, the files stay.
    verse.ok(&["down", "box"]);
    verse.ok(&["up", "box"]);
    let (_, out, _) = verse.sh("box", "cat /root/f; ls /bin/ls 2>&1");
    assert!(out.starts_with("one\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");

    // Snapshot, change, restore: the swap is renames on the disk.
    verse.ok(&["snapshot", "box", "before"]);
    verse.sh("box", "echo two > /root/f && mkdir /new");
    assert!(verse.ok(&["restore", "box", "before"]).contains("running"));
    let (_, out, _) = verse.sh("box", "cat /root/f; ls -d /new 2>&1");
    assert!(out.starts_with("one\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");

    // Growing on apply: restarted on a larger disk, files kept.
    let small = root_kib(&verse, "box");
    verse.apply(&spec("64MiB"));
    let large = root_kib(&verse, "box");
    assert!(large > small + 16 * 1024, "{small} KiB -> {large} KiB");
    let (_, out, _) = verse.sh("box", "cat /root/f");
    assert_eq!(out.trim(), "one");

    // Shrinking below what is in use is refused and changes nothing.
    let (code, _, err) = verse.sh("box", "dd if=/dev/zero of=/big bs=1M count=40");
    assert_eq!(code, 0, "{err}");
    let pid = verse.env("box")["pid"].clone();
    let path = verse.write_spec("verse.toml", &spec("32MiB"));
    let out = verse.run(&["apply", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("shrinking it to"), "{text}");
    assert_eq!(verse.env("box")["pid"], pid, "the env was restarted");
    assert_eq!(root_kib(&verse, "box"), large);

    // Removing `disk` from an env that wrote to it is refused too.
    let path = verse.write_spec("verse.toml", "[env.box]\nimage = \"busybox\"\n");
    let out = verse.run(&["apply", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("removing `disk`"), "{text}");
    assert_eq!(verse.env("box")["pid"], pid);

    // Ephemeral with a disk: writes go at stop, the disk stays.
    verse.apply("[env.box]\nimage = \"busybox\"\ndisk = \"64MiB\"\n[env.tmp]\nimage = \"busybox\"\ndisk = \"16MiB\"\nephemeral = true\n");
    verse.sh("tmp", "echo gone > /root/f");
    verse.ok(&["down", "tmp"]);
    verse.ok(&["up", "tmp"]);
    let (_, out, _) = verse.sh("tmp", "cat /root/f 2>&1");
    assert!(out.contains("No such file"), "{out}");

    verse.ok(&["rm", "box"]);
    verse.ok(&["rm", "tmp"]);
    assert!(
        verse.host_mounts().iter().all(|m| !m.contains("/envs/")),
        "{:?}",
        verse.host_mounts()
    );
}
