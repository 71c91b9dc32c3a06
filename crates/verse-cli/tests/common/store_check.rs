//! Store listings and reachability computed by the tests themselves, to check gc exactly.

use std::collections::BTreeSet;
use std::path::Path;

use verse_store::tree::EntryKind;
use verse_store::{Hash, Store};

use super::Verse;

/// Everything the store holds, as "kind/name" (objects, trees, layers, manifests, pool
/// entries, checkouts, build-cache entries).
pub fn listing(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kind in ["objects", "trees", "manifests"] {
        for bucket in std::fs::read_dir(store.join(kind)).into_iter().flatten() {
            for e in std::fs::read_dir(bucket.unwrap().path()).unwrap() {
                out.insert(format!(
                    "{kind}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    for kind in ["layers", "pool", "checkouts", "build-cache"] {
        for e in std::fs::read_dir(store.join(kind)).into_iter().flatten() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if kind == "checkouts" && name.ends_with(".state") {
                continue;
            }
            out.insert(format!("{kind}/{name}"));
        }
    }
    out
}

/// What must survive a gc that keeps `manifests` and the layers `roots`.
pub fn reachable(store: &Store, manifests: &[Hash], roots: &[Hash]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut layers: Vec<Hash> = roots.to_vec();
    for m in manifests {
        out.insert(format!("manifests/{m}"));
        layers.extend(store.manifest(m).unwrap().layers.iter().map(|l| l.root));
    }
    fn walk(store: &Store, tree: &Hash, out: &mut BTreeSet<String>) {
        out.insert(format!("trees/{tree}"));
        for e in store.read_tree(tree).unwrap() {
            match e.kind {
                EntryKind::Dir(h) => walk(store, &h, out),
                EntryKind::File(h) => {
                    out.insert(format!("objects/{h}"));
                }
                _ => {}
            }
        }
    }
    for root in layers {
        out.insert(format!("layers/{root}"));
        walk(store, &root, &mut out);
    }
    out
}

pub fn manifest_of(v: &Verse, image: &str) -> Hash {
    let d: serde_json::Value =
        serde_json::from_str(&v.ok(&["image", "inspect", image, "--json"])).unwrap();
    d["info"]["manifest"].as_str().unwrap().parse().unwrap()
}

/// Runs gc and checks the store kept exactly `expected` among objects, trees, layers and
/// manifests, and that the report counts what went.
pub fn gc_exactly(v: &Verse, expected: &BTreeSet<String>) {
    let dir = v.root().join("var/lib/verse/store");
    let before = listing(&dir);
    let report: serde_json::Value =
        serde_json::from_str(&v.ok(&["image", "gc", "--json"])).unwrap();
    let after = listing(&dir);
    let content = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .filter(|p| !p.starts_with("pool/") && !p.starts_with("checkouts/"))
            .filter(|p| !p.starts_with("build-cache/"))
            .cloned()
            .collect()
    };
    assert_eq!(content(&after), *expected, "gc kept the wrong set");
    let gone = |kind: &str| {
        before
            .difference(&after)
            .filter(|p| p.starts_with(&format!("{kind}/")))
            .count() as u64
    };
    assert_eq!(report["objects_removed"], gone("objects"), "{report}");
    assert_eq!(report["trees_removed"], gone("trees"), "{report}");
    assert_eq!(report["layers_removed"], gone("layers"), "{report}");
    assert_eq!(report["manifests_removed"], gone("manifests"), "{report}");
    assert_eq!(report["checkouts_removed"], gone("checkouts"), "{report}");
    // Pool entries, checkouts and cache entries left all belong to kept layers and objects.
    let kept_layers: BTreeSet<&str> = expected
        .iter()
        .filter_map(|p| p.strip_prefix("layers/"))
        .collect();
    let kept_objects: BTreeSet<&str> = expected
        .iter()
        .filter_map(|p| p.strip_prefix("objects/"))
        .collect();
    for p in &after {
        if let Some(c) = p.strip_prefix("checkouts/") {
            assert!(kept_layers.contains(c.split('-').next().unwrap()), "{p}");
        }
        if let Some(c) = p.strip_prefix("pool/") {
            assert!(kept_objects.contains(c.split('.').next().unwrap()), "{p}");
        }
        if let Some(c) = p.strip_prefix("build-cache/") {
            let root = std::fs::read_to_string(dir.join("build-cache").join(c)).unwrap();
            assert!(kept_layers.contains(root.trim()), "{p} names a freed layer");
        }
    }
    // The kept images are whole.
    let store = Store::open(&dir).unwrap();
    for layer in &kept_layers {
        assert!(store.verify(&layer.parse().unwrap()).unwrap().is_empty());
    }
}
