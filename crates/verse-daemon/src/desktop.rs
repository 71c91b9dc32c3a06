//! Desktops: a virtual display (TigerVNC's Xvnc) inside the env, reachable
//! only through a unix socket in a per-env host directory the daemon owns.

use std::path::PathBuf;
use verse_api::Paths;

/// The host directory bind-mounted into a desktop env, holding its VNC socket.
pub fn socket_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.run_dir().join("desktops").join(name)
}

/// The env's VNC socket, as the daemon reaches it.
pub fn vnc_socket(paths: &Paths, name: &str) -> PathBuf {
    socket_dir(paths, name).join("vnc.sock")
}
