//! KVM or TCG.
//!
//! `/dev/kvm` existing proves little: under a paravirtual nested KVM
//! (kvm-pvm) stock guest kernels crawl, three orders of magnitude slower than
//! TCG. So `auto` boots a tiny guest (the real kernel and initramfs, the agent
//! printing a marker and powering off) under KVM once, and uses KVM only if
//! it reaches init in time; the decision is cached.

use crate::qemu::{base_args, kernel_args};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use verse_agent::proto;

/// A stock kernel under real KVM reaches init in well under a second; under
/// TCG in about 4 s here. Anything slower than this is not worth using.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the spec asks for (`accel = "auto" | "kvm" | "tcg"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!("unknown accelerator {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccelDecision {
    pub accel: Accel,
    /// Why, in words `verse doctor` prints.
    pub reason: String,
    /// Milliseconds the KVM probe guest took to reach init, when it did.
    pub kvm_probe_ms: Option<u64>,
    /// The kernel the probe booted.
    pub kernel: String,
}

/// Resolves `choice`; for `auto`, reads the cached decision at `cache` or
/// probes and writes it.
pub fn decide(
    choice: AccelChoice,
    cache: &Path,
    qemu: &Path,
    kernel: &crate::kernel::Kernel,
    initramfs: &Path,
) -> AccelDecision {
    match choice {
        AccelChoice::Kvm => {
            return AccelDecision {
                accel: Accel::Kvm,
                reason: "accel = \"kvm\" in the spec".into(),
                kvm_probe_ms: None,
                kernel: kernel.release.clone(),
            };
        }
        AccelChoice::Tcg => {
            return AccelDecision {
                accel: Accel::Tcg,
                reason: "accel = \"tcg\" in the spec".into(),
                kvm_probe_ms: None,
                kernel: kernel.release.clone(),
            };
        }
        AccelChoice::Auto => {}
    }
    if let Ok(bytes) = std::fs::read(cache)
        && let Ok(decision) = serde_json::from_slice::<AccelDecision>(&bytes)
        && decision.kernel == kernel.release
    {
        return decision;
    }
    let decision = probe(qemu, kernel, initramfs);
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = cache.with_extension("tmp");
    if std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&decision).unwrap_or_default(),
    )
    .is_ok()
    {
        let _ = std::fs::rename(&tmp, cache);
    }
    decision
}

fn probe(qemu: &Path, kernel: &crate::kernel::Kernel, initramfs: &Path) -> AccelDecision {
    let tcg = |reason: String, ms: Option<u64>| AccelDecision {
        accel: Accel::Tcg,
        reason,
        kvm_probe_ms: ms,
        kernel: kernel.release.clone(),
    };
    if let Err(e) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(
            format!("/dev/kvm is not usable ({e}); using TCG (software emulation, slow)"),
            None,
        );
    }
    match time_to_init(qemu, crate::Accel::Kvm, kernel, initramfs, PROBE_TIMEOUT) {
        Ok(elapsed) => AccelDecision {
            accel: Accel::Kvm,
            reason: format!(
                "a tiny guest reached init under KVM in {} ms",
                elapsed.as_millis()
            ),
            kvm_probe_ms: Some(elapsed.as_millis() as u64),
            kernel: kernel.release.clone(),
        },
        Err(why) => tcg(
            format!(
                "/dev/kvm exists but a tiny guest did not reach init under KVM ({why}): \
                 nested or paravirtual KVM (e.g. kvm-pvm) runs stock kernels far too slowly; \
                 using TCG (software emulation, slow)"
            ),
            None,
        ),
    }
}

/// Boots `kernel` with the agent in probe mode and returns how long it took
/// to print the marker.
pub fn time_to_init(
    qemu: &Path,
    accel: Accel,
    kernel: &crate::kernel::Kernel,
    initramfs: &Path,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(base_args(accel, 1, 128))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!("{} {}", kernel_args(accel), proto::PROBE_FLAG))
        .args(["-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", qemu.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains(proto::PROBE_MARKER) {
                let _ = tx.send(Instant::now());
                return;
            }
        }
    });
    let result = match rx.recv_timeout(timeout) {
        Ok(at) => Ok(at - start),
        Err(_) => Err(format!("no init after {} s", timeout.as_secs())),
    };
    let _ = child.kill();
    let _ = child.wait();
    if result.is_err()
        && let Some(mut stderr) = child.stderr.take()
    {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        if !text.trim().is_empty() {
            return Err(format!(
                "{}; QEMU said: {}",
                result.unwrap_err(),
                text.trim()
            ));
        }
    }
    result
}
