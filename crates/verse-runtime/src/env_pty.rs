//! A pseudo-terminal from the env's own devpts instance, for `verse exec -t`
//! and `verse shell`.
//!
//! A pty made on the host's devpts works as a terminal inside the env, but its
//! name (`/dev/pts/N` of the host) means nothing there: `tty` says "not a tty"
//! and programs that look their terminal up by name (`su`, `screen`, `tmux`,
//! `login`) fail. So the shim opens the `ptmx` of the env's devpts (every
//! container env mounts a private instance on `/dev/pts`) and the process
//! gets a terminal that the env's `/dev/pts` lists.
//!
//! The path is resolved beneath the env's root with openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) and the result must be a
//! devpts `ptmx`: nothing the env planted can make the shim (host root) open
//! another file. The slave end comes from TIOCGPTPEER on the master, not
//! from a path the env could swap.

use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// `DEVPTS_SUPER_MAGIC` from <linux/magic.h>.
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// A new pty of the env whose init is `init`, sized `rows` × `cols`:
/// (master, slave).
pub fn open(init: Pid, rows: u16, cols: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let root = rustix::fs::open(
        format!("/proc/{}/root", init.as_raw()),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let master = rustix::fs::openat2(
        &root,
        "dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let fs = rustix::fs::fstatfs(&master)?;
    if fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        return Err(std::io::Error::other(
            "the env's /dev/pts/ptmx is not on a devpts filesystem",
        ));
    }
    rustix::pty::unlockpt(&master)?;
    rustix::termios::tcsetwinsize(
        &master,
        Winsize {
            ws_row: rows.max(1),
            ws_col: cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    Ok((master, slave))
}
