//! Crash safety: random lifecycle operations on a dozen envs while the daemon
//! is killed with SIGKILL at random moments; after every restart the daemon's
//! records and the host's reality must agree.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

const NAMES: [&str; 12] = [
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11",
];
const OPS: usize = 160;

/// A small deterministic generator (the seed is printed, so a failure replays).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spec_text(envs: &BTreeSet<String>, rng: &mut Rng) -> String {
    let mut text = String::new();
    for name in envs {
        let memory = [64, 96, 128][rng.below(3) as usize];
        text.push_str(&format!(
            "[env.{name}]\nimage = \"busybox\"\nmemory = \"{memory}MiB\"\n\n"
        ));
    }
    text
}

fn check_invariants(
    verse: &Verse,
    tag: &str,
    may_exist: &BTreeSet<String>,
    must_exist: &BTreeSet<String>,
) {
    let envs = verse.envs();
    let names: Vec<String> = envs
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "an env is listed twice: {names:?}");
    for name in must_exist {
        assert!(set.contains(name), "env {name} was lost: {names:?}");
    }
    for name in &set {
        assert!(
            may_exist.contains(name),
            "env {name} should not exist: {names:?}"
        );
    }
    for env in &envs {
        let state = env["state"].as_str().unwrap();
        assert!(
            ["running", "stopped", "paused", "failed", "created"].contains(&state),
            "{env}"
        );
        if state == "running" || state == "paused" {
            let pid = env["pid"].as_u64().expect("a running env has a pid");
            assert!(
                pid_alive(pid),
                "env {} is {state} but pid {pid} is gone",
                env["name"]
            );
        }
    }
    // No shim without a running env.
    let root = verse.root().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("__shim") || !cmdline.contains(&root) {
            continue;
        }
        let env = cmdline
            .split("/envs/")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_string();
        // A shim still binding its socket or finishing its teardown is not an
        // orphan: give it a moment to be listed as running or to exit.
        let shim_proc = entry.path();
        let mut settled = false;
        for _ in 0..30 {
            let listed = verse.envs().into_iter().find(|e| e["name"] == env.as_str());
            if !shim_proc.exists()
                || listed.is_some_and(|e| e["state"] == "running" || e["state"] == "paused")
            {
                settled = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(settled, "orphan shim for {env}: {cmdline}");
    }
    // No cgroup without an env, no mount on the host.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let tagged = hierarchy.path().join(tag);
        for dir in std::fs::read_dir(&tagged).into_iter().flatten().flatten() {
            if !dir.file_type().unwrap().is_dir() {
                continue;
            }
            let name = dir.file_name().to_string_lossy().into_owned();
            let listed = envs.iter().find(|e| e["name"] == name.as_str());
            let has_procs = std::fs::read_to_string(dir.path().join("cgroup.procs"))
                .is_ok_and(|p| !p.trim().is_empty());
            assert!(
                listed.is_some() || !has_procs,
                "orphan cgroup with processes: {}",
                dir.path().display()
            );
        }
    }
    assert!(verse.host_mounts().is_empty(), "{:?}", verse.host_mounts());
}

#[test]
fn random_operations_and_daemon_kills_leave_state_and_reality_in_agreement() {
    if !can_run() {
        return;
    }
    let seed = std::env::var("VERSE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash-safety seed {seed} (VERSE_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut verse = Verse::start();
    let tag = {
        let canonical = std::fs::canonicalize(verse.root()).unwrap();
        let mut hash: u32 = 0x811c_9dc5;
        for byte in canonical.as_os_str().as_encoded_bytes() {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        format!("verse-{hash:08x}")
    };
    // What the spec side says: envs of the last confirmed apply, and per generation.
    let mut confirmed: BTreeSet<String> = BTreeSet::new();
    let mut generations: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut removed_since: BTreeSet<String> = BTreeSet::new();
    let (mut kills, mut done) = (0, 0);
    for op in 0..OPS {
        let name = NAMES[rng.below(NAMES.len() as u64) as usize].to_string();
        let mut target: Option<BTreeSet<String>> = None;
        let args: Vec<String> = match rng.below(10) {
            0 | 1 => {
                let mut envs = BTreeSet::new();
                for n in NAMES {
                    if rng.below(2) == 0 {
                        envs.insert(n.to_string());
                    }
                }
                let path = verse.write_spec(&format!("spec{op}.toml"), &spec_text(&envs, &mut rng));
                target = Some(envs);
                vec!["apply".into(), path.display().to_string()]
            }
            2 if !generations.is_empty() => {
                let keys: Vec<u64> = generations.keys().copied().collect();
                let g = keys[rng.below(keys.len() as u64) as usize];
                target = Some(generations[&g].clone());
                vec!["rollback".into(), g.to_string()]
            }
            2 | 3 => vec!["up".into(), name.clone()],
            4 => vec!["down".into(), name.clone()],
            5 => vec!["pause".into(), name.clone()],
            6 => vec!["unpause".into(), name.clone()],
            7 => vec!["snapshot".into(), name.clone()],
            8 => vec!["exec".into(), name.clone(), "--".into(), "true".into()],
            _ => vec!["rm".into(), name.clone()],
        };
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let kill_now = rng.below(4) == 0;
        let (ok, stdout) = if kill_now {
            let child = verse
                .command(&arg_refs)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(120)));
            verse.kill_daemon();
            kills += 1;
            let out = child.wait_with_output().unwrap();
            verse.start_daemon();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        } else {
            let out = verse.run(&arg_refs);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        done += 1;
        // What may and must exist, given whether the op is known to have completed.
        let mut may: BTreeSet<String> = confirmed.clone();
        let mut must: BTreeSet<String> = confirmed.difference(&removed_since).cloned().collect();
        if let Some(target) = &target {
            may.extend(target.iter().cloned());
            if ok {
                let generation = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("generation "))
                    .and_then(|l| l.split(' ').next())
                    .and_then(|g| g.parse::<u64>().ok());
                if let Some(g) = generation {
                    generations.insert(g, target.clone());
                }
                confirmed = target.clone();
                removed_since.clear();
                must = confirmed.clone();
                may = confirmed.clone();
            } else {
                must = must.intersection(target).cloned().collect();
            }
        }
        if args[0] == "rm" {
            must.remove(&name);
            removed_since.insert(name.clone());
            if ok {
                may.remove(&name);
            }
        }
        // An interrupted apply or rm may have half-happened: the daemon's view
        // then becomes the new baseline once it has been checked.
        check_invariants(&verse, &tag, &may, &must);
        if (args[0] == "rm" || target.is_some()) && !ok {
            let listed: BTreeSet<String> = verse
                .envs()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect();
            confirmed = listed;
            removed_since.clear();
        }
    }
    eprintln!("crash safety: {done} operations, {kills} daemon kills survived");
}
