mod common;

use std::fs;

use common::*;
use verse_store::{ImportOptions, NoProgress};

const WHITEOUTS: ImportOptions = ImportOptions {
    id_base: 0,
    whiteouts: true,
    refuse_devices: false,
    skip_devices: false,
};

/// Export then import gives the same root hash: contents, modes, owners, symlinks, devices,
/// fifos, whiteouts and opaque dirs all survive; the same layer always exports the same bytes.
#[test]
fn export_then_import_keeps_the_root_hash() {
    let (tmp, store) = new_store();
    let busybox = import(&store, &busybox_dir());
    let mut odd = RawTar::new()
        .dir("etc/")
        .file("etc/.wh.motd", b"")
        .dir("opt/")
        .file("opt/.wh..wh..opq", b"")
        .file("opt/new", b"new")
        .symlink("link", "../../outside")
        .file(&"n".repeat(99), b"long name")
        .unterminated();
    let mut dev = tar::Header::new_ustar();
    dev.set_path("dev-null").unwrap();
    dev.set_entry_type(tar::EntryType::Char);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    dev.set_mode(0o666);
    dev.set_uid(7);
    dev.set_gid(70_000);
    dev.set_size(0);
    dev.set_mtime(0);
    dev.set_cksum();
    odd.extend_from_slice(dev.as_bytes());
    odd.extend_from_slice(&[0; 1024]);
    let odd_path = tmp.path().join("odd.tar");
    fs::write(&odd_path, odd).unwrap();
    let odd = store
        .import_tar_with(&odd_path, WHITEOUTS, &mut NoProgress)
        .unwrap();
    for (i, layer) in [busybox, odd].iter().enumerate() {
        let mut bytes = Vec::new();
        let (files, size) = store.export_layer_tar(&layer.root, &mut bytes).unwrap();
        assert_eq!((files, size), (layer.files, layer.size));
        let mut again = Vec::new();
        store.export_layer_tar(&layer.root, &mut again).unwrap();
        assert!(bytes == again, "exports are deterministic");
        let (tmp2, other) = new_store();
        let path = tmp2.path().join(format!("{i}.tar"));
        fs::write(&path, &bytes).unwrap();
        let back = other
            .import_tar_with(&path, WHITEOUTS, &mut NoProgress)
            .unwrap();
        assert_eq!(back.root, layer.root, "layer {i}");
    }
}
