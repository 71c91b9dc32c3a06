//! Hibernate and resume end to end with the real CRIU (container backend):
//! processes come back where they were, with what they held in memory, and
//! whatever CRIU or the shim cannot do is refused with the env left running.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// "SECRET COUNT" as the env's main process last wrote it.
fn state(verse: &Verse) -> (String, u64) {
    let (code, out, err) = verse.sh("keeper", "cat /tmp/state");
    assert_eq!(code, 0, "{err}");
    let mut words = out.split_whitespace();
    let secret = words.next().unwrap_or_default().to_string();
    let count = words.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    (secret, count)
}

// The secret lives only in the shell's memory (a variable, drawn at random
// when the process started): a fresh start would draw another one.
const KEEPER: &str = r#"[env.keeper]
image = "busybox"
command = ["sh", "-c", "s=$(cat /proc/sys/kernel/random/uuid); i=0; while true; do i=$((i+1)); echo $s $i > /tmp/state.new; mv /tmp/state.new /tmp/state; echo count $i; sleep 0.1; done"]
"#;

#[test]
fn hibernate_frees_the_env_and_resume_brings_its_processes_back_where_they_were() {
    if !can_run() || !have_criu() {
        return;
    }
    let verse = Verse::start();
    verse.apply(KEEPER);
    wait_for("the counter", || state(&verse).1 >= 3);
    let old_pid = verse.env("keeper")["pid"].as_u64().unwrap();

    let out = verse.ok(&["hibernate", "keeper"]);
    assert!(out.contains("keeper: hibernated"), "{out}");
    let env = verse.env("keeper");
    assert_eq!(env["state"], "hibernated");
    assert!(env["pid"].is_null());
    assert!(!pid_alive(old_pid), "the env's process still runs");
    assert!(
        verse.cgroup_dirs("keeper").is_empty(),
        "the env's cgroup outlived its processes"
    );
    assert!(verse.host_mounts().is_empty(), "{:?}", verse.host_mounts());
    assert!(
        verse.ok(&["ls"]).contains("hibernated"),
        "{}",
        verse.ok(&["ls"])
    );
    // The saved state: what the processes last wrote is still in the writable layer.
    let saved = std::fs::read_to_string(verse.env_dir("keeper").join("upper/tmp/state")).unwrap();
    let mut words = saved.split_whitespace();
    let (secret, count): (String, u64) = (
        words.next().unwrap().into(),
        words.next().unwrap().parse().unwrap(),
    );
    // Starting it afresh would lose the saved processes: refused.
    let up = verse.run(&["up", "keeper"]);
    assert!(!up.status.success());
    assert!(stderr(&up).contains("hibernated"), "{}", stderr(&up));

    let out = verse.ok(&["resume", "keeper"]);
    assert!(out.contains("keeper: running"), "{out}");
    let env = verse.env("keeper");
    assert_eq!(env["state"], "running");
    let new_pid = env["pid"].as_u64().unwrap();
    assert!(pid_alive(new_pid));
    // Back under the env's limits: in its cgroup (every hierarchy on v1).
    let dirs = verse.cgroup_dirs("keeper");
    assert!(!dirs.is_empty(), "no cgroup after resume");
    for dir in dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert!(
            procs.lines().any(|l| l.trim() == new_pid.to_string()),
            "restored pid {new_pid} not in {}: {procs}",
            dir.display()
        );
    }
    // Same secret (restored memory, not a restart) and the count goes on from
    // where it stopped instead of starting over at 1.
    wait_for("the counter to go on", || state(&verse).1 > count + 2);
    let (secret_after, _) = state(&verse);
    assert_eq!(
        secret_after, secret,
        "the process was restarted, not resumed"
    );
    // Its output still reaches the console log (through the new shim's pipe).
    let (_, now) = state(&verse);
    verse.wait_for_log("keeper", &format!("count {now}\n"), 10);
    assert!(verse.host_mounts().is_empty(), "{:?}", verse.host_mounts());
    assert!(!verse.env_dir("keeper").join("checkpoint").exists());
    let kinds = verse.ok(&["events", "--env", "keeper"]);
    assert!(
        kinds.contains("hibernated") && kinds.contains("resumed"),
        "{kinds}"
    );

    // Hibernate again and drop the saved processes: it is a stopped env that starts afresh.
    // CRIU's own limit on stopping the processes is passed through.
    verse.ok(&["hibernate", "keeper", "--timeout", "5s"]);
    verse.ok(&["hibernate", "--discard", "keeper"]);
    assert_eq!(verse.env("keeper")["state"], "stopped");
    verse.ok(&["up", "keeper"]);
    wait_for("a fresh counter", || {
        let (s, _) = state(&verse);
        !s.is_empty() && s != secret
    });
}

#[test]
fn hibernate_that_cannot_be_resumed_is_refused_with_the_reason_and_the_env_keeps_running() {
    if !can_run() || !have_criu() {
        return;
    }
    let verse = Verse::start();
    verse.apply(KEEPER);
    let pid = verse.env("keeper")["pid"].as_u64().unwrap();
    // An exec session holds the shim's pipes: a restore could not reconnect it.
    let mut session = verse
        .command(&["exec", "keeper", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    wait_for("the exec session", || {
        verse
            .sh("keeper", "ps | grep -v grep | grep -q 'sleep 30'")
            .0
            == 0
    });
    let out = verse.run(&["hibernate", "keeper"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot hibernate `keeper`")
            && err.contains("exec")
            && err.contains("keeps running"),
        "{err}"
    );
    let env = verse.env("keeper");
    assert_eq!(env["state"], "running");
    assert_eq!(env["pid"].as_u64(), Some(pid));
    assert!(!verse.env_dir("keeper").join("checkpoint").exists());
    assert!(!verse.env_dir("keeper").join("checkpoint.try").exists());
    let _ = session.kill();
    let _ = session.wait();
    let resume = verse.run(&["resume", "keeper"]);
    assert!(
        stderr(&resume).contains("not hibernated"),
        "{}",
        stderr(&resume)
    );
    let events = verse.ok(&["events", "--env", "keeper"]);
    assert!(events.contains("hibernate-refused"), "{events}");

    // --timeout takes a duration; a bad one is refused before anything happens.
    let bad = verse.run(&["hibernate", "keeper", "--timeout", "soon"]);
    assert!(
        stderr(&bad).contains("write e.g. \"30s\""),
        "{}",
        stderr(&bad)
    );
}
