//! Desktops: a virtual display (TigerVNC's Xvnc) inside the env, reachable
//! only through a unix socket in a per-env host directory the daemon owns.

use std::path::PathBuf;
use verse_api::Paths;

/// The host directory bind-mounted into a desktop env, holding its VNC socket.
pub fn socket_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.root.join("run/verse-desktops").join(name)
}

/// The env's VNC socket, as the daemon reaches it.
pub fn vnc_socket(paths: &Paths, name: &str) -> PathBuf {
    socket_dir(paths, name).join("vnc.sock")
}

/// Where the socket directory appears inside the env.
pub const SOCKET_DIR_IN_ENV: &str = "/run/verse-desktop";
/// The X display inside every desktop env.
pub const DISPLAY: &str = ":0";

/// Creates the env's socket directory, owned by the env's user and closed to
/// everyone else (`owner`: host id of the env's root); its parent is traversable
/// but not listable.
pub fn prepare_socket_dir(
    paths: &Paths,
    name: &str,
    owner: u32,
    uid: u32,
    gid: u32,
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = socket_dir(paths, name);
    let parent = dir.parent().expect("socket dir has a parent");
    std::fs::create_dir_all(parent)?;
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
    if !dir.exists() {
        std::fs::create_dir(&dir)?;
    }
    std::os::unix::fs::chown(&dir, Some(owner + uid), Some(owner + gid))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    // A socket left by the last run would be taken for a live display.
    let _ = std::fs::remove_file(dir.join("vnc.sock"));
    Ok(dir)
}

/// Removes the socket directory of a deleted env.
pub fn remove_socket_dir(paths: &Paths, name: &str) {
    let _ = std::fs::remove_dir_all(socket_dir(paths, name));
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The env's main process when it has a desktop: Xvnc on a unix socket only
/// (`-rfbport -1`: no TCP port; no authentication, since only the daemon can
/// reach the socket), the window manager, the autostart apps and the spec's
/// command (if any) on the display. The env lives as long as its display.
pub fn session_command(
    desktop: &verse_spec::desktop::DesktopSpec,
    autostart: &[String],
    command: Option<&[String]>,
) -> Vec<String> {
    let socket = format!("{SOCKET_DIR_IN_ENV}/vnc.sock");
    let mut script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM INT
export DISPLAY={DISPLAY}
mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix
# Left by the last run in the writable layer; no process of it survives a restart.
rm -f {socket} /tmp/.X0-lock /tmp/.X11-unix/X0
Xvnc {DISPLAY} -geometry {w}x{h} -depth 24 -rfbunixpath {socket} -rfbunixmode 0600 -rfbport -1 -SecurityTypes None -nolisten tcp -AlwaysShared &
xvnc=$!
i=0
while [ ! -S /tmp/.X11-unix/X0 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
",
        w = desktop.width,
        h = desktop.height,
    );
    // The apps start once the window manager has taken the screen (openbox
    // runs its `--startup` command then): a window mapped while the manager
    // was still starting could be left unmapped, and the desktop stay black.
    let mut apps = String::new();
    for app in autostart {
        apps.push_str(&format!("/bin/sh -c {} &\n", quote(app)));
    }
    if let Some(argv) = command {
        let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        apps.push_str(&format!("{} &\n", words.join(" ")));
    }
    let wm = quote(&desktop.wm);
    if apps.is_empty() {
        script.push_str(&format!("{wm} &\n"));
    } else {
        let startup = format!("/bin/sh -c {}", quote(&apps));
        script.push_str(&format!("{wm} --startup {} &\n", quote(&startup)));
    }
    script.push_str("wait $xvnc\n");
    vec!["/bin/sh".into(), "-c".into(), script]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_quotes_what_the_spec_gives() {
        let desktop = verse_spec::desktop::DesktopSpec::default();
        let argv = session_command(
            &desktop,
            &["xterm -title 'it''s'".into()],
            Some(&["xclock".into(), "-digital".into()]),
        );
        let script = &argv[2];
        assert!(script.contains("-rfbport -1"), "no TCP port");
        assert!(script.contains("-geometry 1600x900"));
        // The apps run from the window manager's startup hook, quoted twice
        // (sh -c of sh -c): take the words apart the way sh would, and look.
        let third_word = |text: &str| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("set -- {text}; printf '%s' \"$3\""))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let start = script
            .find("'openbox' --startup ")
            .expect("openbox starts the apps");
        let end = script.rfind(" &\nwait $xvnc").expect("then waits");
        let startup = third_word(&script[start..end]);
        assert!(startup.starts_with("/bin/sh -c "), "{startup}");
        let apps = third_word(&startup);
        assert!(
            apps.contains(r"/bin/sh -c 'xterm -title '\''it'\'''\''s'\''' &"),
            "{apps}"
        );
        assert!(apps.contains("'xclock' '-digital' &"), "{apps}");
        assert!(script.ends_with("wait $xvnc\n"));
    }
}
