//! `verse doctor`'s check that the store's filesystem takes idmapped mounts: every container
//! env with a host id range of its own sees the shared image layers through one.

use verse_api::Paths;
use verse_doctor::{Check, Status, check};
use verse_runtime::{ID_BASE, ID_RANGE};

/// Makes (and drops) an idmapped clone of the store's directory, as an env start does.
/// Forks: call it while the process is single-threaded (`verse doctor` is).
pub fn idmap_check(paths: &Paths) -> Check {
    let cost =
        "container envs cannot start (each sees the shared image layers through an idmapped mount)";
    // The store, or the nearest directory of it that exists before the first daemon run.
    let mut dir = paths.state_dir().join("store");
    while !dir.exists() && dir.pop() {}
    let map = verse_sandbox::IdMap {
        container_id: ID_BASE,
        host_id: ID_BASE + ID_RANGE,
        size: ID_RANGE,
    };
    let made = verse_sandbox::layer_userns(&map)
        .map_err(|e| e.to_string())
        .and_then(|ns| verse_sandbox::idmapped_tree(&dir, &ns).map_err(|e| e.to_string()));
    match made {
        Ok(_) => check(
            "idmap",
            Status::Ok,
            format!("{} takes idmapped mounts", dir.display()),
            "",
        ),
        Err(e) => check(
            "idmap",
            Status::Missing,
            format!(
                "{}: {e} (needs Linux 5.12 or later and a filesystem that supports them: ext4, xfs, btrfs, tmpfs)",
                dir.display()
            ),
            cost,
        ),
    }
}
