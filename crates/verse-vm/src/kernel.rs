//! The guest kernel: Debian's linux-image, unpacked (not installed: this host
//! need not boot it) by `scripts/install-deps.sh` into
//! `/usr/lib/verse/kernel`, or wherever `VERSE_VM_KERNEL` points.

use crate::{Result, VmError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "/usr/lib/verse/kernel";

/// Modules the agent loads, in no particular order (dependencies are added
/// and ordered by [`Kernel::module_order`]).
pub const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_console",
    "crc32c_generic",
    "erofs",
    "overlay",
    "ext4",
    "virtio_net",
];

#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub release: String,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
}

impl Kernel {
    /// `VERSE_VM_KERNEL` (an unpacked linux-image tree), else the default dir.
    pub fn find() -> Result<Kernel> {
        let dir = std::env::var_os("VERSE_VM_KERNEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Self::in_dir(&dir)
    }

    pub fn in_dir(dir: &Path) -> Result<Kernel> {
        let missing = || {
            VmError::Missing(format!(
                "no guest kernel in {} (expected boot/vmlinuz-* and lib/modules/*); \
                 run scripts/install-deps.sh, or set VERSE_VM_KERNEL to an unpacked Debian linux-image package",
                dir.display()
            ))
        };
        let boot = std::fs::read_dir(dir.join("boot")).map_err(|_| missing())?;
        let mut vmlinuz: Vec<PathBuf> = boot
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .collect();
        vmlinuz.sort();
        let vmlinuz = vmlinuz.pop().ok_or_else(missing)?;
        let release = vmlinuz
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_start_matches("vmlinuz-")
                    .to_string()
            })
            .unwrap_or_default();
        let modules = dir.join("lib/modules").join(&release);
        if !modules.is_dir() {
            return Err(missing());
        }
        Ok(Kernel {
            vmlinuz,
            release,
            modules,
        })
    }

    /// The `.ko` files of `wanted` and everything they depend on, each after
    /// its dependencies (read from the modules' own `depends=` field: the
    /// unpacked package has no modules.dep).
    pub fn module_order(&self, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
        let mut index = HashMap::new();
        let mut stack = vec![self.modules.join("kernel")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
                    && let Some(stem) = name.strip_suffix(".ko")
                {
                    index.insert(stem.replace('-', "_"), path);
                }
            }
        }
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        fn visit(
            name: &str,
            index: &HashMap<String, PathBuf>,
            seen: &mut std::collections::HashSet<String>,
            order: &mut Vec<(String, PathBuf)>,
        ) -> Result<()> {
            let name = name.replace('-', "_");
            if !seen.insert(name.clone()) {
                return Ok(());
            }
            let Some(path) = index.get(&name) else {
                // Built into the kernel (or absent): nothing to load.
                return Ok(());
            };
            let bytes = std::fs::read(path).map_err(crate::io_err("reading module", path))?;
            for dep in depends(&bytes) {
                visit(&dep, index, seen, order)?;
            }
            order.push((name, path.clone()));
            Ok(())
        }
        for name in wanted {
            visit(name, &index, &mut seen, &mut order)?;
        }
        Ok(order)
    }
}

/// The `depends=` entry of a module's .modinfo section.
fn depends(ko: &[u8]) -> Vec<String> {
    let needle = b"depends=";
    ko.windows(needle.len())
        .position(|w| w == needle)
        .map(|start| {
            let rest = &ko[start + needle.len()..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn depends_reads_the_modinfo_field() {
        let ko = b"\x7fELF...license=GPL\0depends=virtio,virtio_ring\0intree=Y\0";
        assert_eq!(super::depends(ko), vec!["virtio", "virtio_ring"]);
        assert!(super::depends(b"depends=\0").is_empty());
    }
}
