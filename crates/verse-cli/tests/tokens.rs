//! The token-only TCP API as a remote user meets it: TLS, curl with a bearer
//! token, a matrix proving every route checks its right, attenuation,
//! expiry and revocation, and every refusal in the audit log.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use verse_daemon::tcp::ROUTE_RIGHTS;

struct Remote {
    verse: Verse,
    base: String,
    cert: String,
}

/// A daemon also listening on 127.0.0.1 with a self-signed certificate.
fn remote() -> Remote {
    let mut verse = Verse::start();
    let (addr, cert) = listen_tls(&mut verse);
    let remote = Remote {
        verse,
        base: format!("https://{addr}"),
        cert: cert.display().to_string(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while remote.call("GET", "/v1/info", None).0 != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS API did not come up: {}",
            remote.verse.daemon_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    remote
}

impl Remote {
    /// curl with the certificate pinned; returns (status, body).
    fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let mut curl = Command::new("curl");
        curl.args([
            "-sS",
            "--cacert",
            &self.cert,
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(token) = token {
            curl.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if method != "GET" && method != "DELETE" {
            curl.args(["-H", "Content-Type: application/json", "--data", "{}"]);
        }
        let out = curl.arg(format!("{}{path}", self.base)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn mint(&self, rights: &str) -> String {
        let root = verse_guard::token::load_or_create_root_key(
            &self.verse.root().join("etc/verse/token.key"),
        )
        .unwrap();
        let rights = verse_guard::token::parse_rights(rights).unwrap();
        verse_guard::token::mint(&root, &rights, None)
            .unwrap()
            .token
    }
}

/// Every `.route("PATH", get(..).post(..))` in the daemon's sources, read
/// from the code so that a route added without a right fails this test.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verse-daemon/src");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        // web.rs routes the web UI's own listener (loopback only, behind its
        // secret; tested by the browser tests), never the token API.
        if path.file_name().is_some_and(|n| n == "web.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            let (path, chain) = rest.split_once('"').unwrap();
            let chain = &chain[..chain
                .find("\n        .")
                .unwrap_or(chain.len())
                .min(chain.find(";\n").unwrap_or(chain.len()))];
            for method in ["get", "post", "put", "delete", "patch"] {
                if chain.contains(&format!("{method}(")) {
                    routes.insert((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    routes
}

const KINDS: &[&str] = &["daemon", "env", "image", "spec", "audit", "token"];
const OPS: &[&str] = &["read", "write", "exec"];

#[test]
fn every_route_checks_its_right() {
    if !can_run() {
        return;
    }
    let in_source = routes_in_source();
    let declared: BTreeSet<(String, String)> = ROUTE_RIGHTS
        .iter()
        .map(|(m, p, ..)| (m.to_string(), p.to_string()))
        .collect();
    assert!(
        in_source.len() >= 20,
        "found too few routes in the source: {in_source:?}"
    );
    let missing: Vec<_> = in_source.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes without a right in ROUTE_RIGHTS: {missing:?}"
    );
    let stale: Vec<_> = declared.difference(&in_source).collect();
    assert!(
        stale.is_empty(),
        "ROUTE_RIGHTS names routes that do not exist: {stale:?}"
    );

    let remote = remote();
    for (method, route, kind, name, op) in ROUTE_RIGHTS {
        // Named routes are asked about `ghost`, which does not exist: an
        // allowed request then fails in the handler, never changing anything.
        let path = route.replace("{name}", "ghost");
        let target = if name.starts_with('{') { "ghost" } else { name };
        let (status, body) = remote.call(method, &path, None);
        assert_eq!(status, 401, "{method} {path} without a token: {body}");

        let exact = remote.mint(&format!("{kind}:{target}:{op}"));
        let (status, body) = remote.call(method, &path, Some(&exact));
        assert!(
            status != 401 && status != 403,
            "{method} {path} with {kind}:{target}:{op} refused: {status} {body}\n{}",
            remote.verse.daemon_log()
        );

        // Every other right there is, and this one only for another name.
        let mut others = Vec::new();
        for k in KINDS {
            for o in OPS {
                if (k, o) != (kind, op) {
                    others.push(format!("{k}:*:{o}"));
                }
            }
        }
        others.push(format!("{kind}:someone-else:{op}"));
        let all_but = remote.mint(&others.join(" "));
        let (status, body) = remote.call(method, &path, Some(&all_but));
        if *method == "GET" && ["/v1/envs", "/v1/events"].contains(route) {
            // These listings answer a token for some envs with what it may read.
            assert!(
                status == 200 && (body == "[]" || body.is_empty()),
                "{method} {path} listed what the token may not read: {status} {body}"
            );
            continue;
        }
        assert_eq!(
            status, 403,
            "{method} {path} allowed without {kind}:{target}:{op}: {body}"
        );
    }
}

#[test]
fn minted_attenuated_expired_and_revoked_tokens_over_tls() {
    if !can_run() {
        return;
    }
    let remote = remote();
    let verse = &remote.verse;
    verse.apply("[env.novel]\nimage = \"busybox\"\n\n[env.secret]\nimage = \"busybox\"\n");
    let out = verse.run(&[
        "token",
        "mint",
        "--allow",
        "env:novel:read,write",
        "--ttl",
        "1h",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let minted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = minted["token"].as_str().unwrap().to_string();
    let id = minted["id"].as_str().unwrap().to_string();

    let (status, body) = remote.call("GET", "/v1/envs/novel", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"running\""), "{body}");
    // Listing: a token for novel sees novel, not the other env.
    let (status, body) = remote.call("GET", "/v1/envs", Some(&token));
    assert_eq!(status, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = listed.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["novel"], "{body}");
    // And the event log: novel's events, none of the other env's.
    let (status, body) = remote.call("GET", "/v1/events", Some(&token));
    assert_eq!(status, 200, "{body}");
    let envs: BTreeSet<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["env"].as_str().map(str::to_string))
        .collect();
    assert_eq!(envs, BTreeSet::from(["novel".to_string()]), "{body}");
    let (status, _) = remote.call("GET", "/v1/audit/log", Some(&token));
    assert_eq!(status, 403);

    // Attenuated offline to read-only: it can read, not stop.
    let child = verse.ok(&[
        "token",
        "attenuate",
        &token,
        "--allow",
        "env:novel:read env:*:exec",
    ]);
    let child = child.trim();
    assert_eq!(remote.call("GET", "/v1/envs/novel", Some(child)).0, 200);
    let (status, body) = remote.call("POST", "/v1/envs/novel/down", Some(child));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not allow env:novel:write"), "{body}");
    assert_eq!(
        remote.call("POST", "/v1/envs/novel/exec", Some(child)).0,
        403,
        "exec was never the parent's"
    );

    // The parent stops the env; the audit log names the token.
    let (status, body) = remote.call("POST", "/v1/envs/novel/down", Some(&token));
    assert_eq!(status, 200, "{body}");
    let log: Vec<serde_json::Value> =
        serde_json::from_str(&verse.ok(&["audit", "log", "--json"])).unwrap();
    let stop = log
        .iter()
        .find(|r| r["action"] == "stop")
        .expect("stop recorded");
    assert_eq!(stop["actor"], format!("token:{id}"));
    assert!(
        log.iter()
            .any(|r| r["action"] == "token-mint" && r["detail"].as_str().unwrap().contains(&id))
    );
    assert!(log.iter().any(|r| {
        r["action"] == "denied"
            && r["detail"]
                .as_str()
                .unwrap()
                .contains("POST /v1/envs/novel/down")
    }));

    // Expired.
    let out = verse.run(&["token", "mint", "--allow", "env:novel:read", "--ttl", "1s"]);
    let short = stdout(&out).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (status, body) = remote.call("GET", "/v1/envs/novel", Some(&short));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    // Revoked: the token and everything attenuated from it.
    assert!(verse.ok(&["token", "revoke", &id]).contains("revoked"));
    for t in [token.as_str(), child] {
        let (status, body) = remote.call("GET", "/v1/envs/novel", Some(t));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("revoked"), "{body}");
    }
    // Garbage and tokens from another host's key are refused as invalid.
    assert_eq!(remote.call("GET", "/v1/info", Some("not-a-token")).0, 401);
    let foreign = verse_guard::token::mint(
        &biscuit_auth::KeyPair::new(),
        &verse_guard::token::parse_rights("daemon:*:read").unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(remote.call("GET", "/v1/info", Some(&foreign.token)).0, 401);
    // The unix socket is untouched by all this.
    verse.ok(&["ls"]);
    // Bad input to mint is named before anything is made.
    let out = verse.run(&["token", "mint", "--allow", "env:novel"]);
    assert!(
        stderr(&out).contains("`env:novel` is not a right"),
        "{}",
        stderr(&out)
    );
}
