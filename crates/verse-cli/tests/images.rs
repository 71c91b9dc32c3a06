//! Images end to end: a real debootstrap minbase build with one package (the base is cached
//! under .cache/debootstrap between runs), layer caching, a rebuild from an edited step,
//! stacking, signatures and the trust policy, tamper detection on a lower layer, and gc.
//! ONE build shared by every check, so the suite stays fast.

mod common;

use common::store_check::{gc_exactly, manifest_of, reachable};
use common::{Verse, can_run};

fn spec(step: &str, trust: &str) -> String {
    format!(
        r#"
[image.hello]
base = "debian:bookworm"
packages = ["hello"]
files = {{ "/etc/motd" = "Welcome to the guild" }}
run = ["useradd -m writer", "{step}"]
user = "writer"
workdir = "/home/writer"

[env.h]
image = "hello"
command = ["/bin/sh", "-c", "sleep 86399"]
{trust}
"#
    )
}

#[test]
fn debootstrap_build_cache_trust_tamper_gc() {
    if !can_run() {
        return;
    }
    if !std::path::Path::new("/usr/sbin/debootstrap").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and debootstrap is missing (scripts/install-deps.sh installs it)"
        );
        eprintln!("\n!!! SKIPPED: debootstrap is not installed !!!\n");
        return;
    }
    let cache = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/debootstrap");
    std::fs::create_dir_all(cache).unwrap();
    // SAFETY: set before any thread of this test process exists; nextest runs each test in
    // its own process. The daemon inherits it.
    unsafe { std::env::set_var("VERSE_DEBOOTSTRAP_CACHE", cache) };
    let v = Verse::start();

    // First build: every layer built (the base may come from the host cache tar).
    let file = v.write_spec("verse.toml", &spec("echo one > /step", ""));
    let f = file.to_str().unwrap();
    let out = v.ok(&["image", "build", "-f", f]);
    assert!(out.contains("apt-get install hello: done"), "{out}");
    assert!(out.contains("built hello: 5 layers"), "{out}");

    // Second build: nothing to do.
    let out = v.ok(&["image", "build", "-f", f]);
    assert!(out.contains("0 layer(s) built, 5 from cache"), "{out}");

    // Editing the last step rebuilds only that layer.
    let file = v.write_spec("verse.toml", &spec("echo two > /step", ""));
    let f = file.to_str().unwrap();
    let out = v.ok(&["image", "build", "-f", f]);
    assert!(out.contains("1 layer(s) built, 4 from cache"), "{out}");

    // Apply runs an env on the stacked layers with the image's user and workdir.
    v.ok(&["apply", f]);
    let (code, stdout, _) = v.sh("h", "id -un; pwd; hello; cat /etc/motd /step");
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "writer\n/home/writer\nHello, world!\nWelcome to the guildtwo\n"
    );
    let inspect = v.ok(&["image", "inspect", "hello"]);
    assert!(
        inspect.contains("debootstrap --variant=minbase bookworm"),
        "{inspect}"
    );
    assert!(inspect.contains("signatures: none"), "{inspect}");
    v.ok(&["rm", "h"]);

    // Trust: unsigned is refused with the reason; signed by the trusted key runs; a key the
    // spec does not trust is refused.
    let key_path = v.root().join("k.key");
    let public = v.ok(&["key", "generate", "--out", key_path.to_str().unwrap()]);
    let trust = format!(
        "[trust]\nrequire_signed = true\nkeys = [\"{}\"]\n",
        public.trim()
    );
    let file = v.write_spec("verse.toml", &spec("echo two > /step", &trust));
    let f = file.to_str().unwrap();
    let out = v.run(&["apply", f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unsigned image must not start");
    assert!(
        err.contains("refused by the trust policy: it is not signed"),
        "{err}"
    );
    let other = v.root().join("other.key");
    v.ok(&["key", "generate", "--out", other.to_str().unwrap()]);
    v.ok(&["image", "sign", "hello", "--key", other.to_str().unwrap()]);
    let out = v.run(&["up", "h"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("signed only by keys the spec does not trust"),
        "{err}"
    );
    v.ok(&[
        "image",
        "sign",
        "hello",
        "--key",
        key_path.to_str().unwrap(),
    ]);
    v.ok(&["up", "h"]);
    assert_eq!(v.sh("h", "hello").1, "Hello, world!\n");
    v.ok(&["down", "h"]);

    // Tampering with a file of a lower layer (the package layer) stops the next start.
    let checkouts = v.root().join("var/lib/verse/store/checkouts");
    let hello_bin = std::fs::read_dir(&checkouts)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("usr/bin/hello")))
        .find(|p| p.exists())
        .expect("a checkout holds /usr/bin/hello");
    std::fs::write(&hello_bin, b"#!/bin/sh\necho pwned\n").unwrap();
    let out = v.run(&["up", "h"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("failed verification"),
        "{err}"
    );
    assert!(err.contains("/usr/bin/hello"), "{err}");

    // Export and import on another daemon: the Debian image (with /dev nodes in its base)
    // arrives with the same manifest hash and both signatures.
    let archive = v.root().join("hello.oci.tar");
    v.ok(&["image", "export", "hello", archive.to_str().unwrap()]);
    let other = Verse::start();
    other.ok(&["image", "import", "hello", archive.to_str().unwrap()]);
    assert_eq!(manifest_of(&other, "hello"), manifest_of(&v, "hello"));
    let moved = other.ok(&["image", "inspect", "hello"]);
    assert_eq!(moved.matches(" valid").count(), 2, "{moved}");
    drop(other);

    // gc: with the image and env gone, exactly what busybox does not reach is freed (every
    // layer of both builds, both manifests, the build cache entries naming them).
    v.ok(&["rm", "h"]);
    v.ok(&["image", "rm", "hello"]);
    let store = verse_store::Store::open(v.root().join("var/lib/verse/store")).unwrap();
    let expected = reachable(&store, &[manifest_of(&v, "busybox")], &[]);
    gc_exactly(&v, &expected);
    // A second gc finds nothing more to free.
    let again = v.ok(&["image", "gc"]);
    assert!(
        again.contains("0 objects, 0 trees, 0 layers, 0 manifests"),
        "{again}"
    );
}
