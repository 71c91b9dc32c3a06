//! Parse and validate `verse.toml`, the declarative file that describes one host's environments.
//!
//! The crate does no I/O beyond reading the file it is given. Every problem is reported with
//! `file:line:column` (1-based), what is wrong and what is allowed; all problems are collected,
//! not just the first.
//!
//! # Reference
//!
//! ```toml
//! [env.NAME]                 # NAME: [a-z0-9][a-z0-9-]{0,62}
//! image = "busybox"          # required: an image of this spec ([image.NAME]) or of the store
//! backend = "container"      # "container", "vm" (QEMU microVM) or "gvisor" (runsc)
//! cpu = 1.5                  # cores, > 0 and <= 1024
//! memory = "512MiB"          # bytes (integer) or a size string, >= 4MiB; see `units`
//! pids = 256                 # 1..=4194304
//! disk = "2GiB"              # the env's writes live on a filesystem of this size (>= 16MiB)
//!                            # instead of the host's; default: unlimited
//! network = "none"           # loopback only; or "nat", { allow = ["example.org:443",
//!                            # "10.1.2.0/24:*"] }, { proxy = "socks5://10.0.0.1:1080" },
//!                            # { via = "router-env" }
//! reach = ["other-env:8080"] # other envs' ports this env may connect to
//! router = false             # true: other envs may use this one with network.via
//! ephemeral = false          # discard the writable layer on stop
//! command = ["/bin/sh", "-c", "sleep 1"]  # argv, or a string run with /bin/sh -c
//! env = { KEY = "value" }    # names: [A-Za-z_][A-Za-z0-9_]*
//! hostname = "novel"         # RFC 1123, <= 64 bytes; default: NAME
//! volumes = { "/data" = "/srv/data", "/ref" = "/srv/ref:ro" }  # env path = host dir[:ro|:rw]
//! workdir = "/"              # absolute
//! user = "root"              # "root", "1000" (gid = uid), "1000:100", or 1000
//! stop_timeout = "10s"       # ms, s, m, h; default 10s, at most 1h
//! downloads = "quarantine"   # files written to /downloads leave the env into the host's
//!                            # quarantine (scanned, held); container and vm envs
//! hold = "10m"               # how long they are held at least (default 10m, at most 30 days)
//! release_to = "home:/inbox" # ENV[:PATH]: where clean files go by themselves once held
//!                            # (default PATH /inbox); without it they wait for a person
//!
//!
//! [image.NAME]               # NAME: like an env name; environments name it with `image = "NAME"`
//! base = "debian:bookworm"   # required: "debian:SUITE" (debootstrap --variant=minbase), or
//!                            # another image of this spec or of the store (images stack)
//! packages = ["pandoc"]      # Debian packages, installed with apt-get
//! files = { "/etc/motd" = "Welcome", "/usr/local/bin/x" = "./bin/x" }
//!                            # content, or "./path" / "../path" on the host (relative to the spec)
//! run = ["useradd -m writer"] # build steps, each run with /bin/sh -c as root, each a layer
//! user = "writer"            # default user: "root", a name in the image, "UID" or "UID:GID"
//! workdir = "/home/writer"   # default working directory (absolute)
//! env = { LANG = "C.UTF-8" } # default environment variables
//!
//! [copy]                     # what `verse copy` may do between envs (default "deny")
//! "work -> personal" = "quarantine"  # "allow", "deny" or "quarantine"; either side may be "*"
//!
//! [trust]
//! require_signed = true      # refuse images without a valid signature by one of `keys`
//! keys = ["ed25519:<64 hex digits>"]  # as printed by `verse key generate`
//! ```
//!
//! A `base` chain that comes back to where it started (`a` on `b`, `b` on `a`) is an error.
//!
//! Volume paths and `workdir` are normalised (`//` and `.` removed); `..` is rejected, and
//! volumes cannot be mounted over `/`, `/proc`, `/sys`, `/dev` or anything below them.
//! Sizes: `K`/`KiB` = 1024, `KB` = 1000 (likewise M, G, T); units are case-insensitive.

#![forbid(unsafe_code)]

pub mod caps;
pub mod desktop;
mod error;
pub mod guard;
mod image;
mod model;
mod net;
pub mod schema;
pub mod units;
mod validate;

use std::path::Path;

pub use error::{SpecError, SpecErrors};
pub use guard::{CopyAction, Downloads, Target};
pub use image::{
    DEBIAN_SUITES, FileSource, ImageBase, ImageFile, ImageSpec, KEY_PREFIX, TrustPolicy,
    parse_public_key,
};
pub use model::{
    Accel, Backend, DEFAULT_LOG_MAX, DEFAULT_STOP_TIMEOUT_MS, EnvSpec, Health, MIN_LOG_MAX,
    Network, Reach, Restart, SnapshotSchedule, Spec, UserSpec, Volume,
};
pub use net::{DestHost, Destination, ProxyUrl, parse_destination, parse_proxy};
pub use validate::{
    DESKTOP_KEYS, ENV_KEYS, IMAGE_KEYS, LABEL_KEYS, MAX_CPU, MAX_HOSTNAME, MAX_PIDS,
    MAX_STOP_TIMEOUT_MS, MIN_DISK, MIN_MEMORY, TOP_KEYS, TRUST_KEYS, closest,
};

/// Parse and validate a spec held in memory. `file_name` is only used in diagnostics.
pub fn parse_str(source: &str, file_name: &str) -> Result<Spec, SpecErrors> {
    validate::parse(source, file_name)
}

/// Read and validate the spec at `path`; diagnostics name the path as given.
pub fn load(path: &Path) -> Result<Spec, SpecErrors> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SpecErrors {
        errors: vec![SpecError {
            file: file_name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the spec: {e}"),
        }],
    })?;
    let source = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let source = String::from_utf8_lossy(&e.into_bytes()[..offset]).into_owned();
        let (line, column) = error::LineIndex::new(&source).position(offset);
        SpecErrors {
            errors: vec![SpecError {
                file: file_name.clone(),
                line,
                column,
                message: "the spec is not valid UTF-8".to_string(),
            }],
        }
    })?;
    parse_str(&source, &file_name)
}
