//! `[image.NAME]` recipes and `[trust]`: every field, defaults, and positioned errors.

mod common;

use common::{lines, ok, one};
use verse_spec::{FileSource, ImageBase, ImageFile, Spec, TrustPolicy};

const KEY: &str = "ed25519:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn full_recipe() {
    let spec = ok(r#"
[image.writer]
base = "debian:bookworm"
packages = ["pandoc", "g++", "libc6:amd64"]
files = { "/etc/motd" = "Welcome to the guild", "/usr/local/bin//tool" = "./bin/tool", "/a" = "../up" }
run = ["useradd -m writer", "true"]
user = "writer"
workdir = "/home/writer/"
env = { LANG = "C.UTF-8" }

[image.novelist]
base = "writer"

[env.novel]
image = "novelist"
"#);
    let w = &spec.images["writer"];
    assert_eq!(
        w.base,
        ImageBase::Debian {
            suite: "bookworm".into()
        }
    );
    assert_eq!(w.base.as_written(), "debian:bookworm");
    assert_eq!(w.packages, ["pandoc", "g++", "libc6:amd64"]);
    assert_eq!(
        w.files,
        vec![
            ImageFile {
                path: "/a".into(),
                source: FileSource::Host("../up".into())
            },
            ImageFile {
                path: "/etc/motd".into(),
                source: FileSource::Text("Welcome to the guild".into())
            },
            ImageFile {
                path: "/usr/local/bin/tool".into(),
                source: FileSource::Host("./bin/tool".into())
            },
        ]
    );
    assert_eq!(w.run, ["useradd -m writer", "true"]);
    assert_eq!(w.user.as_deref(), Some("writer"));
    assert_eq!(w.workdir.as_deref(), Some("/home/writer"));
    assert_eq!(w.env["LANG"], "C.UTF-8");
    let n = &spec.images["novelist"];
    assert_eq!(
        n.base,
        ImageBase::Image {
            name: "writer".into()
        }
    );
    assert!(n.packages.is_empty() && n.files.is_empty() && n.run.is_empty());
    assert_eq!((n.user.as_ref(), n.workdir.as_ref()), (None, None));
    assert_eq!(spec.envs["novel"].image, "novelist");
    assert_eq!(spec.trust, TrustPolicy::default());
}

#[test]
fn base_may_name_an_imported_image() {
    let spec = ok("[image.a]\nbase = \"debian\"\n[image.b]\nbase = \"alpine:3.20\"\n");
    assert_eq!(
        spec.images["a"].base,
        ImageBase::Image {
            name: "debian".into()
        }
    );
    assert_eq!(spec.images["b"].base.as_written(), "alpine:3.20");
}

#[test]
fn trust_policy() {
    let spec = ok(&format!(
        "[trust]\nrequire_signed = true\nkeys = [\"{KEY}\", \"{KEY}\"]\n"
    ));
    assert!(spec.trust.require_signed);
    assert_eq!(spec.trust.keys, [KEY]);
    let key = verse_spec::parse_public_key(KEY).unwrap();
    assert_eq!(key[0], 0x00);
    assert_eq!(key[31], 0xff);
}

#[test]
fn json_round_trip_and_old_digests_unchanged() {
    let spec = ok(&format!(
        "[image.w]\nbase = \"debian:trixie\"\nfiles = {{ \"/x\" = \"./x\" }}\n[trust]\nkeys = [\"{KEY}\"]\n"
    ));
    let back: Spec = serde_json::from_str(&spec.canonical_json()).unwrap();
    assert_eq!(back, spec);
    let v: serde_json::Value = serde_json::from_str(&spec.canonical_json()).unwrap();
    assert_eq!(v["images"]["w"]["base"]["kind"], "debian");
    assert_eq!(v["images"]["w"]["files"][0]["source"]["host"], "./x");
    // A spec without images or trust serialises exactly as before they existed.
    let plain = ok("[env.a]\nimage = \"busybox\"\n");
    assert!(!plain.canonical_json().contains("images"));
    assert!(!plain.canonical_json().contains("trust"));
}

#[test]
fn typo_in_image_key() {
    assert_eq!(
        one("[image.w]\nbase = \"debian:bookworm\"\npackges = [\"x\"]\n"),
        "verse.toml:3:1: unknown key `packges` in [image.w]; did you mean `packages`? allowed: base, packages, files, run, user, workdir, env"
    );
    assert_eq!(
        one("[trust]\nrequire_signd = true\nkeys = []\n"),
        "verse.toml:2:1: unknown key `require_signd` in [trust]; did you mean `require_signed`? allowed: require_signed, keys"
    );
}

#[test]
fn debian_suite_typo() {
    assert_eq!(
        one("[image.w]\nbase = \"debian:bookwrom\"\n"),
        "verse.toml:2:8: base = \"debian:bookwrom\": unknown Debian suite `bookwrom`; did you mean \"debian:bookworm\"? allowed: bullseye, bookworm, trixie, forky, sid, oldstable, stable, testing, unstable"
    );
}

#[test]
fn missing_base() {
    assert_eq!(
        one("[image.w]\npackages = [\"x1\"]\n"),
        "verse.toml:1:1: [image.w]: missing required key `base`; add e.g. base = \"debian:bookworm\""
    );
}

#[test]
fn base_cycles() {
    assert_eq!(
        one("[image.a]\nbase = \"a\"\n"),
        "verse.toml:2:8: base = \"a\": image `a` cannot be built on itself; name another image or \"debian:bookworm\""
    );
    assert_eq!(
        one(
            "[image.a]\nbase = \"b\"\n[image.b]\nbase = \"c\"\n[image.c]\nbase = \"a\"\n[image.d]\nbase = \"a\"\n"
        ),
        "verse.toml:2:8: image `a`: its base chain comes back to itself (a -> b -> c -> a); one of them must start from \"debian:SUITE\" or an imported image"
    );
}

#[test]
fn field_errors_are_positioned() {
    let l = lines(concat!(
        "[image.w]\n",
        "base = 3\n",
        "packages = [\"ok1\", \"Bad\", \"ok1\", 4]\n",
        "files = { \"etc/motd\" = \"x\", \"/\" = \"y\", \"/z\" = 1, \"/q/../r\" = \"w\" }\n",
        "run = [\"\", 2]\n",
        "user = \"Writer\"\n",
        "workdir = \"rel\"\n",
        "env = { \"1X\" = \"a\" }\n",
    ));
    assert_eq!(
        l,
        [
            "verse.toml:2:8: base = 3: expected \"debian:SUITE\" or the name of another image (e.g. \"debian:bookworm\"), found an integer",
            "verse.toml:3:20: packages[1] = \"Bad\": package names start with a lowercase letter or digit",
            "verse.toml:3:27: packages[2] = \"ok1\": listed twice; name each package once",
            "verse.toml:3:34: packages[3] = 4: expected a package name (quote it), found an integer",
            "verse.toml:4:11: file path `etc/motd` in [image.w]: must be an absolute path (starting with /)",
            "verse.toml:4:29: file path `/` in [image.w]: name a file, not /",
            "verse.toml:4:47: \"/z\" = 1: expected the file's content as a string, or \"./path/on/host\", found an integer",
            "verse.toml:4:50: file path `/q/../r` in [image.w]: must not contain `..`",
            "verse.toml:5:8: run[0] = \"\": an empty step does nothing; remove it",
            "verse.toml:5:12: run[1] = 2: expected a shell command (quote it), found an integer",
            "verse.toml:6:8: user = \"Writer\": write \"root\", a login name such as \"writer\" (a-z, 0-9, '_', '-'), a uid such as \"1000\" or \"uid:gid\"",
            "verse.toml:7:11: workdir = \"rel\": must be an absolute path (starting with /)",
            "verse.toml:8:9: invalid variable name `1X` in env of [image.w]: use letters, digits and '_', not starting with a digit",
        ]
    );
}

#[test]
fn trust_errors() {
    assert_eq!(
        one("[trust]\nrequire_signed = true\n"),
        "verse.toml:1:1: [trust]: require_signed = true needs at least one key; add keys = [\"ed25519:...\"] (see `verse key generate`)"
    );
    assert_eq!(
        one("[trust]\nkeys = [\"ed25519:zz\"]\n"),
        "verse.toml:2:9: keys[0] = \"ed25519:zz\": not a public key; write \"ed25519:\" and 64 lowercase hex digits, as printed by `verse key generate`"
    );
    assert_eq!(
        one("[trust]\nrequire_signed = \"yes\"\nkeys = []\n"),
        "verse.toml:2:18: require_signed = \"yes\": expected true or false, found a string"
    );
}

#[test]
fn invalid_image_name() {
    assert!(
        one("[image.Writer]\nbase = \"debian:sid\"\n")
            .starts_with("verse.toml:1:8: invalid image name `Writer`")
    );
}
