//! Tokens against the authorizer: rights, wildcards, attenuation that never
//! widens, expiry and revocation.

use biscuit_auth::KeyPair;
use std::time::Duration;
use verse_guard::token::{self, Request, TokenError};

fn req(kind: &str, name: &str, op: &str) -> Request {
    Request {
        kind: kind.into(),
        name: name.into(),
        op: op.into(),
    }
}

fn allows(root: &KeyPair, token: &str, r: &Request) -> bool {
    match token::authorize(token, root.public(), r, |_| false) {
        Ok(_) => true,
        Err(TokenError::Denied(_)) => false,
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[test]
fn rights_grant_exactly_what_they_name() {
    let root = KeyPair::new();
    let rights = token::parse_rights("env:novel:exec,read;image:*:read").unwrap();
    let t = token::mint(&root, &rights, None).unwrap();
    assert!(allows(&root, &t.token, &req("env", "novel", "exec")));
    assert!(allows(&root, &t.token, &req("env", "novel", "read")));
    assert!(!allows(&root, &t.token, &req("env", "novel", "write")));
    assert!(!allows(&root, &t.token, &req("env", "other", "exec")));
    assert!(allows(
        &root,
        &t.token,
        &req("image", "debian:bookworm", "read")
    ));
    assert!(!allows(&root, &t.token, &req("image", "busybox", "write")));
    assert!(!allows(&root, &t.token, &req("audit", "*", "read")));
    // Another root key's tokens are not valid here.
    let other = KeyPair::new();
    let e = token::authorize(
        &t.token,
        other.public(),
        &req("env", "novel", "exec"),
        |_| false,
    );
    assert!(matches!(e, Err(TokenError::Invalid(_))), "{e:?}");
}

#[test]
fn attenuation_never_exceeds_the_parent() {
    let root = KeyPair::new();
    let parent = token::mint(
        &root,
        &token::parse_rights("env:novel:exec,read").unwrap(),
        None,
    )
    .unwrap();
    // Asking for more than the parent has yields nothing more.
    let child = token::attenuate(
        &parent.token,
        &token::parse_rights("env:*:exec,read,write image:*:write").unwrap(),
        None,
    )
    .unwrap();
    for (kind, name, op) in [
        ("env", "novel", "write"),
        ("env", "other", "exec"),
        ("image", "x", "write"),
    ] {
        assert!(
            !allows(&root, &child.token, &req(kind, name, op)),
            "{kind}:{name}:{op}"
        );
    }
    assert!(allows(&root, &child.token, &req("env", "novel", "exec")));
    // Narrowing works.
    let read_only = token::attenuate(
        &parent.token,
        &token::parse_rights("env:novel:read").unwrap(),
        None,
    )
    .unwrap();
    assert!(allows(
        &root,
        &read_only.token,
        &req("env", "novel", "read")
    ));
    assert!(!allows(
        &root,
        &read_only.token,
        &req("env", "novel", "exec")
    ));
    // And attenuating the attenuated one cannot win back exec.
    let again = token::attenuate(
        &read_only.token,
        &token::parse_rights("env:*:*").unwrap(),
        None,
    )
    .unwrap();
    assert!(!allows(&root, &again.token, &req("env", "novel", "exec")));
    assert!(allows(&root, &again.token, &req("env", "novel", "read")));
}

#[test]
fn expired_and_revoked_tokens_are_refused() {
    let root = KeyPair::new();
    let rights = token::parse_rights("env:*:read").unwrap();
    let t = token::mint(&root, &rights, Some(Duration::from_secs(1))).unwrap();
    assert!(allows(&root, &t.token, &req("env", "a", "read")));
    std::thread::sleep(Duration::from_millis(2100));
    let e = token::authorize(&t.token, root.public(), &req("env", "a", "read"), |_| false);
    assert!(matches!(e, Err(TokenError::Expired)), "{e:?}");
    // An attenuated TTL shorter than the parent's expires first.
    let long = token::mint(&root, &rights, Some(Duration::from_secs(3600))).unwrap();
    let short = token::attenuate(&long.token, &rights, Some(Duration::from_secs(1))).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    assert!(allows(&root, &long.token, &req("env", "a", "read")));
    let e = token::authorize(
        &short.token,
        root.public(),
        &req("env", "a", "read"),
        |_| false,
    );
    assert!(matches!(e, Err(TokenError::Expired)), "{e:?}");
    // Revoking the parent's id revokes its attenuations; revoking a child's
    // own id leaves the parent alone.
    let child = token::attenuate(&long.token, &rights, None).unwrap();
    let revoked = |id: &str| id == long.id;
    let e = token::authorize(
        &child.token,
        root.public(),
        &req("env", "a", "read"),
        revoked,
    );
    assert!(
        matches!(e, Err(TokenError::Revoked(ref id)) if *id == long.id),
        "{e:?}"
    );
    let revoked = |id: &str| id == child.id;
    assert!(
        token::authorize(
            &long.token,
            root.public(),
            &req("env", "a", "read"),
            revoked
        )
        .is_ok()
    );
    assert!(
        token::authorize(
            &child.token,
            root.public(),
            &req("env", "a", "read"),
            revoked
        )
        .is_err()
    );
}

#[test]
fn bad_rights_and_ttls_are_named() {
    for bad in ["env", "env:novel", "env:no\"vel:read", "env:x:re ad(", ""] {
        let e = token::parse_rights(bad);
        assert!(e.is_err(), "{bad:?} was accepted");
    }
    let e = token::parse_ttl("soon").unwrap_err().to_string();
    assert!(e.contains("`soon` is not a duration"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.key");
    let a = token::load_or_create_root_key(&path).unwrap();
    let b = token::load_or_create_root_key(&path).unwrap();
    assert_eq!(a.public(), b.public());
}
