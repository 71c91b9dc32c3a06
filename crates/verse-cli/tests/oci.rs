//! OCI and docker-save archives the tests write themselves, imported through a real daemon and
//! run as real envs: multi-layer images with whiteouts and opaque dirs, the image config
//! applied, hostile archives refused naming the entry with nothing written outside the store,
//! a signature over another manifest refused, and whiteouts made by a build step's overlay.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Verse, busybox_rootfs, can_run, stderr};
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Tar entries written by hand, so hostile names and types survive (the tar crate's
/// builder refuses them, as it should).
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(mut self, name: &str, kind: tar::EntryType, body: &[u8], link: &str) -> Self {
        self.0.extend(header(name, kind, body.len() as u64, link));
        self.0.extend_from_slice(body);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, body: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, body, "")
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, b"", "")
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
    }
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A tar of the busybox rootfs (symlinks kept), the bottom layer of every test image.
fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", busybox_rootfs()).unwrap();
    b.into_inner().unwrap()
}

fn config(greeting: &str) -> serde_json::Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo \"$GREETING uid=$(id -u) in $(pwd)\"; ls /opt/app; ls /opt/keep; test -e /etc/removed && echo LEAKED; exec sleep 86399"],
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("GREETING={greeting}")],
            "WorkingDir": "/opt/app",
            "User": "1000:1000"
        },
        "rootfs": {"type": "layers", "diff_ids": []}
    })
}

/// Three layers: busybox; files to be hidden; a whiteout and an opaque dir hiding them.
fn layers() -> Vec<Vec<u8>> {
    let middle = Tar::default()
        .dir("etc/")
        .file("etc/removed", b"hidden by a whiteout above")
        .dir("opt/")
        .dir("opt/app/")
        .file("opt/app/a", b"a")
        .file("opt/app/b", b"b")
        .dir("opt/keep/")
        .file("opt/keep/k", b"k")
        .finish();
    let top = Tar::default()
        .dir("etc/")
        .file("etc/.wh.removed", b"")
        .dir("opt/")
        .dir("opt/app/")
        .file("opt/app/.wh..wh..opq", b"")
        .file("opt/app/c", b"c")
        .finish();
    vec![gzip(&busybox_layer()), middle, gzip(&top)]
}

/// An OCI image layout archive (oci-layout, index.json, blobs/sha256/...).
fn oci_archive(layers: &[Vec<u8>], config: &serde_json::Value) -> Vec<u8> {
    let config = serde_json::to_vec(config).unwrap();
    let mut blobs = vec![(sha256(&config), config.clone())];
    let mut descs = Vec::new();
    for l in layers {
        let d = sha256(l);
        descs.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": format!("sha256:{d}"), "size": l.len()}),
        );
        blobs.push((d, l.clone()));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha256(&config)), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{}", sha256(&manifest)), "size": manifest.len()}],
    }))
    .unwrap();
    let mut t = Tar::default()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &index)
        .dir("blobs/")
        .dir("blobs/sha256/")
        .file(&format!("blobs/sha256/{}", sha256(&manifest)), &manifest);
    for (d, bytes) in blobs {
        t = t.file(&format!("blobs/sha256/{d}"), &bytes);
    }
    t.finish()
}

/// A `docker save` archive (manifest.json, <id>.json, <id>/layer.tar). With `linked`, each
/// distinct layer is written once as `<sha>.tar` and every `<n>/layer.tar` is a symlink to
/// it (`../<sha>.tar`), as docker and podman write a layer that repeats.
fn docker_archive(layers: &[Vec<u8>], config: &serde_json::Value, linked: bool) -> Vec<u8> {
    let config = serde_json::to_vec(config).unwrap();
    let cid = sha256(&config);
    let mut t = Tar::default();
    let mut names = Vec::new();
    let mut written = std::collections::HashSet::new();
    for (i, l) in layers.iter().enumerate() {
        let sha = sha256(l);
        let id = if linked {
            format!("{i:064}")
        } else {
            sha.clone()
        };
        t = t.dir(&format!("{id}/"));
        t = if !linked {
            t.file(&format!("{id}/layer.tar"), l)
        } else {
            if written.insert(sha.clone()) {
                t = t.file(&format!("{sha}.tar"), l);
            }
            let target = format!("../{sha}.tar");
            t.entry(
                &format!("{id}/layer.tar"),
                tar::EntryType::Symlink,
                b"",
                &target,
            )
        };
        names.push(format!("{id}/layer.tar"));
    }
    let manifest = serde_json::to_vec(&json!([
        {"Config": format!("{cid}.json"), "RepoTags": ["test:latest"], "Layers": names}
    ]))
    .unwrap();
    t.file(&format!("{cid}.json"), &config)
        .file("manifest.json", &manifest)
        .finish()
}

/// Waits until the env's console holds `want`; returns the console.
fn wait_logs(v: &Verse, env: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = String::from_utf8_lossy(&v.run(&["logs", env]).stdout).into_owned();
        if logs.contains(want) || Instant::now() > deadline {
            return logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn import_and_run(v: &Verse, kind: &str, archive: Vec<u8>) {
    let file = v.root().join(format!("{kind}.tar"));
    std::fs::write(&file, archive).unwrap();
    let out = v.ok(&["image", "import", kind, file.to_str().unwrap()]);
    assert!(out.contains(&format!("imported {kind}")), "{out}");
    let inspect = v.ok(&["image", "inspect", kind]);
    assert!(inspect.contains("user      1000:1000"), "{inspect}");
    assert!(inspect.contains("workdir   /opt/app"), "{inspect}");
    assert_eq!(
        inspect
            .matches(if kind == "oci" {
                "oci layer sha256:"
            } else {
                "docker layer "
            })
            .count(),
        3,
        "{inspect}"
    );
    v.apply(&format!(
        "[env.{kind}]\nimage = \"{kind}\"\nstop_timeout = \"100ms\"\n"
    ));
    let logs = wait_logs(v, kind, "k\n");
    // The image's env, user, workdir, entrypoint and cmd applied; the opaque dir hides a
    // and b, the whiteout hides /etc/removed, the untouched dir below stays.
    assert_eq!(logs, format!("{kind} uid=1000 in /opt/app\nc\nk\n"));
    let (code, out, _) = v.sh(kind, "ls /etc; cat /opt/keep/k");
    assert_eq!(code, 0);
    assert!(!out.contains("removed") && out.contains("passwd") && out.ends_with("k"));
    let verify = v.ok(&["image", "verify", kind]);
    assert!(verify.starts_with("ok: image"), "{verify}");
}

#[test]
fn docker_save_with_linked_layers_follows_the_links() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    let mut l = layers();
    // The top layer repeats the bottom one (busybox again), written once and linked twice.
    l[2] = l[0].clone();
    let file = v.root().join("linked.tar");
    std::fs::write(&file, docker_archive(&l, &config("linked"), true)).unwrap();
    let out = v.ok(&["image", "import", "linked", file.to_str().unwrap()]);
    assert!(
        out.contains("from the archive's image test:latest"),
        "{out}"
    );
    let d: serde_json::Value =
        serde_json::from_str(&v.ok(&["image", "inspect", "linked", "--json"])).unwrap();
    let layers = d["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{d}");
    assert_eq!(layers[0]["root"], layers[2]["root"], "the same file twice");
    assert!(
        v.ok(&["image", "verify", "linked"])
            .starts_with("ok: image")
    );
}

#[test]
fn oci_layout_and_docker_save_with_whiteouts_and_config() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    import_and_run(&v, "oci", oci_archive(&layers(), &config("oci")));
    import_and_run(
        &v,
        "docker",
        docker_archive(&layers(), &config("docker"), false),
    );
    // Both share every layer but the config: the busybox files are stored once.
    let ls: Vec<serde_json::Value> =
        serde_json::from_str(&v.ok(&["image", "ls", "--json"])).unwrap();
    let oci = ls.iter().find(|i| i["name"] == "oci").unwrap();
    assert_eq!(oci["unique_bytes"], 0, "{oci}");
    assert!(oci["shared_bytes"].as_u64().unwrap() > 100_000, "{oci}");
}

/// Imports `archive` expecting a refusal that names `entry` and says `why`, with no image
/// recorded, the store's tmp empty and nothing at `escape`.
fn refused(v: &Verse, case: &str, archive: Vec<u8>, entry: &str, why: &str, escape: &Path) {
    let file = v.root().join(format!("{case}.tar"));
    std::fs::write(&file, archive).unwrap();
    let out = v.run(&["image", "import", case, file.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{case}: must be refused");
    assert!(err.contains(entry), "{case}: {err:?} should name {entry:?}");
    assert!(err.contains(why), "{case}: {err:?} should say {why:?}");
    assert!(!escape.exists(), "{case}: wrote {}", escape.display());
    let tmp = v.root().join("var/lib/verse/store/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "{case}: leftovers in the store's tmp"
    );
    let ls = v.ok(&["image", "ls"]);
    assert!(!ls.contains(case), "{case}: recorded anyway: {ls}");
}

#[test]
fn hostile_archives_are_refused_naming_the_entry() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    let escape = std::env::temp_dir().join(format!("verse-escape-{}", std::process::id()));
    let esc = escape.to_str().unwrap();
    let up = format!("../../../../../../..{esc}");
    let cfg = config("x");
    let oci = |layer: Vec<u8>| oci_archive(&[layer], &cfg);

    // The outer archive.
    let valid = oci_archive(&[Tar::default().file("f", b"f").finish()], &cfg);
    let outer = |extra: Tar| extra.raw(&valid).0;
    refused(
        &v,
        "outer-dotdot",
        outer(Tar::default().file(&up, b"x")),
        &up,
        "'..'",
        &escape,
    );
    refused(
        &v,
        "outer-abs",
        outer(Tar::default().file(esc, b"x")),
        esc,
        "absolute",
        &escape,
    );
    refused(
        &v,
        "outer-symlink",
        Tar::default()
            .entry("blobs", tar::EntryType::Symlink, b"", "/tmp")
            .raw(&valid)
            .0,
        "\"blobs\"",
        "outside the archive",
        &escape,
    );
    // Links inside the outer archive are followed only to another file of it.
    let linked = |link: &str, target: &str| {
        Tar::default()
            .entry(link, tar::EntryType::Symlink, b"", target)
            .raw(&valid)
            .0
    };
    refused(
        &v,
        "outer-link-up",
        linked("x/layer.tar", "../../../etc/passwd"),
        "\"x/layer.tar\"",
        "outside the archive",
        &escape,
    );
    refused(
        &v,
        "outer-link-missing",
        linked("x/layer.tar", "../nothing.tar"),
        "\"x/layer.tar\"",
        "not a file of the archive",
        &escape,
    );
    let looped = Tar::default()
        .entry("a", tar::EntryType::Symlink, b"", "b")
        .entry("b", tar::EntryType::Symlink, b"", "a")
        .raw(&valid)
        .0;
    refused(
        &v,
        "outer-link-loop",
        looped,
        "\"a\"",
        "loop of links",
        &escape,
    );
    refused(
        &v,
        "outer-hardlink-out",
        Tar::default()
            .entry("h", tar::EntryType::Link, b"", "/etc/shadow")
            .raw(&valid)
            .0,
        "\"h\"",
        "outside the archive",
        &escape,
    );
    refused(
        &v,
        "outer-dup",
        outer(Tar::default().file("index.json", b"{}")),
        "index.json",
        "appears twice",
        &escape,
    );
    let mut bad_digest = oci_archive(&[Tar::default().file("f", b"f").finish()], &cfg);
    let at = bad_digest.windows(3).position(|w| w == b"\0f\0").unwrap();
    bad_digest[at + 512] ^= 1; // one byte of a layer blob's content (its body follows)
    refused(
        &v,
        "outer-digest",
        bad_digest,
        "blob sha256:",
        "the archive is corrupt",
        &escape,
    );

    // Inside a layer.
    let layer = |t: Tar| oci(t.finish());
    refused(
        &v,
        "dotdot",
        layer(Tar::default().file(&up, b"x")),
        &up,
        "'..'",
        &escape,
    );
    refused(
        &v,
        "abs",
        layer(Tar::default().file(esc, b"x")),
        esc,
        "absolute",
        &escape,
    );
    let via = Tar::default()
        .entry("t", tar::EntryType::Symlink, b"", "/tmp")
        .file("t/verse-escape", b"x");
    refused(
        &v,
        "via-symlink",
        layer(via),
        "t/verse-escape",
        "parent /t is a symlink",
        &escape,
    );
    let hard = Tar::default().entry("h", tar::EntryType::Link, b"", "/etc/shadow");
    refused(&v, "hardlink", layer(hard), "\"h\"", "absolute", &escape);
    let dup = Tar::default()
        .file("etc/passwd", b"a")
        .file("etc/passwd", b"b");
    refused(
        &v,
        "dup",
        layer(dup),
        "etc/passwd",
        "appears twice",
        &escape,
    );
    let mut pax = Tar::default().file("first", b"ok").0;
    pax.extend(header("PaxHeaders/x", tar::EntryType::XHeader, 1 << 30, ""));
    pax.extend(vec![b'a'; 4 << 20]);
    refused(&v, "pax", oci(gzip(&pax)), "\"first\"", "enormous", &escape);
    // A gzip bomb: one member of 1 MiB of zeros repeated (gzip allows concatenated members).
    let declared = 80u64 << 20;
    let mut bomb = gzip(&header("bomb", tar::EntryType::Regular, declared, ""));
    let zeros = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..(declared >> 20) + 1 {
        bomb.extend_from_slice(&zeros);
    }
    refused(&v, "bomb", oci(bomb), "bomb", "decompression bomb", &escape);

    // A device node in a layer is never created: it is left out, and the import says so.
    let dev = Tar::default()
        .dir("opt/")
        .entry("opt/sda", tar::EntryType::Block, b"", "")
        .file("opt/f", b"f")
        .finish();
    let file = v.root().join("device.tar");
    std::fs::write(&file, oci(dev)).unwrap();
    let out = v.ok(&["image", "import", "device", file.to_str().unwrap()]);
    assert!(
        out.contains("left out 1 device node(s) (envs get their own /dev): 0 under /dev; outside /dev: /opt/sda"),
        "{out}"
    );
    let inspect = v.ok(&["image", "inspect", "device"]);
    assert!(
        inspect.contains("(left out 1 device node(s): /opt/sda)"),
        "{inspect}"
    );
    assert!(
        v.ok(&["image", "verify", "device"])
            .starts_with("ok: image")
    );

    // The store is consistent after all that.
    let out = v.ok(&["image", "verify", "busybox"]);
    assert!(out.starts_with("ok: image"), "{out}");
}

#[test]
fn signature_over_another_manifest_is_refused() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    for (name, greeting) in [("a", "one"), ("b", "two")] {
        let file = v.root().join(format!("{name}.tar"));
        std::fs::write(&file, oci_archive(&layers(), &config(greeting))).unwrap();
        v.ok(&["image", "import", name, file.to_str().unwrap()]);
    }
    let key = v.root().join("k.key");
    let public = v.ok(&["key", "generate", "--out", key.to_str().unwrap()]);
    let public = public.trim();
    v.ok(&["image", "sign", "a", "--key", key.to_str().unwrap()]);
    let manifest = |name: &str| -> String {
        let d: serde_json::Value =
            serde_json::from_str(&v.ok(&["image", "inspect", name, "--json"])).unwrap();
        d["info"]["manifest"].as_str().unwrap().to_string()
    };
    let (ma, mb) = (manifest("a"), manifest("b"));
    assert_ne!(ma, mb);
    let sigs = v.root().join("var/lib/verse/store/signatures");
    let hex = public.trim_start_matches("ed25519:");
    let signature = std::fs::read_to_string(sigs.join(&ma).join(hex)).unwrap();

    // Through the API: a's signature offered for b does not verify.
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", v.socket().to_str().unwrap()])
        .args(["-H", "content-type: application/json", "-d"])
        .arg(json!({"key": public, "signature": signature}).to_string())
        .arg("http://verse/v1/images/b/signatures")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("does not verify against manifest"), "{body}");
    assert!(
        v.ok(&["image", "inspect", "b"])
            .contains("signatures: none")
    );

    // Planted in the store behind the daemon's back: shown INVALID, refused at start.
    std::fs::create_dir_all(sigs.join(&mb)).unwrap();
    std::fs::write(sigs.join(&mb).join(hex), &signature).unwrap();
    let inspect = v.ok(&["image", "inspect", "b"]);
    assert!(
        inspect.contains(&format!("signature {public} INVALID")),
        "{inspect}"
    );
    let spec = format!(
        "[trust]\nrequire_signed = true\nkeys = [\"{public}\"]\n\n[env.b]\nimage = \"b\"\n\n[env.a]\nimage = \"a\"\nstop_timeout = \"100ms\"\n"
    );
    let file = v.write_spec("verse.toml", &spec);
    let out = v.run(&["apply", file.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("image `b`") && err.contains("does not match its manifest"),
        "{err}"
    );
    // The correctly signed image runs under the same policy.
    v.ok(&["up", "a"]);
    assert_eq!(v.sh("a", "echo ok").1, "ok\n");
}

#[test]
fn build_step_whiteouts_and_opaque_dirs_reach_the_env() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    // busybox has /etc/motd and /etc/hostname; the step deletes one file and replaces /etc.
    let spec = r#"
[image.wh]
base = "busybox"
run = ["mkdir -p /srv/data && echo old > /srv/data/old && echo keep > /srv/keep",
       "rm /etc/motd && rm -rf /srv/data && mkdir /srv/data && echo new > /srv/data/new"]

[env.w]
image = "wh"
"#;
    let file = v.write_spec("verse.toml", spec);
    let out = v.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    assert!(out.contains("built wh: 3 layers"), "{out}");
    v.ok(&["apply", file.to_str().unwrap()]);
    let (code, out, err) = v.sh(
        "w",
        "test -e /etc/motd && echo motd; ls /srv/data; cat /srv/keep; cat /etc/hostname >/dev/null && echo hostname",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "new\nkeep\nhostname\n");
    // The whiteout and the opaque marker are in the top layer, as the store sees it.
    let verify = v.ok(&["image", "verify", "wh"]);
    assert!(verify.starts_with("ok: image"), "{verify}");
}
