//! Specs, generations and images, through the CLI.

mod common;
use common::*;

#[test]
fn apply_creates_updates_and_removes_and_rollback_goes_back() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let first = verse.apply(
        r#"
[env.a]
image = "busybox"
memory = "64MiB"

[env.b]
image = "busybox"
"#,
    );
    assert!(
        first.contains("a          create") && first.contains("generation 1 is active"),
        "{first}"
    );
    let pid_b = verse.env("b")["pid"].as_u64().unwrap();

    let second = verse.apply(
        r#"
[env.a]
image = "busybox"
memory = "128MiB"

[env.c]
image = "busybox"
"#,
    );
    assert!(
        second.contains("a          update (changed: memory)"),
        "{second}"
    );
    assert!(
        second.contains("b          remove") && second.contains("c          create"),
        "{second}"
    );
    assert!(!pid_alive(pid_b), "a removed env kept running");
    assert_eq!(verse.env("a")["memory"], 128 << 20);
    let names: Vec<String> = verse
        .envs()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "c"]);

    // Applying the same spec again changes nothing running.
    let pid_a = verse.env("a")["pid"].as_u64().unwrap();
    let again = verse.apply(&std::fs::read_to_string(verse.root().join("verse.toml")).unwrap());
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(verse.env("a")["pid"].as_u64(), Some(pid_a));

    let generations: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["generations", "--json"])).unwrap();
    assert_eq!(
        generations.len(),
        2,
        "re-applying the active spec made a generation"
    );
    assert_eq!(
        generations.iter().filter(|g| g["active"] == true).count(),
        1
    );

    let back = verse.ok(&["rollback", "1"]);
    assert!(back.contains("generation 1 is active"), "{back}");
    let names: Vec<String> = verse
        .envs()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(verse.env("a")["memory"], 64 << 20);
    assert!(verse.envs().iter().all(|e| e["state"] == "running"));
    let generations: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["generations", "--json"])).unwrap();
    assert_eq!(
        generations.iter().find(|g| g["active"] == true).unwrap()["id"],
        1
    );
}

#[test]
fn a_malformed_spec_names_file_line_column_and_changes_nothing() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    verse.apply("[env.good]\nimage = \"busybox\"\n");
    let pid = verse.env("good")["pid"].as_u64().unwrap();
    let bad = verse.write_spec("bad.toml", "[env.good]\nimage = \"busybox\"\nmemroy = \"1GiB\"\n\n[env.other]\nimage = \"busybox\"\ncpu = -2\n");
    let out = verse.run(&["apply", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:3:1") && err.contains("did you mean `memory`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:7:"),
        "only the first error was reported: {err}"
    );
    let unknown = verse.write_spec("img.toml", "[env.good]\nimage = \"no-such-image\"\n");
    let out = verse.run(&["apply", unknown.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("img.toml:2:9") && stderr(&out).contains("not in the store"),
        "{}",
        stderr(&out)
    );
    // Nothing changed: same env, same process, one generation.
    let envs = verse.envs();
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0]["pid"].as_u64(), Some(pid));
    let generations: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["generations", "--json"])).unwrap();
    assert_eq!(generations.len(), 1);
}

#[test]
fn images_import_from_dir_and_tars_to_the_same_layer() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let rootfs = busybox_rootfs();
    let tar = format!("{}.tar", rootfs.display());
    let gz = verse.root().join("rootfs.tar.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c < '{tar}' > '{}'", gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    verse.ok(&["image", "import", "from-tar", &tar]);
    verse.ok(&["image", "import", "from-gz", gz.to_str().unwrap()]);
    let images: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["image", "ls", "--json"])).unwrap();
    let roots: Vec<&str> = images.iter().map(|i| i["root"].as_str().unwrap()).collect();
    assert_eq!(images.len(), 3);
    assert!(
        roots.windows(2).all(|w| w[0] == w[1]),
        "different roots for the same tree: {roots:?}"
    );
    assert!(images[0]["files"].as_u64().unwrap() >= 5);
    let listing = verse.ok(&["image", "ls"]);
    assert!(
        listing.starts_with("NAME") && listing.contains("busybox"),
        "{listing}"
    );
    let out = verse.run(&["image", "import", "bad", "/definitely/not/here"]);
    assert!(
        stderr(&out).contains("/definitely/not/here"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_tampered_layer_is_named_by_verify_and_up_refuses_it() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    assert!(verse.ok(&["image", "verify", "busybox"]).starts_with("ok"));
    verse.apply("[env.victim]\nimage = \"busybox\"\n");
    verse.ok(&["down", "victim"]);

    let checkouts = verse.root().join("var/lib/verse/store/checkouts");
    let checkout = std::fs::read_dir(&checkouts)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a checkout exists after an env ran");
    let motd = checkout.join("etc/motd");
    let mut text = std::fs::read_to_string(&motd).unwrap();
    text.push_str("owned\n");
    std::fs::write(&motd, text).unwrap();

    let out = verse.run(&["image", "verify", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("/etc/motd"),
        "verify did not name the path: {}",
        stdout(&out)
    );

    let out = verse.run(&["up", "victim"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "up started an env on a tampered layer"
    );
    assert!(
        stderr(&out).contains("/etc/motd"),
        "up did not name the path: {}",
        stderr(&out)
    );
    assert_ne!(verse.env("victim")["state"], "running");
}

#[test]
fn generations_gc_keeps_the_newest_and_the_active_one() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    for memory in ["64MiB", "96MiB", "128MiB", "160MiB"] {
        verse.apply(&format!(
            "[env.g]\nimage = \"busybox\"\nmemory = \"{memory}\"\n"
        ));
    }
    verse.ok(&["rollback", "1"]);
    let out = verse.ok(&["generations", "gc", "--keep", "2"]);
    assert!(out.contains("removed generation(s) 2"), "{out}");
    let generations: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["generations", "--json"])).unwrap();
    let ids: Vec<u64> = generations
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [1, 3, 4],
        "the active generation (1) and the newest two stay"
    );
    // Every kept generation can still be rolled back to.
    verse.ok(&["rollback", "3"]);
    assert_eq!(verse.env("g")["memory"], 128 << 20);
    let out = verse.run(&["rollback", "2"]);
    assert!(stderr(&out).contains("no generation 2"), "{}", stderr(&out));
}

/// More layers than one 256-byte `lowerdir` value of fsconfig(2) can name
/// (about 15): each is passed on its own, and they stack in order.
#[test]
fn an_image_of_forty_layers_stacks_them_all_in_order() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let steps: Vec<String> = (1..=40)
        .map(|i| format!("\"echo {i} > /layer-{i}; echo {i} > /top\""))
        .collect();
    let file = verse.write_spec(
        "verse.toml",
        &format!(
            "[image.tall]\nbase = \"busybox\"\nrun = [{}]\n\n[env.tall]\nimage = \"tall\"\n",
            steps.join(", ")
        ),
    );
    let built = verse.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    assert!(built.contains("built tall: 41 layers"), "{built}");
    let applied = verse.ok(&["apply", file.to_str().unwrap()]);
    assert!(!applied.contains("FAILED"), "{applied}");
    let (code, out, err) = verse.sh("tall", "cat /top; ls / | grep -c '^layer-'");
    assert_eq!((code, out.as_str()), (0, "40\n40\n"), "{err}");
}

/// The image's user and workdir apply where the spec is silent, and a spec
/// that says `user = "root"` / `workdir = "/"` gets exactly that; /downloads
/// belongs to whoever the env's command runs as.
#[test]
fn image_user_and_workdir_apply_unless_the_spec_names_root() {
    if !can_run() {
        return;
    }
    let verse = Verse::start();
    let file = verse.write_spec(
        "verse.toml",
        r#"
[image.asuser]
base = "busybox"
run = ["mkdir -p /work && chown 1000:1000 /work"]
user = "1000"
workdir = "/work"

[env.silent]
image = "asuser"
downloads = "quarantine"

[env.asroot]
image = "asuser"
user = "root"
workdir = "/"

[copy]
"asroot -> silent" = "allow"
"#,
    );
    verse.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    let applied = verse.ok(&["apply", file.to_str().unwrap()]);
    assert!(!applied.contains("FAILED"), "{applied}");
    let (_, out, err) = verse.sh("silent", "id -u; pwd; touch /downloads/mine && echo wrote");
    assert_eq!(out, "1000\n/work\nwrote\n", "{err}");
    let (_, out, err) = verse.sh("asroot", "id -u; pwd");
    assert_eq!(out, "0\n/\n", "{err}");
    // A copy lands as the user the env runs as.
    verse.sh("asroot", "echo hi > /tmp/note");
    verse.ok(&["copy", "asroot:/tmp/note", "silent:/work"]);
    let (_, out, err) = verse.sh("silent", "stat -c '%u %g' /work/note");
    assert_eq!(out, "1000 1000\n", "{err}");
}
