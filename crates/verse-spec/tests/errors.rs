//! Every kind of error, with its exact position and wording.

mod common;

use common::{errs, lines, one, one_in_env};

const ALLOWED: &str = "allowed: image, backend, accel, cpu, memory, pids, network, ephemeral, command, env, hostname, volumes, workdir, user, stop_timeout, reach, router, restart, health, snapshots, desktop, autostart, label, clipboard, downloads, hold, release_to, log_max, disk, shm";

#[test]
fn unknown_key_with_suggestion() {
    let src = "[env.novel]\nimage = \"busybox\"\nmemroy = \"1GiB\"\n";
    assert_eq!(
        one(src),
        format!(
            "verse.toml:3:1: unknown key `memroy` in [env.novel]; did you mean `memory`? {ALLOWED}"
        )
    );
}

#[test]
fn typo_suggestions() {
    for (typo, want) in [
        ("imge", "image"),
        ("Memory", "memory"),
        ("stoptimeout", "stop_timeout"),
        ("stop-timeout", "stop_timeout"),
        ("volume", "volumes"),
        ("hostnme", "hostname"),
        ("cpus", "cpu"),
        ("ephemeral_", "ephemeral"),
        ("netwrok", "network"),
    ] {
        let line = one_in_env(&format!("{typo} = 1"));
        assert!(
            line.contains(&format!("did you mean `{want}`?")),
            "{typo}: {line}"
        );
    }
}

#[test]
fn unknown_key_without_close_match() {
    let line = one_in_env("flavour = \"vanilla\"");
    assert_eq!(
        line,
        format!("verse.toml:3:1: unknown key `flavour` in [env.t]; {ALLOWED}")
    );
}

#[test]
fn planned_env_key() {
    assert_eq!(
        one_in_env("shared = true"),
        "verse.toml:3:1: `shared` in [env.t]: not supported yet (planned)"
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        one("evn = 1\n"),
        "verse.toml:1:1: unknown key `evn` in the top level; did you mean `env`? allowed: env, image, trust, copy"
    );
    assert_eq!(
        one("[envs.a]\nimage = \"x\"\n"),
        "verse.toml:1:2: unknown key `envs` in the top level; did you mean `env`? allowed: env, image, trust, copy"
    );
}

#[test]
fn env_not_a_table() {
    assert_eq!(
        one("env = 3\n"),
        "verse.toml:1:7: env = 3: expected a table of environments ([env.NAME]), found an integer"
    );
    assert_eq!(
        one("[env]\nnovel = \"busybox\"\n"),
        "verse.toml:2:9: env.novel = \"busybox\": expected a table of settings (write [env.novel] and keys under it), found a string"
    );
}

#[test]
fn bad_env_names() {
    for name in ["Novel", "-a", "a_b", "\"a b\"", "\"\"", "\"é\""] {
        let line = one(&format!("[env.{name}]\nimage = \"x\"\n"));
        assert!(
            line.starts_with("verse.toml:1:6: invalid environment name"),
            "{name}: {line}"
        );
        assert!(
            line.contains("use 1-63 characters from a-z, 0-9 and '-'"),
            "{line}"
        );
    }
    let long = "a".repeat(64);
    assert!(one(&format!("[env.{long}]\nimage = \"x\"\n")).contains("invalid environment name"));
}

#[test]
fn duplicate_env_is_a_syntax_error() {
    let l = lines("[env.a]\nimage = \"x\"\n[env.a]\nimage = \"y\"\n");
    assert!(
        l[0].starts_with("verse.toml:3:6: TOML syntax error: duplicate key"),
        "{l:?}"
    );
}

#[test]
fn missing_image() {
    assert_eq!(
        one("[env.a]\ncpu = 1\n"),
        "verse.toml:1:1: [env.a]: missing required key `image`; add e.g. image = \"busybox\""
    );
    assert_eq!(
        one("\n\nenv.b = { cpu = 1 }\n"),
        "verse.toml:3:9: [env.b]: missing required key `image`; add e.g. image = \"busybox\""
    );
}

#[test]
fn image_errors() {
    assert_eq!(
        one("[env.a]\nimage = 1\n"),
        "verse.toml:2:9: image = 1: expected the name of an image in the store (e.g. \"busybox\"), found an integer"
    );
    assert_eq!(
        one("[env.a]\nimage = \"\"\n"),
        "verse.toml:2:9: image = \"\": must name an image in the store, e.g. \"busybox\""
    );
    assert_eq!(
        one("[env.a]\nimage = \"bad name\"\n"),
        "verse.toml:2:9: image = \"bad name\": image names contain no spaces or control characters"
    );
}

#[test]
fn backend_errors() {
    let allowed = "allowed: \"container\", \"vm\" or \"gvisor\"";
    assert_eq!(
        one_in_env("backend = \"containr\""),
        format!(
            "verse.toml:3:11: backend = \"containr\": unknown backend; did you mean \"container\"? {allowed}"
        )
    );
    assert_eq!(
        one_in_env("backend = \"docker\""),
        format!("verse.toml:3:11: backend = \"docker\": unknown backend; {allowed}")
    );
    assert!(
        one_in_env("backend = true")
            .ends_with("expected \"container\", \"vm\" or \"gvisor\", found a boolean")
    );
    assert_eq!(
        one_in_env("backend = \"vm\"\naccel = \"kvn\""),
        "verse.toml:4:9: accel = \"kvn\": unknown accelerator; did you mean \"kvm\"? allowed: \"auto\", \"kvm\" or \"tcg\""
    );
    assert_eq!(
        one_in_env("accel = \"tcg\""),
        "verse.toml:3:9: accel: only vm envs run on an accelerator; this env's backend is \"container\""
    );
    assert!(one_in_env("router = true").contains("router: a router needs a way out itself"),);
}

#[test]
fn cpu_errors() {
    let range = "must be more than 0 and at most 1024 cores (fractions like 0.5 are allowed)";
    for (text, col) in [
        ("0", 7),
        ("-1", 7),
        ("0.0", 7),
        ("1024.5", 7),
        ("nan", 7),
        ("inf", 7),
        ("9223372036854775807", 7),
    ] {
        assert_eq!(
            one_in_env(&format!("cpu = {text}")),
            format!("verse.toml:3:{col}: cpu = {text}: {range}")
        );
    }
    assert_eq!(
        one_in_env("cpu   =   \"2\""),
        "verse.toml:3:11: cpu = \"2\": expected a number of cores (e.g. 2 or 1.5), found a string"
    );
}

#[test]
fn log_max_errors() {
    assert_eq!(
        one_in_env("log_max = \"64KiB\""),
        "verse.toml:3:11: log_max = \"64KiB\": is 65536 bytes; at least \"128KiB\" (131072 bytes) is needed"
    );
    assert!(one_in_env("log_max = \"lots\"").contains("log_max = \"lots\": not a size"));
}

#[test]
fn memory_errors() {
    assert_eq!(
        one_in_env("memory = \"2 gigs\""),
        "verse.toml:3:10: memory = \"2 gigs\": not a size; write e.g. \"512MiB\" or \"2GiB\" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
    );
    assert!(one_in_env("memory = \"lots\"").contains("not a size"));
    assert!(one_in_env("memory = \"\"").contains("not a size"));
    assert_eq!(
        one_in_env("memory = \"1MiB\""),
        "verse.toml:3:10: memory = \"1MiB\": is 1048576 bytes; at least \"4MiB\" (4194304 bytes) is needed"
    );
    assert_eq!(
        one_in_env("memory = 4194303"),
        "verse.toml:3:10: memory = 4194303: is 4194303 bytes; at least \"4MiB\" (4194304 bytes) is needed"
    );
    assert_eq!(
        one_in_env("memory = -5"),
        "verse.toml:3:10: memory = -5: must not be negative; write bytes or a size like \"512MiB\""
    );
    assert_eq!(
        one_in_env("memory = 1.5"),
        "verse.toml:3:10: memory = 1.5: write whole bytes or a size string such as \"1.5GiB\""
    );
    assert_eq!(
        one_in_env("memory = \"99999999TiB\""),
        "verse.toml:3:10: memory = \"99999999TiB\": too large to fit in 64 bits"
    );
    assert!(
        one_in_env("memory = true")
            .ends_with("expected a size such as \"512MiB\" or a number of bytes, found a boolean")
    );
}

#[test]
fn disk_errors() {
    assert_eq!(
        one_in_env("disk = \"1MiB\""),
        "verse.toml:3:8: disk = \"1MiB\": is 1048576 bytes; at least \"16MiB\" (16777216 bytes) is needed"
    );
    assert_eq!(
        one_in_env("disk = \"big\""),
        "verse.toml:3:8: disk = \"big\": not a size; write e.g. \"512MiB\" or \"2GiB\" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
    );
    assert!(
        one_in_env("disk = true")
            .ends_with("expected a size such as \"512MiB\" or a number of bytes, found a boolean")
    );
    assert!(one_in_env("dsik = \"1GiB\"").contains("did you mean `disk`?"));
}

#[test]
fn pids_errors() {
    assert_eq!(
        one_in_env("pids = 0"),
        "verse.toml:3:8: pids = 0: must be between 1 and 4194304"
    );
    assert_eq!(
        one_in_env("pids = 4194305"),
        "verse.toml:3:8: pids = 4194305: must be between 1 and 4194304"
    );
    assert_eq!(
        one_in_env("pids = \"256\""),
        "verse.toml:3:8: pids = \"256\": expected a whole number of processes (e.g. 256), found a string"
    );
    assert!(one_in_env("pids = 2.5").contains("found a float"));
}

#[test]
fn network_errors() {
    assert_eq!(
        one_in_env("network = \"non\""),
        "verse.toml:3:11: network = \"non\": unknown network mode; did you mean \"none\"? allowed: \"none\" (loopback only), \"nat\", { allow = [\"host:port\", ...] }, { proxy = \"socks5://HOST:PORT\" }, { via = \"ROUTER-ENV\" }"
    );
    assert_eq!(
        one_in_env("network = { allow = [\"a:443\", \"10.0.0.1/8:*\"] }"),
        "verse.toml:3:31: network.allow[1] = \"10.0.0.1/8:*\": `10.0.0.1/8` has host bits set; write 10.0.0.0/8"
    );
    assert_eq!(
        one_in_env("network = { allow = [\"a\"] }"),
        "verse.toml:3:22: network.allow[0] = \"a\": write \"host:port\", \"host:*\" or \"10.0.0.0/8:*\""
    );
    assert_eq!(
        one_in_env("network = { proxy = \"ftp://a:1\" }"),
        "verse.toml:3:21: network.proxy = \"ftp://a:1\": unknown proxy scheme `ftp`; allowed: socks5, socks5h, http"
    );
    assert!(
        one_in_env("network = { alow = [] }")
            .contains("unknown network policy `alow`; did you mean `allow`?")
    );
    assert!(
        one_in_env("network = { allow = [], via = \"r\" }")
            .contains("exactly one of allow, proxy, via")
    );
    assert!(
        one_in_env("network = false")
            .ends_with("expected \"none\", \"nat\" or a policy table, found a boolean")
    );
    assert!(
        one_in_env("network = { via = \"t\" }").ends_with("an env cannot route through itself")
    );
    assert!(one_in_env("reach = [\"x\"]").ends_with("write \"other-env:PORT\" (port 1-65535)"));
    assert!(one_in_env("router = 1").ends_with("expected true or false, found an integer"));
}

#[test]
fn via_and_reach_must_name_fitting_envs() {
    let src = "\
[env.a]
image = \"x\"
network = { via = \"b\" }

[env.b]
image = \"x\"
router = true
network = { via = \"c\" }

[env.c]
image = \"x\"
router = true
network = { via = \"a\" }

[env.d]
image = \"x\"
network = { via = \"e\" }
reach = [\"nowhere:80\", \"e:80\"]

[env.e]
image = \"x\"
";
    let e = lines(src);
    assert!(e.contains(&"verse.toml:3:19: env `a`: network.via makes a loop: a -> b -> c -> a; a chain must end at a router with its own way out".to_string()), "{e:#?}");
    assert!(e.contains(&"verse.toml:17:19: env `d`: network.via = \"e\", but `e` is not a router; add `router = true` to [env.e]".to_string()), "{e:#?}");
    assert!(e.contains(&"verse.toml:18:10: env `d`: reach names env `nowhere`, which the spec does not declare".to_string()), "{e:#?}");
    assert!(e.contains(&"verse.toml:18:24: env `d`: reach names `e`, whose network is \"none\" (loopback only); give it a network such as \"nat\"".to_string()), "{e:#?}");
}

#[test]
fn ephemeral_errors() {
    assert_eq!(
        one_in_env("ephemeral = \"yes\""),
        "verse.toml:3:13: ephemeral = \"yes\": expected true or false, found a string"
    );
}

#[test]
fn command_errors() {
    assert_eq!(
        one_in_env("command = [\"/bin/sh\", 3]"),
        "verse.toml:3:23: command[1] = 3: expected a string (quote every argument), found an integer"
    );
    assert_eq!(
        one_in_env("command = []"),
        "verse.toml:3:11: command = []: must not be empty; leave `command` out to get the default shell"
    );
    assert_eq!(
        one_in_env("command = \"  \""),
        "verse.toml:3:11: command = \"  \": must not be empty; leave `command` out to get the default shell"
    );
    assert_eq!(
        one_in_env("command = [\"\", \"x\"]"),
        "verse.toml:3:12: command[0] = \"\": the program to run must not be empty"
    );
    assert_eq!(
        one_in_env("command = [\"a\\u0000\"]"),
        "verse.toml:3:12: command[0] = \"a\\u0000\": must not contain a NUL character"
    );
    assert!(one_in_env("command = 5").ends_with(
        "expected an array of strings (argv) or a string run with /bin/sh -c, found an integer"
    ));
    // Every bad element is reported.
    assert_eq!(lines("[env.t]\nimage = \"x\"\ncommand = [1, 2]\n").len(), 2);
}

#[test]
fn env_var_errors() {
    assert_eq!(
        one_in_env("env = { \"1A\" = \"x\" }"),
        "verse.toml:3:9: invalid variable name `1A` in env of [env.t]: use letters, digits and '_', not starting with a digit"
    );
    assert!(one_in_env("env = { \"A=B\" = \"x\" }").contains("invalid variable name `A=B`"));
    assert!(one_in_env("env = { \"\" = \"x\" }").contains("invalid variable name ``"));
    assert_eq!(
        one_in_env("env = { B = 2 }"),
        "verse.toml:3:13: B = 2: expected a string (quote the value), found an integer"
    );
    assert_eq!(
        one_in_env("env = { B = \"\\u0000\" }"),
        "verse.toml:3:13: B = \"\\u0000\": must not contain a NUL character"
    );
    assert_eq!(
        one_in_env("env = [\"A=B\"]"),
        "verse.toml:3:7: env = [\"A=B\"]: expected a table of variables, e.g. { LANG = \"C.UTF-8\" }, found an array"
    );
}

#[test]
fn hostname_errors() {
    let pre = "verse.toml:3:12: hostname =";
    assert_eq!(
        one_in_env("hostname = \"-bad\""),
        format!(
            "{pre} \"-bad\": not a valid host name (RFC 1123): label `-bad` starts or ends with '-'"
        )
    );
    assert_eq!(
        one_in_env("hostname = \"a_b\""),
        format!(
            "{pre} \"a_b\": not a valid host name (RFC 1123): contains `_`; only letters, digits, '-' and '.' between labels are allowed"
        )
    );
    assert_eq!(
        one_in_env("hostname = \"a..b\""),
        format!(
            "{pre} \"a..b\": not a valid host name (RFC 1123): has an empty label (two dots in a row, or a leading/trailing dot)"
        )
    );
    assert_eq!(
        one_in_env("hostname = \"\""),
        format!("{pre} \"\": not a valid host name (RFC 1123): must not be empty")
    );
    let long = "a".repeat(65);
    assert!(
        one_in_env(&format!("hostname = \"{long}\""))
            .contains("is 65 bytes; at most 64 are allowed")
    );
    assert!(
        one_in_env("hostname = 1")
            .ends_with("expected a host name such as \"novel\", found an integer")
    );
}

#[test]
fn volume_errors() {
    let v = |body: &str| one_in_env(&format!("volumes = {{ {body} }}"));
    assert_eq!(
        v("\"/\" = \"/a\""),
        "verse.toml:3:13: volume path `/` in [env.t]: cannot mount over /, /proc, /sys, /dev or below them; pick another directory such as /data"
    );
    for path in [
        "/proc",
        "/sys/",
        "/dev",
        "/dev/shm",
        "/proc/sys/kernel",
        "//sys",
    ] {
        assert!(
            v(&format!("\"{path}\" = \"/a\"")).contains("cannot mount over /, /proc, /sys, /dev"),
            "{path}"
        );
    }
    assert_eq!(
        v("\"data\" = \"/a\""),
        "verse.toml:3:13: volume path `data` in [env.t]: must be an absolute path (starting with /)"
    );
    assert_eq!(
        v("\"/a/../etc\" = \"/a\""),
        "verse.toml:3:13: volume path `/a/../etc` in [env.t]: must not contain `..`"
    );
    assert_eq!(
        v("\"/a\" = \"srv\""),
        "verse.toml:3:20: \"/a\" = \"srv\": host directory must be an absolute path (starting with /)"
    );
    assert_eq!(
        v("\"/a\" = \"/srv/../etc:ro\""),
        "verse.toml:3:20: \"/a\" = \"/srv/../etc:ro\": host directory must not contain `..`"
    );
    assert_eq!(
        v("\"/a\" = \"/srv:rx\""),
        "verse.toml:3:20: \"/a\" = \"/srv:rx\": unknown volume option `rx`; allowed suffixes: \":ro\" (read-only), \":rw\" (host paths cannot contain ':')"
    );
    assert_eq!(
        v("\"/a\" = \"identity:alice/novel\""),
        "verse.toml:3:20: \"/a\" = \"identity:alice/novel\": identity volumes are not available yet (planned); give a host directory"
    );
    assert_eq!(
        v("\"/a\" = true"),
        "verse.toml:3:20: \"/a\" = true: expected a host directory such as \"/srv/data\" or \"/srv/data:ro\", found a boolean"
    );
    assert_eq!(
        v("\"/a/\" = \"/x\", \"/a\" = \"/y\""),
        "verse.toml:3:27: volume path `/a` in [env.t] is the same directory as `/a/`, given earlier; mount each path once"
    );
    assert!(one_in_env("volumes = [\"/a:/b\"]").ends_with("found an array"));
}

#[test]
fn workdir_errors() {
    assert_eq!(
        one_in_env("workdir = \"home\""),
        "verse.toml:3:11: workdir = \"home\": must be an absolute path (starting with /)"
    );
    assert_eq!(
        one_in_env("workdir = \"/a/..\""),
        "verse.toml:3:11: workdir = \"/a/..\": must not contain `..`"
    );
    assert!(one_in_env("workdir = 1").ends_with("found an integer"));
}

#[test]
fn user_errors() {
    let hint =
        "write \"root\", a uid such as \"1000\", or \"uid:gid\" such as \"1000:100\" (ids 0-65535)";
    assert_eq!(
        one_in_env("user = \"alice\""),
        format!(
            "verse.toml:3:8: user = \"alice\": user names other than \"root\" are not looked up in the image; {hint}"
        )
    );
    for bad in [
        "\"1000:\"",
        "\":1\"",
        "\"4294967295\"",
        "\"65536\"",
        "70000",
        "\"1:2:3\"",
        "-1",
        "4294967295",
        "\"\"",
    ] {
        let line = one_in_env(&format!("user = {bad}"));
        assert!(line.starts_with("verse.toml:3:8: user = "), "{line}");
        assert!(line.ends_with(hint), "{bad}: {line}");
    }
    assert!(
        one_in_env("user = true")
            .ends_with("expected \"root\", a uid or \"uid:gid\", found a boolean")
    );
}

#[test]
fn stop_timeout_errors() {
    let hint = "write e.g. \"500ms\", \"10s\" or \"2m\" (units: ms, s, m, h)";
    assert_eq!(
        one_in_env("stop_timeout = \"10\""),
        format!("verse.toml:3:16: stop_timeout = \"10\": not a duration; {hint}")
    );
    assert_eq!(
        one_in_env("stop_timeout = \"10 secs\""),
        format!("verse.toml:3:16: stop_timeout = \"10 secs\": not a duration; {hint}")
    );
    assert_eq!(
        one_in_env("stop_timeout = 10"),
        format!("verse.toml:3:16: stop_timeout = 10: needs a unit; {hint}")
    );
    assert_eq!(
        one_in_env("stop_timeout = \"2h\""),
        "verse.toml:3:16: stop_timeout = \"2h\": at most \"1h\" is allowed"
    );
    assert!(one_in_env("stop_timeout = []").ends_with("found an array"));
}

#[test]
fn many_errors_at_once_in_source_order() {
    let src = "\
[env.a]
image = 1
cpu = 0
memroy = \"1G\"

[env.b]
network = \"nta\"
pids = 0

[env.OK]
image = \"x\"
";
    let e = errs(src);
    let got: Vec<(usize, usize)> = e.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        [(2, 9), (3, 7), (4, 1), (6, 1), (7, 11), (8, 8), (10, 6)]
    );
    assert!(e.iter().all(|e| e.file == "verse.toml"));
    // Display: one per line.
    assert_eq!(e.to_string().lines().count(), 7);
    assert!(
        e.to_string()
            .lines()
            .next()
            .unwrap()
            .starts_with("verse.toml:2:9: image = 1:")
    );
}

#[test]
fn syntax_errors_have_positions() {
    let e = errs("[env.a]\nimage = \"busybox\ncpu = 1\n");
    assert!(e.errors[0].message.starts_with("TOML syntax error:"), "{e}");
    assert_eq!(e.errors[0].line, 2);

    let e = errs("[env.a]\nimage = busybox\n");
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 9));
    assert_eq!(
        e.errors[0].to_string(),
        "verse.toml:2:9: TOML syntax error: string values must be quoted, expected literal string"
    );

    // Several syntax errors are all reported.
    let e = errs("a = \nb = \n");
    assert_eq!(e.len(), 2);
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes; `1` is the 24th character but the 25th byte.
    let e = errs("[env.a]\nimage = \"x\"\nenv = { \"é\" = \"x\", B = 1 }\n");
    assert!(
        e.errors[0]
            .to_string()
            .starts_with("verse.toml:3:9: invalid variable name `é`")
    );
    assert_eq!((e.errors[1].line, e.errors[1].column), (3, 24));
}

#[test]
fn long_values_are_shortened_in_messages() {
    let long = "x".repeat(100);
    let line = one_in_env(&format!("hostname = \"{long}\""));
    assert!(
        line.contains(&format!("hostname = \"{}...:", "x".repeat(36))),
        "{line}"
    );
}

#[test]
fn errors_serialise_with_structured_fields() {
    let e = errs("[env.a]\nimage = 1\n");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json[0]["file"], "verse.toml");
    assert_eq!(json[0]["line"], 2);
    assert_eq!(json[0]["column"], 9);
    assert!(
        json[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("image = 1: expected")
    );
}

#[test]
fn file_name_is_used_as_given() {
    let e = verse_spec::parse_str("x = 1", "/etc/verse/verse.toml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/etc/verse/verse.toml:1:1: unknown key `x`"),
        "{e}"
    );
}

#[test]
fn a_reference_to_an_env_with_errors_reports_only_those_errors() {
    let source = r#"[env.router]
image = "busybox"
router = true
network = { allow = ["not a destination"] }

[env.anon]
image = "busybox"
network = { via = "router" }
reach = ["router:80"]

[copy]
"router -> anon" = "allow"
"#;
    let e = lines(source);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("verse.toml:4:"), "{e:#?}");
    assert!(!e[0].contains("does not declare"), "{e:#?}");
}

#[test]
fn what_a_backend_cannot_do_yet_is_refused_at_its_key() {
    assert_eq!(
        one("[env.v]\nimage = \"busybox\"\nvolumes = { \"/data\" = \"/srv\" }\nbackend = \"vm\"\n"),
        "verse.toml:3:11: volumes: the vm backend takes no volumes yet (its guest shares no filesystem with the host); move files in with `verse copy`, or use backend = \"container\" or \"gvisor\""
    );
    assert!(
        one("[env.v]\nimage = \"busybox\"\nbackend = \"vm\"\ndesktop = true\n")
            .starts_with("verse.toml:4:11: desktop: the vm backend has no desktop yet")
    );
    assert_eq!(
        one(
            "[env.g]\nimage = \"busybox\"\nbackend = \"gvisor\"\nnetwork = \"nat\"\nrouter = true\n"
        ),
        "verse.toml:5:10: router: routers run on the container backend only for now; this env's backend is \"gvisor\""
    );
}

#[test]
fn shm_is_a_size_for_container_envs() {
    assert_eq!(
        one_in_env("shm = \"512KiB\""),
        "verse.toml:3:7: shm = \"512KiB\": is 524288 bytes; at least \"1MiB\" (1048576 bytes) is needed"
    );
    assert!(
        one_in_env("backend = \"vm\"\nshm = \"1GiB\"").starts_with(
            "verse.toml:4:7: shm: vm and gvisor envs size /dev/shm in their own kernel"
        )
    );
}
