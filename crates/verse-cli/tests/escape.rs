//! The escape and abuse suite: known container escapes tried from inside a
//! real env, each asserting that the attempt fails AND that the host is
//! unchanged afterwards (the files, mounts and processes the attack aims at).
//! What is not limited (volumes, which are host directories) is said in
//! docs/security.md rather than asserted here.

mod common;
use common::*;
use std::path::Path;

const SPEC: &str = r#"
[env.jail]
image = "busybox"
pids = 64
memory = "64MiB"
"#;

/// Runs each script inside `env`; every one must fail.
fn all_fail(verse: &Verse, env: &str, attempts: &[(&str, &str)]) {
    for (what, script) in attempts {
        let (code, out, err) = verse.sh(env, script);
        assert_ne!(
            code, 0,
            "`{what}` succeeded inside the env ({script}): {out}{err}"
        );
    }
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Host files an escape would write, with their content now.
fn host_files() -> Vec<(std::path::PathBuf, Option<Vec<u8>>)> {
    let mut files = vec![
        "/proc/sys/kernel/core_pattern".into(),
        "/sys/kernel/uevent_helper".into(),
        "/proc/sys/kernel/modprobe".into(),
    ];
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            files.push(h.path().join("release_agent"));
        }
    }
    files
        .into_iter()
        .map(|f: std::path::PathBuf| {
            let c = read(&f);
            (f, c)
        })
        .collect()
}

#[test]
fn cgroup_release_agent_core_pattern_and_sys_writes_fail() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let before = host_files();
    all_fail(
        &verse,
        "jail",
        &[
            // The 2022 release_agent escape (CVE-2022-0492): mount a v1
            // hierarchy, set release_agent, make a cgroup empty.
            (
                "mount cgroup v1",
                "mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg",
            ),
            (
                "mount cgroup v1 rdma",
                "mkdir -p /tmp/cg2 && mount -t cgroup -o rdma cgroup /tmp/cg2",
            ),
            (
                "write a visible release_agent",
                "ok=1; for f in /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent; do [ -e \"$f\" ] && echo /tmp/x > \"$f\" && ok=0; done; exit $ok",
            ),
            (
                "notify_on_release",
                "ok=1; for f in /sys/fs/cgroup/*/notify_on_release; do [ -e \"$f\" ] && echo 1 > \"$f\" && ok=0; done; exit $ok",
            ),
            (
                "core_pattern",
                "echo '|/tmp/x' > /proc/sys/kernel/core_pattern",
            ),
            ("modprobe path", "echo /tmp/x > /proc/sys/kernel/modprobe"),
            ("uevent_helper", "echo /tmp/x > /sys/kernel/uevent_helper"),
            ("remount /sys rw", "mount -o remount,rw /sys"),
            ("remount /proc/sys rw", "mount -o remount,rw /proc/sys"),
            ("sysfs write", "echo 1 > /sys/kernel/mm/ksm/run"),
            (
                "procfs sysctl",
                "echo 0 > /proc/sys/kernel/randomize_va_space",
            ),
        ],
    );
    for (path, content) in before {
        assert_eq!(
            read(&path),
            content,
            "{} changed on the host",
            path.display()
        );
    }
}

#[test]
fn proc_self_exe_cannot_overwrite_the_runtime_or_the_image() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let verse_bin = std::fs::read(VERSE).unwrap();
    // CVE-2019-5736: write through /proc/PID/exe of a process that entered
    // the env from the host. Every process an exec can see is tried, while
    // a second exec is running, with both a write and a reopen.
    let (code, out, err) = verse.sh(
        "jail",
        "sleep 2 & ok=1; for p in /proc/[0-9]*; do \
           (echo pwned >> $p/exe) 2>/dev/null && ok=0; \
           (cp /bin/busybox $p/exe) 2>/dev/null && ok=0; \
         done; exit $ok",
    );
    assert_ne!(code, 0, "a /proc/PID/exe write succeeded: {out}{err}");
    assert_eq!(
        std::fs::read(VERSE).unwrap(),
        verse_bin,
        "the verse binary changed"
    );
    // The image's files are untouched: its layer still verifies.
    let out = verse.ok(&["image", "verify", "busybox"]);
    assert!(out.starts_with("ok:"), "{out}");
    let (code, out, _) = verse.sh("jail", "echo alive");
    assert_eq!((code, out.trim()), (0, "alive"));
}

#[test]
fn block_devices_are_absent_and_cannot_be_made_or_mounted() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let mounts_before = verse.host_mounts();
    let (_, devices, _) = verse.sh("jail", "find /dev -type b");
    assert_eq!(
        devices.trim(),
        "",
        "block devices visible inside: {devices}"
    );
    all_fail(
        &verse,
        "jail",
        &[
            (
                "mknod the first disk",
                "mknod /tmp/sda b 8 0 && head -c 512 /tmp/sda > /dev/null",
            ),
            (
                "mknod a virtio disk",
                "mknod /tmp/vda b 253 0 && head -c 512 /tmp/vda > /dev/null",
            ),
            ("mount a disk", "mkdir -p /mnt/d && mount /dev/sda1 /mnt/d"),
            (
                "mount a loop device",
                "mknod /tmp/loop0 b 7 0 && mount /tmp/loop0 /mnt",
            ),
            ("debugfs", "mount -t debugfs none /mnt"),
        ],
    );
    assert_eq!(verse.host_mounts(), mounts_before, "host mounts changed");
}

#[test]
fn host_processes_cannot_be_seen_signalled_or_traced() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let daemon = verse.daemon_pid();
    let (_, pids, _) = verse.sh("jail", "ls -d /proc/[0-9]* | wc -l");
    let count: u32 = pids.trim().parse().unwrap();
    assert!(count < 20, "{count} processes visible: the host's leak in");
    assert!(
        daemon > count,
        "pid numbers overlap; cannot tell (daemon {daemon})"
    );
    all_fail(
        &verse,
        "jail",
        &[
            ("see the daemon", &format!("[ -e /proc/{daemon} ]")),
            ("signal the daemon", &format!("kill -0 {daemon}")),
            ("kill the daemon", &format!("kill -9 {daemon}")),
            // ptrace needs a handle on the process: /proc/PID/mem is the one a
            // busybox env has. Its own init is traceable only with CAP_SYS_PTRACE
            // across the pid-ns boundary, which it lacks.
            (
                "read the daemon's memory",
                &format!("head -c1 /proc/{daemon}/mem"),
            ),
            (
                "join the host's namespaces",
                "nsenter -t 1 -m -u -i -n -p true && [ \"$(hostname)\" != jail ]",
            ),
        ],
    );
    assert!(
        Path::new(&format!("/proc/{daemon}")).exists(),
        "the daemon died"
    );
    verse.ok(&["ls"]);
}

#[test]
fn symlinked_volume_paths_do_not_lead_to_the_host() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let data = verse.root().join("data");
    let victim = verse.root().join("victim");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), "host file").unwrap();
    // The env plants a symlink to a host path where a volume will go...
    verse.apply("[env.vol]\nimage = \"busybox\"\n");
    let (code, out, err) = verse.sh(
        "vol",
        &format!("ln -s {} /srv && [ -L /srv ]", victim.display()),
    );
    assert_eq!(code, 0, "could not plant the symlink: {out}{err}");
    // ...and the owner later declares one there, not knowing.
    let spec = verse.write_spec(
        "vol.toml",
        &format!(
            "[env.vol]\nimage = \"busybox\"\nvolumes = {{ \"/srv/data\" = \"{}\" }}\n",
            data.display()
        ),
    );
    let applied = verse.run(&["apply", spec.to_str().unwrap()]);
    // The update restarts the env: it must refuse, or mount inside the env.
    let _ = applied;
    // And plant a symlink inside the volume pointing at the host's victim.
    std::os::unix::fs::symlink(&victim, data.join("link")).ok();
    verse.ok(&["down", "vol"]);
    let mounts_before = verse.host_mounts();
    let up = verse.run(&["up", "vol"]);
    // Whether the restart succeeds or refuses, nothing reached the host.
    let victim_mounted = verse.host_mounts().iter().any(|m| {
        m.split_whitespace()
            .nth(4)
            .is_some_and(|p| p.starts_with(victim.to_str().unwrap()))
    });
    assert!(
        !victim_mounted,
        "the volume was mounted onto the host path {}",
        victim.display()
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("keep")).unwrap(),
        "host file"
    );
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        1,
        "something was written into the host path"
    );
    if up.status.success() {
        // Writes through the planted link land inside the env, not on the host.
        verse.sh(
            "vol",
            "echo pwned > /srv/data/link/owned; echo pwned > /srv/owned; true",
        );
        assert!(
            !victim.join("owned").exists(),
            "a write reached the host through a symlink"
        );
    } else {
        let err = stderr(&up);
        assert!(!err.is_empty(), "refused without a word");
        assert_eq!(
            verse.host_mounts().len(),
            mounts_before.len(),
            "a refused start left mounts: {err}"
        );
    }
}

#[test]
fn the_host_api_socket_is_not_reachable_and_raw_sockets_are_refused() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(SPEC);
    let socket = verse.socket();
    let (_, found, _) = verse.sh("jail", "find / -xdev -type s 2>/dev/null");
    assert!(
        !found.contains("verse.sock"),
        "the API socket is visible: {found}"
    );
    all_fail(
        &verse,
        "jail",
        &[
            (
                "reach the socket by its host path",
                &format!("[ -S {} ]", socket.display()),
            ),
            (
                "walk up out of the root",
                "cd / && cd .. && cd .. && [ -d run/verse ]",
            ),
            ("raw ICMP socket", "ping -c1 -W1 127.0.0.1"),
            ("ARP from inside", "arping -c1 -w1 -I lo 127.0.0.1"),
            (
                "a listening socket on the host's loopback",
                "nc -w1 127.0.0.1 22 < /dev/null",
            ),
        ],
    );
    verse.ok(&["ls"]);
}

/// An env whose command prints 64 MiB as fast as it can, under a 256 KiB cap.
const CHATTER: &str = r#"
[env.chatter]
image = "busybox"
log_max = "256KiB"
command = "yes flood-flood-flood | head -c 67108864; echo done-flooding; trap 'exit 0' TERM; while :; do sleep 1; done"
"#;

#[test]
fn floods_are_contained() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply(&format!("{SPEC}{CHATTER}"));
    // Log flood: 64 MiB printed, at most log_max kept on the host, and the
    // newest lines are the ones kept.
    let log = verse.wait_for_log("chatter", "done-flooding", 120);
    let on_disk = verse.log_bytes_on_disk("chatter");
    assert!(
        on_disk <= 256 << 10,
        "{on_disk} bytes of console log on the host under log_max = 256KiB"
    );
    assert!(
        on_disk >= 128 << 10 && log.contains("flood-flood-flood\n"),
        "the log was rotated away instead of kept: {on_disk} bytes"
    );
    assert_eq!(verse.env("chatter")["state"], "running");
    // Fork flood: stopped at pids = 64, and the host keeps forking.
    let (_, count, _) = verse.sh(
        "jail",
        "(i=0; while [ $i -lt 300 ]; do sleep 3 & i=$((i+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo $#",
    );
    let count: usize = count.trim().parse().unwrap();
    assert!(count <= 64, "{count} processes under pids = 64");
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    // Memory flood: the hog dies, the env and the host live on.
    let (code, _, _) = verse.sh("jail", "head -c 500m /dev/zero | tail > /dev/null");
    assert_ne!(code, 0, "a 500 MiB hog completed under 64 MiB");
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let (code, out, _) = verse.sh("jail", "echo alive");
    assert_eq!((code, out.trim()), (0, "alive"));
    assert_eq!(verse.env("jail")["state"], "running");
}

/// Bytes in use on the filesystem holding `path`.
fn host_used(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bytes the host's filesystem holds for a file (a sparse image: what was written).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// Loop devices whose backing file lies under `dir`.
fn loops_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| f.starts_with(&dir))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn disk_flood_is_contained_by_the_env_disk() {
    if !can_run() || !loops_usable() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.full]\nimage = \"busybox\"\ndisk = \"32MiB\"\n");
    let env_dir = verse.env_dir("full");
    let image = env_dir.join("disk.img");
    let before = host_used(verse.root());
    // 256 MiB into a 32 MiB disk: ENOSPC inside, the host holds at most the disk.
    let (code, _, err) = verse.sh("full", "dd if=/dev/zero of=/fill bs=1M count=256");
    assert_ne!(code, 0, "256 MiB fitted in a 32 MiB disk");
    assert!(err.contains("No space left on device"), "{err}");
    let grown = host_used(verse.root()).saturating_sub(before);
    assert!(
        allocated(&image) <= 32 * MIB,
        "the image holds {} bytes",
        allocated(&image)
    );
    // Other tests share this filesystem: a loose bound (without the disk, 256 MiB).
    assert!(
        grown < 128 * MIB,
        "the host's filesystem grew by {grown} bytes"
    );
    // The env sees its disk's size as its root's.
    let (_, df, _) = verse.sh("full", "df -k / | tail -1");
    let total: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(total * 1024 <= 32 * MIB, "{df}");

    // Deleting the file frees the disk and, with discard, the host's space.
    let (code, out, err) = verse.sh("full", "rm /fill && echo ok > /after && cat /after");
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    wait_until("the deleted file's blocks go back to the host", || {
        allocated(&image) < 16 * MIB
    });
    assert_eq!(verse.env("full")["state"], "running");

    // `verse rm` leaves no mount, loop device or image behind.
    assert_eq!(loops_under(&env_dir).len(), 1);
    verse.ok(&["rm", "full"]);
    assert!(!env_dir.exists());
    assert!(
        verse
            .host_mounts()
            .iter()
            .all(|m| !m.contains("/envs/full")),
        "{:?}",
        verse.host_mounts()
    );
    wait_until("the loop device detaches", || {
        loops_under(&env_dir).is_empty()
    });

    // A one-off env with --disk: the same limit, and nothing left when it ends.
    let out = verse.run(&[
        "run",
        "--rm",
        "--disk",
        "20MiB",
        "--name",
        "once",
        "busybox",
        "--",
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=64 2>&1; df -k / | tail -1",
    ]);
    let text = stdout(&out);
    assert!(text.contains("No space left on device"), "{text}");
    let once = verse.env_dir("once");
    wait_until("the one-off env is gone", || !once.exists());
    wait_until("its disk is unmounted", || {
        verse.host_mounts().iter().all(|m| !m.contains("/once"))
    });
    wait_until("its loop device detaches", || {
        loops_under(&verse.root().join("var/lib/verse")).is_empty()
    });
    // A size below the minimum is refused with what is allowed.
    let bad = verse.run(&["run", "--disk", "1MiB", "busybox", "--", "true"]);
    assert!(stderr(&bad).contains("at least 16MiB"), "{}", stderr(&bad));
}
