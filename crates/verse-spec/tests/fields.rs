//! Every field accepted, with its typed value, and every default.

mod common;

use std::collections::BTreeMap;

use common::{env, ok};
use verse_spec::{Backend, DEFAULT_STOP_TIMEOUT_MS, EnvSpec, Network, UserSpec, Volume};

#[test]
fn minimal_env_gets_defaults() {
    let e = env("");
    assert_eq!(e, EnvSpec::new("t", "busybox"));
    assert_eq!(e.image, "busybox");
    assert_eq!(e.backend, Backend::Container);
    assert_eq!(e.cpu, None);
    assert_eq!(e.memory, None);
    assert_eq!(e.log_max, None);
    assert_eq!(e.log_max_bytes(), verse_spec::DEFAULT_LOG_MAX);
    assert_eq!(e.pids, None);
    assert_eq!(e.network, Network::None);
    assert!(!e.ephemeral);
    assert_eq!(e.command, None);
    assert!(e.env.is_empty());
    assert_eq!(e.hostname, "t");
    assert!(e.volumes.is_empty());
    assert_eq!(e.workdir, None);
    assert_eq!(e.user, None);
    assert_eq!(e.stop_timeout_ms, DEFAULT_STOP_TIMEOUT_MS);
    assert_eq!(DEFAULT_STOP_TIMEOUT_MS, 10_000);
}

#[test]
fn empty_file_is_an_empty_spec() {
    assert!(ok("").envs.is_empty());
    assert!(ok("# nothing yet\n").envs.is_empty());
}

#[test]
fn full_example() {
    let spec = ok(r#"
[env.novel]
image = "busybox"
backend = "container"
cpu = 1.5
memory = "512MiB"
pids = 256
network = "none"
ephemeral = true
command = ["/bin/sh", "-c", "sleep 1"]
env = { LANG = "C.UTF-8", _X1 = "" }
hostname = "novel.example"
volumes = { "/data" = "/srv/host/dir", "/ref" = "/srv/ref:ro" }
workdir = "/data"
user = "1000:100"
stop_timeout = "500ms"
"#);
    let e = &spec.envs["novel"];
    assert_eq!(e.cpu, Some(1.5));
    assert_eq!(e.memory, Some(512 << 20));
    assert_eq!(e.pids, Some(256));
    assert!(e.ephemeral);
    assert_eq!(
        e.command.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into(), "sleep 1".into()][..])
    );
    let want: BTreeMap<String, String> = [("LANG", "C.UTF-8"), ("_X1", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(e.env, want);
    assert_eq!(e.hostname, "novel.example");
    assert_eq!(
        e.volumes,
        vec![
            Volume {
                path: "/data".into(),
                host: "/srv/host/dir".into(),
                readonly: false
            },
            Volume {
                path: "/ref".into(),
                host: "/srv/ref".into(),
                readonly: true
            },
        ]
    );
    assert_eq!(e.workdir.as_deref(), Some("/data"));
    assert_eq!(
        e.user,
        Some(UserSpec {
            uid: 1000,
            gid: 100
        })
    );
    assert_eq!(e.stop_timeout_ms, 500);
}

#[test]
fn several_envs_sorted_by_name() {
    let spec = ok("[env.b]\nimage = \"x\"\n[env.a-1]\nimage = \"y\"\n[env.0]\nimage = \"z\"\n");
    let names: Vec<_> = spec.envs.keys().cloned().collect();
    assert_eq!(names, ["0", "a-1", "b"]);
    assert_eq!(spec.envs["a-1"].hostname, "a-1");
}

#[test]
fn inline_and_dotted_env_tables() {
    let spec =
        ok("env.a = { image = \"x\", cpu = 2 }\n[env.b]\nimage = \"y\"\n[env.b.env]\nK = \"v\"\n");
    assert_eq!(spec.envs["a"].cpu, Some(2.0));
    assert_eq!(spec.envs["b"].env["K"], "v");
}

#[test]
fn longest_env_name() {
    let name = format!("a{}", "-".repeat(62));
    let spec = ok(&format!("[env.{name}]\nimage = \"x\"\n"));
    assert!(spec.envs.contains_key(&name));
}

#[test]
fn cpu_integer_and_fraction() {
    assert_eq!(env("cpu = 2").cpu, Some(2.0));
    assert_eq!(env("cpu = 0.25").cpu, Some(0.25));
    assert_eq!(env("cpu = 1024").cpu, Some(1024.0));
}

#[test]
fn memory_units() {
    let cases: &[(&str, u64)] = &[
        ("4194304", 4 << 20),
        ("\"4MiB\"", 4 << 20),
        ("\"512M\"", 512 << 20),
        ("\"512MB\"", 512_000_000),
        ("\"2GiB\"", 2 << 30),
        ("\"2 gb\"", 2_000_000_000),
        ("\"2G\"", 2 << 30),
        ("\"1.5GiB\"", 3 << 29),
        ("\"1TiB\"", 1 << 40),
        ("\"1TB\"", 1_000_000_000_000),
        ("\"8192KiB\"", 8 << 20),
        ("\"8192K\"", 8 << 20),
        ("\"5000KB\"", 5_000_000),
        ("\"5000000B\"", 5_000_000),
        ("1_073_741_824", 1 << 30),
        ("0x4000000", 64 << 20),
    ];
    for (text, bytes) in cases {
        assert_eq!(
            env(&format!("memory = {text}")).memory,
            Some(*bytes),
            "{text}"
        );
    }
}

#[test]
fn log_max() {
    assert_eq!(env("log_max = \"1MiB\"").log_max, Some(1 << 20));
    assert_eq!(env("log_max = \"1MiB\"").log_max_bytes(), 1 << 20);
    assert_eq!(env("log_max = 131072").log_max, Some(128 << 10));
}

#[test]
fn disk_sizes() {
    assert_eq!(env("").disk, None);
    assert_eq!(env("disk = \"32MiB\"").disk, Some(32 << 20));
    assert_eq!(env("disk = \"2G\"").disk, Some(2 << 30));
    assert_eq!(env("disk = 16777216").disk, Some(16 << 20));
    // Any backend: the container's and gvisor's writable layer, a vm's data disk.
    assert_eq!(env("disk = \"1GiB\"\nbackend = \"vm\"").disk, Some(1 << 30));
}

#[test]
fn pids_bounds() {
    assert_eq!(env("pids = 1").pids, Some(1));
    assert_eq!(env("pids = 4194304").pids, Some(4_194_304));
}

#[test]
fn string_command_runs_with_sh() {
    assert_eq!(
        env("command = \"echo hi && sleep 1\"").command,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo hi && sleep 1".into()
        ])
    );
    assert_eq!(
        env("command = [\"/bin/true\"]").command,
        Some(vec!["/bin/true".into()])
    );
    // Later arguments may be empty strings.
    assert_eq!(
        env("command = [\"/bin/echo\", \"\"]").command,
        Some(vec!["/bin/echo".into(), String::new()])
    );
}

#[test]
fn hostnames() {
    assert_eq!(env("hostname = \"a\"").hostname, "a");
    assert_eq!(
        env("hostname = \"Web-1.Example.org\"").hostname,
        "Web-1.Example.org"
    );
    let long = "a".repeat(63);
    assert_eq!(env(&format!("hostname = \"{long}\"")).hostname, long);
}

#[test]
fn volumes_are_normalised_and_sorted() {
    let e = env(r#"volumes = { "/z/" = "/srv//z/./", "/a/./b" = "/srv/b:rw", "/c" = "/:ro" }"#);
    assert_eq!(
        e.volumes,
        vec![
            Volume {
                path: "/a/b".into(),
                host: "/srv/b".into(),
                readonly: false
            },
            Volume {
                path: "/c".into(),
                host: "/".into(),
                readonly: true
            },
            Volume {
                path: "/z".into(),
                host: "/srv/z".into(),
                readonly: false
            },
        ]
    );
}

#[test]
fn volumes_as_subtable() {
    let e = env("[env.t.volumes]\n\"/data\" = \"/srv/data:ro\"");
    assert_eq!(e.volumes.len(), 1);
    assert!(e.volumes[0].readonly);
}

#[test]
fn volume_next_to_forbidden_dirs_is_fine() {
    let e = env(
        r#"volumes = { "/procfs" = "/a", "/system" = "/b", "/devices" = "/c", "/srv/proc" = "/d" }"#,
    );
    assert_eq!(e.volumes.len(), 4);
}

#[test]
fn workdir_is_normalised() {
    assert_eq!(env("workdir = \"/\"").workdir.as_deref(), Some("/"));
    assert_eq!(
        env("workdir = \"/home//user/\"").workdir.as_deref(),
        Some("/home/user")
    );
}

#[test]
fn users() {
    let u = |text: &str| env(&format!("user = {text}")).user.unwrap();
    assert_eq!(u("\"root\""), UserSpec { uid: 0, gid: 0 });
    assert_eq!(
        u("\"1000\""),
        UserSpec {
            uid: 1000,
            gid: 1000
        }
    );
    assert_eq!(
        u("\"1000:100\""),
        UserSpec {
            uid: 1000,
            gid: 100
        }
    );
    assert_eq!(u("\"0:0\""), UserSpec { uid: 0, gid: 0 });
    assert_eq!(
        u("65534"),
        UserSpec {
            uid: 65534,
            gid: 65534
        }
    );
    assert_eq!(
        u("\"65535\""),
        UserSpec {
            uid: 65535,
            gid: 65535
        }
    );
}

#[test]
fn stop_timeouts() {
    let t = |text: &str| env(&format!("stop_timeout = \"{text}\"")).stop_timeout_ms;
    assert_eq!(t("500ms"), 500);
    assert_eq!(t("10s"), 10_000);
    assert_eq!(t("2m"), 120_000);
    assert_eq!(t("1.5s"), 1_500);
    assert_eq!(t("0s"), 0);
    assert_eq!(t("1h"), 3_600_000);
}

#[test]
fn ephemeral_false_explicitly() {
    assert!(!env("ephemeral = false").ephemeral);
}

#[test]
fn load_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("verse-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("verse.toml");
    std::fs::write(&path, "[env.a]\nimage = \"busybox\"\n").unwrap();
    let spec = verse_spec::load(&path).unwrap();
    assert_eq!(spec.envs["a"].image, "busybox");

    std::fs::write(&path, "[env.a]\nimage = 1\n").unwrap();
    let e = verse_spec::load(&path).unwrap_err();
    assert_eq!(e.errors[0].file, path.display().to_string());
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 9));

    std::fs::write(&path, b"[env.a]\nimage = \"\xff\"\n").unwrap();
    let e = verse_spec::load(&path).unwrap_err();
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 10));
    assert!(e.errors[0].message.contains("UTF-8"));
    std::fs::remove_dir_all(&dir).unwrap();

    let e = verse_spec::load(&dir.join("missing.toml")).unwrap_err();
    assert_eq!((e.errors[0].line, e.errors[0].column), (0, 0));
    assert!(
        e.to_string().contains("missing.toml: cannot read the spec"),
        "{e}"
    );
}

#[test]
fn shm_size() {
    assert_eq!(env("").shm, None);
    assert_eq!(env("shm = \"1GiB\"").shm, Some(1 << 30));
}
