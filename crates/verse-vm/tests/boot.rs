//! Boots the real guest kernel with the real agent under QEMU (TCG).

use std::path::{Path, PathBuf};
use std::time::Duration;
use verse_vm::{Accel, initramfs, kernel::Kernel};

/// The kernel, QEMU and static agent, or None (loudly; a failure under CI=true).
fn parts() -> Option<(Kernel, PathBuf)> {
    let skip = |why: String| {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and this host cannot boot a guest: {why}");
        }
        eprintln!("\n!!! SKIPPED: {why} !!!\n");
        None
    };
    let kernel = match Kernel::find() {
        Ok(k) => k,
        Err(e) => return skip(e.to_string()),
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let agent = target.join("x86_64-unknown-linux-gnu/debug/verse-agent");
    if !agent.is_file() {
        return skip(format!(
            "no static agent at {}; run scripts/build-agent.sh",
            agent.display()
        ));
    }
    if std::process::Command::new(verse_vm::qemu::QEMU)
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("qemu-system-x86_64 is not installed".into());
    }
    Some((kernel, agent))
}

#[test]
fn the_agent_reaches_init_under_tcg() {
    let Some((kernel, agent)) = parts() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let initramfs = initramfs::build(&agent, &kernel, dir.path()).unwrap();
    let took = verse_vm::accel::time_to_init(
        Path::new(verse_vm::qemu::QEMU),
        Accel::Tcg,
        &kernel,
        &initramfs,
        Duration::from_secs(120),
    )
    .unwrap();
    eprintln!("TCG guest reached init in {took:?}");
}
