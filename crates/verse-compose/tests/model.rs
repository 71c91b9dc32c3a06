//! The optional model, against a stand-in chat server on 127.0.0.1 (the real model would be a
//! remote or local service that does not exist here): good answers are used and checked;
//! malformed, hostile and failing answers fall back to the offline composer, saying why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use verse_compose::model::{ModelConfig, compose_with};
use verse_compose::{NetworkIntent, NoteKind, Options, Source};

/// A stand-in for an OpenAI-compatible chat completions server: answers every request with
/// one canned HTTP response and records the request bodies.
struct FakeChatServer {
    endpoint: String,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

enum Reply {
    /// 200 with this string as choices[0].message.content.
    Content(String),
    /// This status and body, verbatim.
    Raw(u16, String),
    /// Accept, then never answer.
    Hang,
}

impl FakeChatServer {
    async fn start(reply: Reply) -> FakeChatServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            // bounded: a test makes one or two requests
            for _ in 0..4 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let body = read_request(&mut socket).await;
                    if let Ok(v) = serde_json::from_slice(&body) {
                        seen.lock().unwrap().push(v);
                    }
                    let (status, text) = match &*reply {
                        Reply::Content(content) => (
                            200,
                            serde_json::json!({
                                "id": "fake", "object": "chat.completion",
                                "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}]
                            })
                            .to_string(),
                        ),
                        Reply::Raw(status, text) => (*status, text.clone()),
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FakeChatServer { endpoint, requests }
    }

    fn config(&self) -> ModelConfig {
        ModelConfig {
            endpoint: self.endpoint.clone(),
            model: "fake".into(),
            api_key: Some("secret".into()),
            timeout: Duration::from_secs(2),
        }
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return Vec::new();
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + len {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return data[end + 4..].to_vec();
        }
    }
}

fn draft_json(network: serde_json::Value, packages: &[&str]) -> String {
    serde_json::json!({
        "name": "py", "base": "debian:bookworm", "packages": packages, "backend": "container",
        "cpu": 2, "memory": 4294967296u64, "disk": null, "network": network,
        "ephemeral": false, "desktop": false, "labels": []
    })
    .to_string()
}

const PROMPT: &str = "a python dev box with 2 cores, 4 GB and no internet";

fn fallback_reason(c: &verse_compose::Composition) -> String {
    assert_eq!(c.source, Source::Offline, "expected the offline fallback");
    let note = &c.notes[0];
    assert_eq!(note.kind, NoteKind::Source);
    assert!(
        note.text.contains("fell back to the offline composer"),
        "{}",
        note.text
    );
    // the fallback is the offline reading, which parses
    verse_spec::parse_str(&c.rendered.toml, "fallback").expect("fallback parses");
    note.text.clone()
}

#[tokio::test]
async fn a_good_answer_is_used_and_the_request_carries_the_schema() {
    let server = FakeChatServer::start(Reply::Content(draft_json(
        serde_json::json!({"mode": "none"}),
        &["python3", "python3-venv", "git"],
    )))
    .await;
    let c = compose_with(PROMPT, &Options::default(), Some(&server.config()))
        .await
        .unwrap();
    assert_eq!(c.source, Source::Model, "{:?}", c.notes);
    assert_eq!(c.draft.packages, ["git", "python3", "python3-venv"]);
    assert_eq!(c.draft.name, "py");
    assert!(c.rendered.toml.contains("[env.py]"));
    verse_spec::parse_str(&c.rendered.toml, "model").unwrap();
    let requests = server.requests.lock().unwrap();
    let body = &requests[0];
    assert_eq!(body["messages"][1]["content"], PROMPT);
    let schema = &body["response_format"]["json_schema"]["schema"];
    let items = &schema["properties"]["packages"]["items"];
    let examples = items["examples"].as_array().unwrap();
    assert!(examples.iter().any(|p| p == "focuswriter"));
    assert!(items["pattern"].is_string());
    assert_eq!(schema["additionalProperties"], false);
}

#[tokio::test]
async fn malformed_answers_fall_back() {
    for reply in [
        Reply::Content("this is not json".into()),
        Reply::Content("{\"name\": \"py\"}".into()),
        Reply::Raw(200, "{\"choices\": []}".into()),
        Reply::Raw(200, "<html>".into()),
        Reply::Raw(500, "{\"error\": \"overloaded\"}".into()),
    ] {
        let server = FakeChatServer::start(reply).await;
        let c = compose_with(PROMPT, &Options::default(), Some(&server.config()))
            .await
            .unwrap();
        let why = fallback_reason(&c);
        assert!(
            why.contains("malformed")
                || why.contains("not a chat completion")
                || why.contains("HTTP 500"),
            "{why}"
        );
        assert_eq!(c.draft.network, NetworkIntent::None);
    }
}

#[tokio::test]
async fn hostile_answers_are_refused() {
    let cases: Vec<(String, &str)> = vec![
        // grants the internet the words refused
        (
            draft_json(serde_json::json!({"mode": "nat"}), &["python3"]),
            "grants full internet",
        ),
        // an allow-list the words never named
        (
            draft_json(
                serde_json::json!({"mode": "allow", "hosts": ["evil.example:443"]}),
                &["python3"],
            ),
            "grants only",
        ),
        // a package that is a shell command
        (
            draft_json(serde_json::json!({"mode": "none"}), &["curl; rm -rf /"]),
            "not a package of Debian",
        ),
        // a package Debian does not have, under any name
        (
            draft_json(
                serde_json::json!({"mode": "none"}),
                &["frobnicator-desktop"],
            ),
            "not a package of Debian",
        ),
        // host mounts smuggled in as an extra field
        (
            draft_json(serde_json::json!({"mode": "none"}), &["python3"]).replacen(
                '{',
                "{\"volumes\": {\"/host\": \"/\"}, ",
                1,
            ),
            "unknown field",
        ),
        // a name that would escape the section header
        (
            draft_json(serde_json::json!({"mode": "none"}), &["python3"])
                .replace("\"name\":\"py\"", "\"name\":\"py]\\n[env.x\""),
            "not an env name",
        ),
    ];
    for (content, expect) in cases {
        let server = FakeChatServer::start(Reply::Content(content.clone())).await;
        let c = compose_with(PROMPT, &Options::default(), Some(&server.config()))
            .await
            .unwrap();
        let why = fallback_reason(&c);
        assert!(
            why.contains(expect),
            "answer {content}\nexpected {expect:?} in: {why}"
        );
        assert_eq!(c.draft.network, NetworkIntent::None);
        assert!(!c.rendered.toml.contains("volumes"));
    }
}

#[tokio::test]
async fn weaker_isolation_than_asked_is_refused() {
    let server = FakeChatServer::start(Reply::Content(draft_json(
        serde_json::json!({"mode": "none"}),
        &["python3"],
    )))
    .await;
    let c = compose_with(
        "a throwaway python box for untrusted code",
        &Options::default(),
        Some(&server.config()),
    )
    .await
    .unwrap();
    let why = fallback_reason(&c);
    assert!(
        why.contains("throw away") || why.contains("weaker"),
        "{why}"
    );
    assert!(c.draft.ephemeral);
}

#[tokio::test]
async fn unreachable_slow_and_https_endpoints_fall_back() {
    let server = FakeChatServer::start(Reply::Hang).await;
    let mut config = server.config();
    config.timeout = Duration::from_millis(300);
    let c = compose_with(PROMPT, &Options::default(), Some(&config))
        .await
        .unwrap();
    assert!(fallback_reason(&c).contains("no answer within"));

    // a port nothing listens on
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    config.endpoint = format!("http://127.0.0.1:{port}/v1");
    let c = compose_with(PROMPT, &Options::default(), Some(&config))
        .await
        .unwrap();
    assert!(fallback_reason(&c).contains("could not reach"));

    config.endpoint = "https://127.0.0.1:1/v1".into();
    let c = compose_with(PROMPT, &Options::default(), Some(&config))
        .await
        .unwrap();
    assert!(fallback_reason(&c).contains("not an http:// URL"));
}

#[tokio::test]
async fn the_name_option_wins_over_the_models() {
    let server = FakeChatServer::start(Reply::Content(draft_json(
        serde_json::json!({"mode": "none"}),
        &["python3"],
    )))
    .await;
    let options = Options {
        name: Some("mine".into()),
    };
    let c = compose_with(PROMPT, &options, Some(&server.config()))
        .await
        .unwrap();
    assert_eq!(c.source, Source::Model);
    assert!(c.rendered.toml.contains("[env.mine]"));
}

/// The fake model names packages as people do: a real package outside the catalog is kept,
/// a name Debian ships under another package is replaced (and the explanation says so), and
/// a name that is no package at all refuses the answer (tested in hostile_answers_are_refused).
#[tokio::test]
async fn the_models_packages_are_checked_against_the_index() {
    let server = FakeChatServer::start(Reply::Content(draft_json(
        serde_json::json!({"mode": "none"}),
        &["python3", "netcat-traditional", "ninja"],
    )))
    .await;
    let c = compose_with(PROMPT, &Options::default(), Some(&server.config()))
        .await
        .unwrap();
    assert_eq!(c.source, Source::Model, "{:?}", c.notes);
    assert_eq!(
        c.draft.packages,
        ["netcat-traditional", "ninja-build", "python3"]
    );
    assert!(
        c.notes.iter().any(|n| n.kind == NoteKind::Read
            && n.text.contains("`ninja`")
            && n.text.contains("ninja-build instead")),
        "{:?}",
        c.notes
    );
    assert!(
        c.rendered.toml.contains("\"ninja-build\""),
        "{}",
        c.rendered.toml
    );
}
