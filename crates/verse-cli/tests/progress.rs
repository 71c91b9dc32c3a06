//! Progress of builds and imports: the API streams JSON-line events (`?progress=true`), the
//! CLI prints plain lines when not on a terminal and draws a bar on one.

mod common;

use common::{Verse, busybox_rootfs, can_run};

/// POSTs `body` to `path` with curl over the daemon's socket; returns the events.
fn events(v: &Verse, path: &str, body: &serde_json::Value) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("curl")
        .args(["-sN", "--unix-socket", v.socket().to_str().unwrap()])
        .args(["-H", "content-type: application/json", "-d"])
        .arg(body.to_string())
        .arg(format!("http://verse{path}"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

const SPEC: &str = r#"
[image.p]
base = "busybox"
run = ["echo hello from the step"]

[image.fails]
base = "busybox"
run = ["echo boom; exit 3"]
"#;

#[test]
fn builds_and_imports_stream_progress() {
    if !can_run() {
        return;
    }
    let v = Verse::start();
    let import = events(
        &v,
        "/v1/images?progress=true",
        &serde_json::json!({"name": "again", "path": busybox_rootfs()}),
    );
    let last = import.last().unwrap();
    assert_eq!(last["event"], "done", "{import:?}");
    assert_eq!(last["result"]["image"]["name"], "again");
    assert!(
        import
            .iter()
            .any(|e| e["event"] == "count" && e["files"] == last["result"]["image"]["files"]),
        "{import:?}"
    );

    let build = |names: &[&str]| {
        events(
            &v,
            "/v1/images/build?progress=true",
            &serde_json::json!({"file_name": "verse.toml", "source": SPEC, "spec_dir": "/", "names": names}),
        )
    };
    let ok = build(&["p"]);
    let texts: Vec<String> = ok
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| {
            format!(
                "{}/{} {}",
                e["step"],
                e["steps"],
                e["text"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(texts[0], "1/2 base busybox: ready", "{ok:?}");
    assert!(texts.contains(&"2/2 run: echo hello from the step: | hello from the step".into()));
    assert_eq!(ok.last().unwrap()["event"], "done", "{ok:?}");
    assert_eq!(ok.last().unwrap()["result"]["built_layers"], 1);

    let failed = build(&["fails"]);
    let last = failed.last().unwrap();
    assert_eq!(last["event"], "error", "{failed:?}");
    let error = last["error"]["error"].as_str().unwrap();
    assert!(
        error.contains("exit status 3") && error.contains("boom"),
        "{error}"
    );
    assert!(
        failed
            .iter()
            .any(|e| e["text"] == "run: echo boom; exit 3: | boom"),
        "the step's output streamed before the error: {failed:?}"
    );

    // The CLI: plain lines when stdout is not a terminal ...
    let file = v.write_spec("verse.toml", &SPEC.replace("hello from", "hi from"));
    let out = v.ok(&["image", "build", "-f", file.to_str().unwrap(), "p"]);
    assert!(
        out.contains("p [2/2] run: echo hi from the step: | hi from the step\n"),
        "{out}"
    );
    // ... and a bar redrawn in place on one (script(1) gives it a pty).
    let spec = v.write_spec("verse.toml", &SPEC.replace("hello from", "bar from"));
    let script = format!(
        "VERSE_ROOT={} {} image build -f {} p",
        v.root().display(),
        common::VERSE,
        spec.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &script, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("\x1b[2K") && tty.contains("[1/2]"), "{tty:?}");
    assert!(tty.contains("1 layer(s) built"), "{tty:?}");
}
