//! The host end of a vm env's network: a tap device instead of a veth.
//!
//! The tap carries the same name (`vs<TAG><N>`) and configuration as a container env's host
//! veth end (gateway address, /32 route to the env, forwarding on it only, no IPv6), so the
//! nftables table, anti-spoofing set and policy routing treat both alike: the host enforces
//! the policy, the guest can change nothing of it. The tap is not persistent: it exists while
//! a file descriptor of it is open (the shim's until QEMU has its own, then QEMU's), so a VM
//! that dies for any reason takes its tap, address and route with it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::attach::configure_host_end;
use crate::{EnvNet, NetError, run};

/// `_IOW('T', 202, int)` from <linux/if_tun.h>.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Creates the env's tap (no packet-info header, no vnet header) and configures its host end;
/// returns the descriptor QEMU is to use (`-netdev tap,fd=N`). On failure nothing is left:
/// closing the descriptor removes the tap.
pub fn open_tap(net: &EnvNet) -> Result<OwnedFd, NetError> {
    let name = net.host_ifname.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(NetError::Other(format!(
            "interface name {} is too long",
            net.host_ifname
        )));
    }
    // A stale interface of that name (a shim that was killed) would make TUNSETIFF attach to
    // it or fail.
    if std::path::Path::new("/sys/class/net")
        .join(&net.host_ifname)
        .exists()
    {
        let _ = run("ip", &["link", "del", &net.host_ifname], None);
    }
    // SAFETY: open(2) of a constant NUL-terminated path; the result is checked.
    let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(NetError::Other(format!(
            "opening /dev/net/tun: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `raw` is a descriptor we just opened and own from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
    // SAFETY: TUNSETIFF reads an ifreq that lives on the stack for the call; the name is
    // NUL-terminated (checked length, zeroed struct).
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr) } < 0 {
        return Err(NetError::Other(format!(
            "creating tap {}: {}",
            net.host_ifname,
            std::io::Error::last_os_error()
        )));
    }
    // The same MAC on every tap of this env: a guest resumed from hibernation
    // on a new tap still has the gateway's address in its ARP cache, and a
    // frame to another MAC would be dropped by the tap until that entry aged.
    let mac = host_mac(net);
    run(
        "ip",
        &["link", "set", "dev", &net.host_ifname, "address", &mac],
        None,
    )?;
    configure_host_end(net)?;
    Ok(fd)
}

/// The tap's own MAC address (the guest's gateway): locally administered,
/// derived from the env's address like [`guest_mac`], and distinct from it.
fn host_mac(net: &EnvNet) -> String {
    let [_, b, c, d] = net.address.octets();
    format!("02:56:00:{b:02x}:{c:02x}:{d:02x}")
}

/// The guest NIC's MAC address: locally administered, derived from the env's address.
pub fn guest_mac(net: &EnvNet) -> String {
    let [_, b, c, d] = net.address.octets();
    format!("52:54:00:{b:02x}:{c:02x}:{d:02x}")
}
