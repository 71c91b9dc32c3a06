//! Embeds the built web UI (`web/dist`, made by `npm ci && npm run build` in
//! `web/`) into the binary. When it has not been built, the UI answers every
//! page with an error saying how to build it; the API and the rest of the
//! daemon work as before.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../../web/dist");
    // A directory is scanned whole; a missing one makes cargo re-check each build.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from("/// Built UI files: path relative to web/dist, contents.\n");
    code.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(code, "    ({rel:?}, include_bytes!({abs:?})),").expect("string write");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("assets.rs");
    std::fs::write(out, code).expect("writing assets.rs");
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let abs = std::fs::canonicalize(&path).unwrap_or(path.clone());
            out.push((
                rel.to_string_lossy().replace('\\', "/"),
                abs.to_string_lossy().into_owned(),
            ));
        }
    }
}
