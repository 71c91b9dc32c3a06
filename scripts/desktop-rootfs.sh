#!/usr/bin/env bash
# Builds a Debian bookworm root filesystem with a virtual display (TigerVNC's
# Xvnc), a window manager (openbox), xterm, x11-apps and xclip (the clipboard
# test reads and sets the env's clipboard with it), for desktop envs in tests,
# benchmarks and the quick start. Cached: a second call returns at once.
#
#   scripts/desktop-rootfs.sh [DEST]     (default: .cache/desktop-rootfs)
#
# Prints the path of the finished rootfs directory. Until `[image.X] base =
# "debian:bookworm"` is built by the daemon itself, this is how a desktop
# image is made: debootstrap --variant=minbase, then apt-get in a chroot.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$here/.cache/desktop-rootfs}
suite=bookworm
packages=(tigervnc-standalone-server openbox xterm x11-apps xclip fonts-dejavu-core)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi
mkdir -p "$(dirname "$dest")"
want=$(printf '%s\n' "$suite" "${packages[@]}" | cat - "$0" | sha256sum | cut -c1-16)
exec 9>"$dest.lock"
flock 9
if [ -d "$dest" ] && [ "$(cat "$dest.stamp" 2>/dev/null)" = "$want" ]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d "${dest}.tmp.XXXXXX")
cleanup() {
  for m in proc sys dev; do umount -l "$tmp/$m" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
echo "desktop-rootfs: debootstrap $suite (minbase) into $tmp" >&2
debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >&2
mount -t proc proc "$tmp/proc"
echo "desktop-rootfs: apt-get install ${packages[*]}" >&2
chroot "$tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends "${packages[@]}" >&2
chroot "$tmp" apt-get clean
umount -l "$tmp/proc"
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/log/*.log
# A user for desktop sessions, as in the busybox image.
chroot "$tmp" useradd -m -u 1000 -s /bin/bash user 2>/dev/null || true
echo desktop > "$tmp/etc/hostname"
rm -rf "$dest" "$dest.stamp"
mv "$tmp" "$dest"
trap - EXIT
echo "$want" > "$dest.stamp"
echo "$dest"
