mod common;

use std::fs;

use common::*;
use verse_store::Hash;

#[test]
fn gc_frees_only_unreachable() {
    let (tmp, store) = new_store();
    let a = import(&store, &busybox_dir());
    let src = tmp.path().join("b");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("unique"), b"only layer b has this").unwrap();
    fs::copy(busybox_dir().join("etc/passwd"), src.join("passwd")).unwrap();
    let b = import(&store, &src);
    store.checkout(&a.root, 100_000).unwrap();
    let co_b = store.checkout(&b.root, 100_000).unwrap();
    let unique = Hash::of(b"only layer b has this");
    let shared = Hash::of(&fs::read(src.join("passwd")).unwrap());
    assert!(store.has_object(&unique));

    let report = store.gc(&[a.root]).unwrap();
    assert_eq!(report.objects_removed, 1, "{report:?}");
    assert_eq!(report.checkouts_removed, 1);
    assert_eq!(report.layers_removed, 1);
    assert!(
        report.trees_removed >= 2,
        "b's root and listing: {report:?}"
    );
    assert!(report.freed_bytes >= 21, "{report:?}");
    assert!(!store.has_object(&unique));
    assert!(
        store.has_object(&shared),
        "content shared with a kept layer stays"
    );
    assert!(!store.has(&b.root) && !co_b.exists());
    assert!(store.has(&a.root));
    assert!(store.verify(&a.root).unwrap().is_empty());
    assert_eq!(store.quick_check(&a.root, 100_000), Ok(()));

    let again = store.gc(&[a.root]).unwrap();
    assert_eq!(again, verse_store::GcReport::default());

    // Nothing kept: everything goes.
    let all = store.gc(&[]).unwrap();
    assert!(all.objects_removed > 0 && all.pool_removed > 0 && all.checkouts_removed == 1);
    assert_eq!(count_files(&store.dir().join("objects")), 0);
    assert_eq!(count_files(&store.dir().join("pool")), 0);
    assert_eq!(count_files(&store.dir().join("checkouts")), 0);
}
