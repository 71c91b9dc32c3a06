//! What an env can see and do: namespaces, limits, and the operations the
//! sandbox must refuse.

mod common;
use common::*;

const SPEC: &str = r#"
[env.iso]
image = "busybox"
hostname = "island"
memory = "48MiB"
pids = 32
env = { GREETING = "hello" }
"#;

#[test]
fn pid_1_is_the_envs_own_command_and_host_processes_are_invisible() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let (code, cmdline, _) = verse.sh("iso", "tr '\\0' ' ' < /proc/1/cmdline");
    assert_eq!(code, 0);
    assert!(
        cmdline.starts_with("/bin/sh -c trap"),
        "PID 1 is not the env's command: {cmdline}"
    );
    let (_, pids, _) = verse.sh("iso", "ls -d /proc/[0-9]* | wc -l");
    let count: usize = pids.trim().parse().unwrap();
    assert!(
        count < 8,
        "the env sees {count} processes; it should see only its own"
    );
    let daemon_pid = verse.daemon_pid();
    let (code, _, _) = verse.sh("iso", &format!("test -e /proc/{daemon_pid}"));
    // The host pid of the daemon either does not exist in the env's pid
    // namespace or, by coincidence of numbering, is one of the env's own.
    if code == 0 {
        let (_, comm, _) = verse.sh("iso", &format!("cat /proc/{daemon_pid}/comm"));
        assert_ne!(comm.trim(), "verse", "the daemon is visible inside the env");
    }
}

#[test]
fn the_env_has_its_own_hostname_network_and_mounts() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let (_, hostname, _) = verse.sh("iso", "hostname");
    assert_eq!(hostname.trim(), "island");
    let (_, links, _) = verse.sh("iso", "ls /sys/class/net");
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "interfaces other than lo are visible"
    );
    let (code, _, _) = verse.sh(
        "iso",
        "ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 || ip link show lo | grep -q UP",
    );
    assert_eq!(code, 0, "loopback is not up");
    let (_, mounts, _) = verse.sh("iso", "cat /proc/self/mountinfo");
    for host_only in ["/sys/fs/cgroup/memory", "/work", "/boot"] {
        assert!(
            !mounts.contains(&format!(" {host_only} ")),
            "host mount {host_only} is visible:\n{mounts}"
        );
    }
    let (_, greeting, _) = verse.sh("iso", "echo $GREETING");
    assert_eq!(greeting.trim(), "hello");
    // Root inside is not root outside: files it creates belong to the mapped range.
    verse.sh("iso", "touch /root/made-inside");
    let made = verse.env_dir("iso").join("upper/root/made-inside");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&made).unwrap());
    let base = verse.env("iso")["host_id_base"].as_u64().unwrap() as u32;
    assert!(
        base > 100_000_000,
        "a new env has a range of its own: {base}"
    );
    assert_eq!(owner, base, "env root maps to host uid {owner}");
}

#[test]
fn privileged_operations_fail_inside() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let refused = [
        ("mount", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t"),
        ("unshare -U", "unshare -U true"),
        ("unshare -m", "unshare -m true"),
        ("load a module", "echo junk > /tmp/x.ko && insmod /tmp/x.ko"),
        ("write /proc/sys", "echo 1 > /proc/sys/kernel/sysrq"),
        ("sysrq-trigger", "echo h > /proc/sysrq-trigger"),
        ("raw socket", "ping -c1 -W1 127.0.0.1"),
        ("read kcore", "head -c1 /proc/kcore | wc -c | grep -q 1"),
        ("mknod a disk", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda"),
        (
            "set the clock",
            "date -s 2000-01-01 >/dev/null 2>&1; [ \"$(date +%Y)\" = 2000 ]",
        ),
    ];
    for (what, script) in refused {
        let (code, out, err) = verse.sh("iso", script);
        assert_ne!(
            code, 0,
            "`{what}` succeeded inside the env ({script}): {out}{err}"
        );
    }
    let (_, status, _) = verse.sh(
        "iso",
        "grep -E '^(NoNewPrivs|Seccomp|CapEff)' /proc/self/status",
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff")).unwrap();
    let caps = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_NET_RAW: u64 = 1 << 13;
    const CAP_SYS_MODULE: u64 = 1 << 16;
    assert_eq!(
        caps & (CAP_SYS_ADMIN | CAP_NET_RAW | CAP_SYS_MODULE),
        0,
        "dangerous capabilities kept: {cap_eff}"
    );
}

#[test]
fn memory_limit_kills_the_hog_inside_and_the_env_lives_on() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    // `tail` keeps the whole newline-free stream in memory: far over 48 MiB.
    let (code, _, _) = verse.sh("iso", "head -c 300m /dev/zero | tail > /dev/null");
    assert_ne!(code, 0, "a 300 MiB hog completed under a 48 MiB limit");
    let (code, out, _) = verse.sh("iso", "echo still here");
    assert_eq!((code, out.trim()), (0, "still here"));
    assert_eq!(verse.env("iso")["state"], "running");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    // Counting with a glob and echo needs no fork, so it works at the limit.
    // The bomb runs in a subshell: a shell whose fork fails gives up.
    let bomb = "(i=0; while [ $i -lt 100 ]; do sleep 2 & i=$((i+1)); done) 2>/tmp/err; \
                set -- /proc/[0-9]*; echo $#; while read -r line; do echo \"$line\" >&2; done < /tmp/err";
    let (_, count, err) = verse.sh("iso", bomb);
    assert!(
        err.contains("fork") || err.contains("resource"),
        "no fork failure reported: {err}"
    );
    let count: usize = count.trim().parse().unwrap();
    assert!(count <= 32, "{count} processes under a limit of 32");
    // Once the sleeps end, the env is usable again.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (code, out, _) = verse.sh("iso", "echo recovered");
    assert_eq!((code, out.trim()), (0, "recovered"));
}

#[test]
fn the_declared_user_runs_the_main_process_and_execs() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.plain]\nimage = \"busybox\"\nuser = \"1000\"\nworkdir = \"/home/user\"\n");
    let (_, uid_of_init, _) = verse.sh("plain", "awk '/^Uid:/ {print $2}' /proc/1/status");
    assert_eq!(uid_of_init.trim(), "1000");
    let (_, who, _) = verse.sh("plain", "id -u; pwd");
    assert_eq!(who, "1000\n/home/user\n");
    let (code, _, _) = verse.sh("plain", "touch /root/not-mine");
    assert_ne!(code, 0, "uid 1000 wrote into root's home");
    // Signals behave as in a fresh process: SIGPIPE ends `yes` once `head` is done.
    let (code, out, _) = verse.sh("plain", "yes | head -n 2");
    assert_eq!((code, out.as_str()), (0, "y\ny\n"));
}

/// /dev/shm is 64 MiB unless the spec's `shm` says (browsers want more).
#[test]
fn dev_shm_has_the_declared_size() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(
        "[env.small]\nimage = \"busybox\"\n\n[env.big]\nimage = \"busybox\"\nshm = \"256MiB\"\n",
    );
    let size_kib = |env: &str| {
        let (code, out, err) = verse.sh(env, "df -k /dev/shm | tail -1");
        assert_eq!(code, 0, "{err}");
        out.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(size_kib("small"), "65536");
    assert_eq!(size_kib("big"), "262144");
}
