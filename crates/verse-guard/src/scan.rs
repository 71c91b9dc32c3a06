//! Checks run on every file that enters quarantine, in this process and
//! without running anything the file contains: the content type against the
//! name's extension (`infer`), and for zip archives the entry count, the
//! total and per-entry expansion and the entry names (`zip`), measured by
//! decompressing into a counter, never onto disk. YARA rules run in their
//! own process (verse-scan) and add their findings to the same report.

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
pub use verse_api::quarantine::{Check, Finding, ScanReport};

/// Limits for archives; past any of them a file is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveLimits {
    pub max_entries: usize,
    /// Bytes all entries expand to together.
    pub max_total: u64,
    /// Expanded size over compressed size, for any one entry.
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_entries: 10_000,
            max_total: 1 << 30,
            max_ratio: 100,
        }
    }
}

/// Extensions that name the same content type.
const SAME: &[&[&str]] = &[
    &["jpg", "jpeg", "jpe"],
    &["tif", "tiff"],
    &["htm", "html"],
    &[
        "zip", "jar", "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "apk",
    ],
    &["gz", "tgz"],
    &["mp4", "m4v", "m4a"],
];

fn same_type(a: &str, b: &str) -> bool {
    a == b || SAME.iter().any(|set| set.contains(&a) && set.contains(&b))
}

fn finding(check: Check, message: String) -> Finding {
    Finding { check, message }
}

/// Scans `path`, whose name in the env was `name`.
pub fn scan_file(path: &Path, name: &str, limits: &ArchiveLimits) -> std::io::Result<ScanReport> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut head = Vec::with_capacity(8192);
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 8192 {
            let take = n.min(8192 - head.len());
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let kind = infer::get(&head);
    let mut findings = Vec::new();
    let ext = Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if let Some(kind) = kind {
        match &ext {
            Some(ext) if !same_type(ext, kind.extension()) => findings.push(finding(
                Check::Type,
                format!(
                    "the content is {} (.{}) but the name says .{ext}",
                    kind.mime_type(),
                    kind.extension()
                ),
            )),
            None if kind.matcher_type() != infer::MatcherType::Text => findings.push(finding(
                Check::Type,
                format!(
                    "the content is {} (.{}) but the name has no extension",
                    kind.mime_type(),
                    kind.extension()
                ),
            )),
            _ => {}
        }
        if matches!(
            kind.mime_type(),
            "application/x-executable"
                | "application/vnd.microsoft.portable-executable"
                | "application/x-mach-binary"
        ) {
            findings.push(finding(
                Check::Type,
                format!("it is an executable ({})", kind.mime_type()),
            ));
        }
    }
    let is_zip = kind.is_some_and(|k| k.mime_type() == "application/zip")
        || ext.as_deref().is_some_and(|e| same_type(e, "zip"));
    if is_zip {
        findings.extend(check_zip(path, limits));
    }
    Ok(ScanReport {
        size,
        blake3: hasher.finalize().to_hex().to_string(),
        content_type: kind.map(|k| k.mime_type().to_string()),
        findings,
    })
}

/// Archive checks. Sizes are measured by decompressing into a counter that
/// stops at the limit, so headers that lie about sizes do not help a bomb.
fn check_zip(path: &Path, limits: &ArchiveLimits) -> Vec<Finding> {
    let mut out = Vec::new();
    let archive = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()));
    let mut archive = match archive {
        Ok(a) => a,
        Err(e) => {
            out.push(finding(
                Check::Archive,
                format!("it is not a readable zip archive: {e}"),
            ));
            return out;
        }
    };
    if archive.len() > limits.max_entries {
        out.push(finding(
            Check::Archive,
            format!(
                "it has {} entries (limit {})",
                archive.len(),
                limits.max_entries
            ),
        ));
        return out;
    }
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                out.push(finding(
                    Check::Archive,
                    format!("entry {i} cannot be read: {e}"),
                ));
                break;
            }
        };
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let escapes = name.starts_with('/')
            || name.starts_with('\\')
            || name.as_bytes().get(1) == Some(&b':')
            || name.split(['/', '\\']).any(|c| c == "..");
        if escapes {
            out.push(finding(
                Check::Archive,
                format!("entry `{name}` points outside the folder it is unpacked in"),
            ));
        }
        let compressed = entry.compressed_size().max(1);
        let budget = limits.max_total.saturating_sub(total) + 1;
        let expanded = match std::io::copy(&mut (&mut entry).take(budget), &mut std::io::sink()) {
            Ok(n) => n,
            Err(e) => {
                out.push(finding(
                    Check::Archive,
                    format!("entry `{name}` does not decompress: {e}"),
                ));
                break;
            }
        };
        total += expanded;
        if expanded / compressed > limits.max_ratio {
            out.push(finding(
                Check::Archive,
                format!(
                    "entry `{name}` expands {}x ({expanded} bytes from {compressed}): an archive bomb (limit {}x)",
                    expanded / compressed,
                    limits.max_ratio
                ),
            ));
        }
        if total > limits.max_total {
            out.push(finding(
                Check::Archive,
                format!(
                    "it expands to more than {} bytes: an archive bomb",
                    limits.max_total
                ),
            ));
            break;
        }
    }
    out
}
