//! The built front end (`web/dist`), embedded at compile time by build.rs.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Whether the UI was built before this binary was compiled.
pub fn built() -> bool {
    generated::FILES
        .iter()
        .any(|(path, _)| *path == "index.html")
}

/// What a page says when the binary was compiled without the UI.
pub const NOT_BUILT: &str = "The Verse web UI was not built into this binary.\n\
Build it with `npm ci && npm run build` in web/ (scripts/test.sh and scripts/quickstart.sh do), \
then rebuild verse; the API works meanwhile.\n";

/// A file of the UI by its URL path (`/` is `index.html`), with its MIME type.
pub fn get(url_path: &str) -> Option<(&'static [u8], &'static str)> {
    let rel = url_path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    generated::FILES
        .iter()
        .find(|(path, _)| *path == rel)
        .map(|(path, bytes)| (*bytes, mime(path)))
}

/// The MIME type for a built file, by extension.
pub fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_follow_the_extension() {
        assert_eq!(
            mime("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(mime("index.html"), "text/html; charset=utf-8");
        assert_eq!(mime("x.unknown"), "application/octet-stream");
    }

    #[test]
    fn the_root_is_the_index_when_built() {
        assert_eq!(get("/").is_some(), built());
        assert!(get("/no/such/file.js").is_none());
    }
}
