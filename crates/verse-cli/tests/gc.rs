//! `verse image gc` frees exactly what no image, env or generation still reaches: the test
//! lists the store before and after, computes the reachable set itself from the image records
//! and the layers a running env is on, and compares.

mod common;

use std::collections::BTreeSet;

use common::store_check::{gc_exactly, listing, manifest_of, reachable};
use common::{Verse, can_run};
use verse_store::Store;

fn spec(step: &str) -> String {
    format!(
        r#"
[image.app]
base = "busybox"
files = {{ "/etc/app.conf" = "port = 80" }}
run = ["echo {step} > /step"]

[env.e]
image = "app"
stop_timeout = "100ms"
"#
    )
}

#[test]
fn gc_frees_exactly_what_nothing_reaches() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    let dir = v.root().join("var/lib/verse/store");
    let file = v.write_spec("verse.toml", &spec("one"));
    v.ok(&["apply", file.to_str().unwrap()]);
    let old = manifest_of(&v, "app");
    // Rebuilt under the same name while env e still runs on the old top layer.
    let file = v.write_spec("verse.toml", &spec("two"));
    v.ok(&["image", "build", "-f", file.to_str().unwrap()]);
    let new = manifest_of(&v, "app");
    assert_ne!(old, new);
    // An image imported and removed: all its own content is garbage.
    let junk = v.root().join("junk");
    std::fs::create_dir_all(junk.join("d")).unwrap();
    std::fs::write(junk.join("d/only-here"), b"unique to junk").unwrap();
    v.ok(&["image", "import", "junk", junk.to_str().unwrap()]);
    v.ok(&["image", "rm", "junk"]);

    let store = Store::open(&dir).unwrap();
    let busybox = manifest_of(&v, "busybox");
    let old_top = store.manifest(&old).unwrap().layers.last().unwrap().root;
    let expected = reachable(&store, &[busybox, new], &[old_top]);
    assert!(!expected.contains(&format!("manifests/{old}")));
    gc_exactly(&v, &expected);
    assert_eq!(v.sh("e", "cat /step").1, "one\n", "the env still runs");
    // A second gc frees nothing.
    gc_exactly(&v, &expected);

    // Once the env is gone, its old top layer is garbage too.
    v.ok(&["rm", "e"]);
    let expected = reachable(&store, &[busybox, new], &[]);
    assert!(!expected.contains(&format!("layers/{old_top}")));
    gc_exactly(&v, &expected);

    // No image left: nothing left.
    v.ok(&["image", "rm", "app"]);
    v.ok(&["image", "rm", "busybox"]);
    gc_exactly(&v, &BTreeSet::new());
    assert_eq!(listing(&dir), BTreeSet::new(), "pool, checkouts, cache");
}
