//! Envs over time: exec, persistence, daemon crashes, removal, one-off runs.

mod common;
use common::*;

const SPEC: &str = r#"
[env.keep]
image = "busybox"

[env.scratch]
image = "busybox"
ephemeral = true
"#;

#[test]
fn exec_streams_stdio_and_returns_the_exit_code() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let (code, out, err) = verse.sh("keep", "echo out; echo err >&2; exit 42");
    assert_eq!((code, out.as_str(), err.as_str()), (42, "out\n", "err\n"));
    let out = verse.run_with_input(&["exec", "keep", "--", "tr", "a-z", "A-Z"], b"shout\n");
    assert_eq!(stdout(&out), "SHOUT\n");
    assert_eq!(out.status.code(), Some(0));
    let big = vec![b'x'; 3 << 20];
    let out = verse.run_with_input(&["exec", "keep", "--", "wc", "-c"], &big);
    assert_eq!(
        stdout(&out).trim(),
        (3 << 20).to_string(),
        "3 MiB of stdin did not arrive whole"
    );
    let out = verse.run(&[
        "exec",
        "-t",
        "keep",
        "--",
        "/bin/sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo tty; t=$(tty) && [ -c \"$t\" ] && echo \"named $t\"",
    ]);
    assert!(
        stdout(&out).contains("tty"),
        "-t gave no terminal: {}",
        stdout(&out)
    );
    // The terminal is one of the env's own /dev/pts: programs can look it up by name.
    assert!(
        stdout(&out).contains("named /dev/pts/"),
        "the terminal has no name inside the env: {}",
        stdout(&out)
    );
    let out = verse.run(&["exec", "keep", "--", "/no/such/program"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/no/such/program"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn writes_persist_across_down_and_up_but_not_for_ephemeral_envs() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    for env in ["keep", "scratch"] {
        let (code, _, err) = verse.sh(env, "echo kept > /root/note");
        assert_eq!(code, 0, "{err}");
        assert!(verse.ok(&["down", env]).contains("stopped"));
        assert!(verse.ok(&["up", env]).contains("running"));
    }
    assert_eq!(verse.sh("keep", "cat /root/note").1, "kept\n");
    let (code, _, _) = verse.sh("scratch", "cat /root/note");
    assert_ne!(code, 0, "an ephemeral env kept its writes across down/up");
}

#[test]
fn envs_survive_a_killed_daemon_and_are_reattached() {
    if !can_run() {
        return;
    }
    let mut verse = Verse::start();
    verse.apply(SPEC);
    verse.sh("keep", "echo before > /tmp/state");
    let pid = verse.env("keep")["pid"].as_u64().unwrap();
    verse.kill_daemon();
    assert!(pid_alive(pid), "the env died with the daemon");
    verse.start_daemon();
    let env = verse.env("keep");
    assert_eq!(env["state"], "running");
    assert_eq!(
        env["pid"].as_u64(),
        Some(pid),
        "a new env was started instead of reattaching"
    );
    assert_eq!(verse.sh("keep", "cat /tmp/state").1, "before\n");
    assert!(
        verse.daemon_log().contains("reattached"),
        "{}",
        verse.daemon_log()
    );
}

#[test]
fn rm_leaves_no_mount_cgroup_process_or_directory() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    verse.sh("keep", "sleep 1000 & echo started");
    let pid = verse.env("keep")["pid"].as_u64().unwrap();
    assert!(
        !verse.cgroup_dirs("keep").is_empty(),
        "no cgroup found for a running env"
    );
    // Every process of the env, as the host sees them in its cgroups.
    let env_pids: Vec<u64> = verse
        .cgroup_dirs("keep")
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        env_pids.len() >= 3,
        "expected init, sleep and more in the env's cgroup: {env_pids:?}"
    );
    assert!(verse.ok(&["rm", "keep"]).contains("removed"));
    assert!(!pid_alive(pid), "the env's init outlived rm");
    assert!(
        verse.cgroup_dirs("keep").is_empty(),
        "cgroups left: {:?}",
        verse.cgroup_dirs("keep")
    );
    assert!(!verse.env_dir("keep").exists(), "env directory left behind");
    assert!(
        verse.host_mounts().is_empty(),
        "mounts left: {:?}",
        verse.host_mounts()
    );
    assert!(verse.envs().iter().all(|e| e["name"] != "keep"));
    let leftover: Vec<u64> = env_pids.into_iter().filter(|p| pid_alive(*p)).collect();
    assert!(
        leftover.is_empty(),
        "processes of the env left: {leftover:?}"
    );
}

#[test]
fn run_rm_runs_a_one_off_command_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let out = verse.run(&[
        "run",
        "--rm",
        "busybox",
        "--",
        "/bin/sh",
        "-c",
        "echo one-off; exit 7",
    ]);
    assert_eq!(stdout(&out), "one-off\n");
    assert_eq!(out.status.code(), Some(7));
    assert!(
        verse.envs().is_empty(),
        "run --rm left an env: {:?}",
        verse.envs()
    );
    let envs_dir = verse.root().join("var/lib/verse/envs");
    assert_eq!(
        std::fs::read_dir(&envs_dir).unwrap().count(),
        0,
        "run --rm left a directory"
    );
    // The writable layer is deleted right after the exit code is sent.
    let trash = verse.root().join("var/lib/verse/trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_dir(&trash).map_or(0, |d| d.count()) > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_dir(&trash).map_or(0, |d| d.count()),
        0,
        "run --rm left its layer in the trash"
    );
    assert!(verse.host_mounts().is_empty());
    let out = verse.run_with_input(&["run", "--rm", "busybox", "--", "cat"], b"piped through\n");
    assert_eq!(stdout(&out), "piped through\n");
}

#[test]
fn run_with_a_name_keeps_the_env_its_state_and_its_logs() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let out = verse.run(&[
        "run",
        "--name",
        "job",
        "busybox",
        "--",
        "/bin/sh",
        "-c",
        "echo to the log; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let env = verse.env("job");
    assert_eq!(env["state"], "failed");
    assert_eq!(env["exit_code"], 3);
    assert_eq!(verse.ok(&["logs", "job"]), "to the log\n");
    let out = verse.run(&["run", "--name", "job", "busybox", "--", "true"]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn logs_follow_streams_new_output_until_the_env_stops() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(
        r#"
[env.talker]
image = "busybox"
command = ["/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
"#,
    );
    let follower = verse
        .command(&["logs", "-f", "talker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    verse.ok(&["down", "talker"]);
    let out = follower.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("tick 0") && text.contains("tick 2"), "{text}");
    assert!(
        text.contains("bye"),
        "the last words before stopping are missing: {text}"
    );
}

#[test]
fn the_cli_says_plainly_when_no_daemon_runs_and_daemons_run_side_by_side() {
    if !can_run() {
        return;
    }
    let a = Verse::start();
    let b = Verse::start();
    a.apply(SPEC);
    assert_eq!(a.envs().len(), 2);
    assert!(b.envs().is_empty(), "two roots share state");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(VERSE)
        .args(["ls"])
        .env("VERSE_ROOT", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no Verse daemon is running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn up_down_and_rm_take_several_envs_and_go_on_past_a_failure() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.a]\nimage = \"busybox\"\n\n[env.b]\nimage = \"busybox\"\n");
    let out = verse.ok(&["down", "a", "b"]);
    assert_eq!(out, "a: stopped\nb: stopped\n");
    let out = verse.ok(&["up", "a", "b"]);
    assert_eq!(out, "a: running\nb: running\n");
    let out = verse.run(&["rm", "a", "nosuch", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "a: removed\nb: removed\n");
    assert!(
        stderr(&out).contains("nosuch: error: no env named `nosuch`"),
        "{}",
        stderr(&out)
    );
    assert!(verse.envs().is_empty());
}
