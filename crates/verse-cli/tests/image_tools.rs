//! Images made by the tools people already use, in every format they write, imported through a
//! real daemon and run as real envs; and Verse's exports loaded (and run) by podman.
//!
//! Each test makes its images with Debian's podman, buildah and skopeo from the busybox rootfs
//! (no registry: the base is `podman import`ed), in a container storage of its own (vfs,
//! cgroupfs, runc, no network; see docs/images.md for why these settings).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Verse, busybox_rootfs, can_run, stderr};

/// Whether podman, buildah and skopeo are installed; says so loudly when not, and fails under
/// CI=true (scripts/install-deps.sh --test installs them).
fn tools_installed() -> bool {
    let missing: Vec<&str> = ["podman", "buildah", "skopeo"]
        .into_iter()
        .filter(|t| {
            !std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} not installed (scripts/install-deps.sh --test)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {why}");
    }
    eprintln!("\n!!! SKIPPED: {why} !!!\n");
    false
}

/// A private container storage and configuration for podman, buildah and skopeo.
struct Tools {
    dir: tempfile::TempDir,
}

const CONTAINERS_CONF: &str = r#"[containers]
# This host gives root no CAP_SYS_RESOURCE: the runtime may not raise rlimits, so set them low.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
# cgroup v1 host ("hybrid"): crun refuses it, runc works; no systemd to manage cgroups.
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"#;

impl Tools {
    fn new() -> Tools {
        let dir = tempfile::Builder::new()
            .prefix("verse-tools-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/run\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("storage.conf"), storage).unwrap();
        Tools { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new(tool);
        c.args(args)
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("TMPDIR", self.dir.path());
        c
    }

    /// Runs `tool args`, expecting success; returns stdout.
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.command(tool, args).output().unwrap();
        assert!(
            out.status.success(),
            "`{tool} {}` failed: {}",
            args.join(" "),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The storage as skopeo names it (`containers-storage:[vfs@ROOT+RUN]IMAGE`).
    fn storage_ref(&self, image: &str) -> String {
        let d = self.dir.path().display();
        format!("containers-storage:[vfs@{d}/storage+{d}/run]{image}")
    }

    /// `localhost/base:1`: the busybox rootfs (root dir 0755) with device nodes a debootstrap
    /// base would carry under /dev, and one elsewhere; then `localhost/app:1` built on it by
    /// podman from a Containerfile (a COPY, files deleted and a directory replaced by RUN
    /// steps, so whiteouts and an opaque dir, and ENV, WORKDIR, USER, LABEL, ENTRYPOINT, CMD),
    /// and `localhost/bah:1` made by buildah.
    fn make_images(&self) {
        let base = self.path("base");
        let cp = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(&base)
            .status()
            .unwrap();
        assert!(cp.success());
        let sh = |script: &str| {
            let out = Command::new("sh")
                .args(["-ec", script])
                .current_dir(&base)
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {}", stderr(&out));
        };
        sh(
            "chmod 755 .; mknod dev/null c 1 3; mknod dev/zero c 1 5; mknod dev/full c 1 7; \
            mkdir -p opt/disks; mknod opt/disks/sda b 8 0",
        );
        let tar = self.path("base.tar");
        sh(&format!("tar -cf {} .", tar.display()));
        self.ok(
            "podman",
            &["import", "-q", tar.to_str().unwrap(), "localhost/base:1"],
        );

        let ctx = self.path("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("greeting.txt"), "hello from COPY\n").unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            r#"FROM localhost/base:1
RUN mkdir -p /srv/data && echo old > /srv/data/old && echo keep > /srv/keep
COPY greeting.txt /etc/greeting
RUN rm /etc/motd && rm -rf /srv/data && mkdir /srv/data && echo new > /srv/data/new
ENV GREETING=hi APP_MODE=test
WORKDIR /srv
USER 1000:1000
LABEL org.example.tool=podman
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo \"$GREETING uid=$(id -u) in $(pwd)\"; exec sleep 86399"]
"#,
        )
        .unwrap();
        self.ok(
            "podman",
            &[
                "build",
                "-q",
                "--pull=never",
                "--network",
                "none",
                "-t",
                "localhost/app:1",
                ctx.to_str().unwrap(),
            ],
        );

        let ctr = self.ok("buildah", &["from", "--pull-never", "localhost/base:1"]);
        let ctr = ctr.trim();
        self.ok(
            "buildah",
            &[
                "run",
                "--network",
                "none",
                ctr,
                "--",
                "sh",
                "-c",
                "rm -r /home/user; echo buildah > /etc/built",
            ],
        );
        self.ok(
            "buildah",
            &[
                "config",
                "--env",
                "MADE_BY=buildah",
                "--workingdir",
                "/etc",
                "--cmd",
                "cat /etc/built",
                ctr,
            ],
        );
        self.ok("buildah", &["commit", "-q", ctr, "localhost/bah:1"]);
        self.ok("buildah", &["rm", ctr]);
    }
}

/// The tools' images made and a daemon started; None (skipped loudly) when this host cannot.
fn setup() -> Option<(Tools, Verse)> {
    if !can_run() || !tools_installed() {
        return None;
    }
    let t = Tools::new();
    t.make_images();
    Some((t, Verse::start()))
}

fn inspect(v: &Verse, name: &str) -> serde_json::Value {
    serde_json::from_str(&v.ok(&["image", "inspect", name, "--json"])).unwrap()
}

fn roots(d: &serde_json::Value) -> Vec<String> {
    d["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["root"].as_str().unwrap().to_string())
        .collect()
}

fn import(v: &Verse, name: &str, path: &str) -> String {
    v.ok(&["image", "import", name, path])
}

/// The app image's config and content, as an env on it sees them.
fn check_app(v: &Verse, name: &str) {
    let d = inspect(v, name);
    assert_eq!(d["user"], "1000:1000", "{d}");
    assert_eq!(d["workdir"], "/srv", "{d}");
    assert_eq!(d["entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    // The Containerfile's LABEL (podman adds its own, io.buildah.version, beside it).
    assert_eq!(d["labels"]["org.example.tool"], "podman", "{d}");
    assert!(d["labels"]["io.buildah.version"].is_string(), "{d}");
    let text = v.ok(&["image", "inspect", name]);
    assert!(
        text.contains("\nlabel     org.example.tool=podman\n"),
        "{text}"
    );
    let env = d["env"].to_string();
    assert!(
        env.contains(r#"["GREETING","hi"]"#) && env.contains(r#"["APP_MODE","test"]"#),
        "{env}"
    );
    // The base layer's device nodes are not in the image: counted and named in its input.
    let base = d["layers"][0]["input"].as_str().unwrap();
    assert!(
        base.contains("left out 4 device node(s): 3 under /dev, /opt/disks/sda"),
        "{base}"
    );
    v.apply(&format!(
        "[env.{name}]\nimage = \"{name}\"\nstop_timeout = \"100ms\"\n"
    ));
    v.wait_for_log(name, "hi uid=1000 in /srv", 20);
    let (code, out, err) = v.sh(
        name,
        "cat /etc/greeting; ls /srv/data; cat /srv/keep; test -e /etc/motd && echo LEAKED; \
         test -e /opt/disks/sda && echo DEVICE; ls /dev/null >/dev/null && echo own-dev",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello from COPY\nnew\nkeep\nown-dev\n");
    assert!(v.ok(&["image", "verify", name]).starts_with("ok: image"));
    v.ok(&["rm", name]);
}

/// Image `name`'s labels, exported in each format and loaded by podman, are there beside the
/// `org.verse.manifest` label the export adds.
fn labels_survive_export(t: &Tools, v: &Verse, name: &str) {
    let d = inspect(v, name);
    for format in ["oci-archive", "docker-archive"] {
        let archive = t.path(&format!("{name}.labels.{format}.tar"));
        let archive = archive.to_str().unwrap();
        v.ok(&["image", "export", name, archive, "--format", format]);
        t.ok("podman", &["load", "-q", "-i", archive]);
        let tag = format!("localhost/{name}:latest");
        let i: serde_json::Value =
            serde_json::from_str(&t.ok("podman", &["image", "inspect", &tag])).unwrap();
        let labels = &i[0]["Config"]["Labels"];
        assert_eq!(labels["org.example.tool"], "podman", "{format}: {labels}");
        assert_eq!(
            labels["io.buildah.version"], d["labels"]["io.buildah.version"],
            "{format}: {labels}"
        );
        assert_eq!(
            labels["org.verse.manifest"], d["info"]["manifest"],
            "{format}"
        );
        t.ok("podman", &["rmi", &tag]);
    }
}

#[test]
fn podman_save_every_format_imports_and_runs() {
    let Some((t, v)) = setup() else { return };
    let oci = t.path("app.oci.tar");
    let docker = t.path("app.docker.tar");
    let multi = t.path("multi.tar");
    let (oci, docker, multi) = (
        oci.to_str().unwrap(),
        docker.to_str().unwrap(),
        multi.to_str().unwrap(),
    );
    t.ok(
        "podman",
        &[
            "save",
            "-q",
            "--format",
            "oci-archive",
            "-o",
            oci,
            "localhost/app:1",
        ],
    );
    t.ok(
        "podman",
        &[
            "save",
            "-q",
            "--format",
            "docker-archive",
            "-o",
            docker,
            "localhost/app:1",
        ],
    );
    t.ok(
        "podman",
        &[
            "save",
            "-q",
            "--multi-image-archive",
            "-o",
            multi,
            "localhost/app:1",
            "localhost/bah:1",
        ],
    );

    let out = import(&v, "app-oci", oci);
    assert!(
        out.contains("from the archive's image localhost/app:1")
            && out.contains("left out 4 device node(s) (envs get their own /dev): 3 under /dev; outside /dev: /opt/disks/sda"),
        "{out}"
    );
    check_app(&v, "app-oci");
    labels_survive_export(&t, &v, "app-oci");
    import(&v, "app-docker", docker);
    check_app(&v, "app-docker");
    // Both formats give the same layers (podman's oci-archive gzips them, docker's does not).
    assert_eq!(
        roots(&inspect(&v, "app-oci")),
        roots(&inspect(&v, "app-docker"))
    );

    // Two images in one archive: refused without a tag, each picked by its tag.
    let out = v.run(&["image", "import", "both", multi]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("holds 2 images: localhost/app:1, localhost/bah:1; pick one with FILE:TAG"),
        "{err}"
    );
    let out = v.run(&[
        "image",
        "import",
        "none",
        &format!("{multi}:localhost/nope:1"),
    ]);
    assert!(stderr(&out).contains("no image tagged \"localhost/nope:1\""));
    let out = import(&v, "bah", &format!("{multi}:localhost/bah:1"));
    assert!(
        out.contains("from the archive's image localhost/bah:1"),
        "{out}"
    );
    let d = inspect(&v, "bah");
    assert_eq!(d["workdir"], "/etc");
    assert_eq!(d["cmd"], serde_json::json!(["cat", "/etc/built"]));
    // The short form of the tag works too, and picks the other image.
    import(&v, "app-multi", &format!("{multi}:app:1"));
    assert_eq!(
        roots(&inspect(&v, "app-multi")),
        roots(&inspect(&v, "app-oci"))
    );
    v.apply(
        "[env.bah]\nimage = \"bah\"\ncommand = \"exec sleep 86399\"\nstop_timeout = \"100ms\"\n",
    );
    let (code, out, _) = v.sh("bah", "cat /etc/built; test -e /home/user || echo no-home");
    assert_eq!((code, out.as_str()), (0, "buildah\nno-home\n"));
    let ls = v.ok(&["image", "ls"]);
    assert!(!ls.contains("both") && !ls.contains("none"), "{ls}");
}

#[test]
fn skopeo_and_buildah_formats_import_to_the_same_layers() {
    let Some((t, v)) = setup() else { return };
    let app = t.storage_ref("localhost/app:1");
    let gz = t.path("app-gzip");
    let zst = t.path("app-zstd");
    let da = t.path("app.docker.tar");
    let (gz, zst, da) = (
        gz.to_str().unwrap(),
        zst.to_str().unwrap(),
        da.to_str().unwrap(),
    );
    t.ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-compress",
            &app,
            &format!("oci:{gz}:app"),
        ],
    );
    t.ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &app,
            &format!("oci:{zst}:app"),
        ],
    );
    t.ok(
        "skopeo",
        &[
            "copy",
            "-q",
            &app,
            &format!("docker-archive:{da}:localhost/app:1"),
        ],
    );
    // The layouts really hold gzip and zstd layers.
    let magic = |dir: &str, m: &[u8]| {
        std::fs::read_dir(Path::new(dir).join("blobs/sha256"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read(e.path()).unwrap().starts_with(m))
    };
    assert!(magic(gz, &[0x1f, 0x8b]), "no gzip layer in {gz}");
    assert!(
        magic(zst, &[0x28, 0xb5, 0x2f, 0xfd]),
        "no zstd layer in {zst}"
    );

    let reference = roots(&{
        import(&v, "gzip", gz);
        inspect(&v, "gzip")
    });
    assert_eq!(reference.len(), 4, "base, two RUN steps and the COPY");
    import(&v, "zstd", zst);
    import(&v, "skopeo-docker", da);
    for name in ["zstd", "skopeo-docker"] {
        assert_eq!(roots(&inspect(&v, name)), reference, "{name}");
    }
    check_app(&v, "zstd");

    // buildah push to an oci-archive.
    let pushed = t.path("bah.oci.tar");
    t.ok(
        "buildah",
        &[
            "push",
            "-q",
            "localhost/bah:1",
            &format!("oci-archive:{}:localhost/bah:1", pushed.display()),
        ],
    );
    let out = import(&v, "pushed", pushed.to_str().unwrap());
    assert!(
        out.contains("from the archive's image localhost/bah:1"),
        "{out}"
    );
    let d = inspect(&v, "pushed");
    assert!(
        d["env"].to_string().contains(r#"["MADE_BY","buildah"]"#),
        "{d}"
    );
    assert_eq!(d["cmd"], serde_json::json!(["cat", "/etc/built"]));
    v.apply("[env.pushed]\nimage = \"pushed\"\ncommand = \"exec sleep 86399\"\nstop_timeout = \"100ms\"\n");
    let (code, out, _) = v.sh("pushed", "pwd; cat built");
    assert_eq!((code, out.as_str()), (0, "/etc\nbuildah\n"));
}

/// Whether podman can run a container on this host (a quick `podman run`); says why not.
fn podman_runs(t: &Tools) -> bool {
    let out = t
        .command(
            "podman",
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "localhost/base:1",
                "true",
            ],
        )
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "\n!!! podman cannot run containers here ({}); checking load and inspect only !!!\n",
            stderr(&out).trim()
        );
    }
    out.status.success()
}

#[test]
fn verse_export_loads_and_runs_under_podman() {
    let Some((t, v)) = setup() else { return };
    let spec = r#"
[image.app]
base = "busybox"
files = { "/etc/app.conf" = "port = 80" }
run = ["mkdir -p /srv/old && echo x > /srv/old/x", "rm /etc/motd && rm -rf /srv/old && mkdir /srv/old && echo y > /srv/old/y"]
workdir = "/srv"
env = { MODE = "exported" }
"#;
    let file = v.write_spec("verse.toml", spec);
    v.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    let manifest = inspect(&v, "app")["info"]["manifest"]
        .as_str()
        .unwrap()
        .to_string();
    let runs = podman_runs(&t);
    for format in ["oci-archive", "docker-archive"] {
        let archive = t.path(&format!("verse.{format}.tar"));
        let archive = archive.to_str().unwrap();
        let out = v.ok(&["image", "export", "app", archive, "--format", format]);
        assert!(
            out.contains(&format!("as {format} localhost/app:latest: 4 layers")),
            "{out}"
        );
        // skopeo reads it: four layers, the config, Verse's manifest as a label.
        let s: serde_json::Value =
            serde_json::from_str(&t.ok("skopeo", &["inspect", &format!("{format}:{archive}")]))
                .unwrap();
        assert_eq!(s["Layers"].as_array().unwrap().len(), 4, "{s}");
        assert_eq!(s["Labels"]["org.verse.manifest"], manifest.as_str());
        assert!(s["Env"].to_string().contains("MODE=exported"), "{s}");

        let loaded = t.ok("podman", &["load", "-i", archive]);
        assert!(
            loaded.contains("Loaded image: localhost/app:latest"),
            "{loaded}"
        );
        let i: serde_json::Value =
            serde_json::from_str(&t.ok("podman", &["image", "inspect", "localhost/app:latest"]))
                .unwrap();
        let i = &i[0];
        assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 4, "{i}");
        assert_eq!(i["Config"]["WorkingDir"], "/srv");
        assert!(i["RepoTags"].to_string().contains("localhost/app:latest"));
        if runs {
            let out = t.ok(
                "podman",
                &[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "localhost/app:latest",
                    "sh",
                    "-c",
                    "cat /etc/app.conf; echo; pwd; echo $MODE; ls /srv/old; test -e /etc/motd || echo no-motd",
                ],
            );
            assert_eq!(out, "port = 80\n/srv\nexported\ny\nno-motd\n", "{format}");
        }
        t.ok("podman", &["rmi", "localhost/app:latest"]);
    }
}
