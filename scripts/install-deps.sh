#!/usr/bin/env bash
# Installs the Debian packages Verse and its tests use, only those missing.
set -euo pipefail
packages=(busybox-static iproute2 procps nftables util-linux curl debootstrap ostree bsdutils)
# vm and gvisor backends
packages+=(qemu-system-x86 erofs-utils e2fsprogs runsc cpio)
# `disk = "SIZE"`: mkfs.ext4, e2fsck, resize2fs (e2fsprogs); mount -o loop, losetup (util-linux)
packages+=(e2fsprogs util-linux)
# guard tests: TLS certificates (openssl), non-root peers (setpriv, util-linux)
packages+=(openssl)
# The control filesystem (`verse fs mount`): fusermount3, for mounts made by a
# non-root user and `allow_other` (root mounts with mount(2) directly).
packages+=(fuse3)
# curl, xz-utils: compose checks its catalog against the bookworm package list
[ "${1:-}" = "--test" ] && packages+=(hyperfine crun runc bubblewrap microsocks iperf3 xz-utils)
# The Python SDK's tests: pytest in a venv (scripts/test.sh)
[ "${1:-}" = "--test" ] && packages+=(python3 python3-venv)
# image import/export tests: images made by the tools people use (no registry needed)
[ "${1:-}" = "--test" ] && packages+=(podman buildah skopeo)
# The web UI's browser tests: Debian's Chromium (driven by playwright-core; no
# browser download), and debootstrap for the desktop image (scripts/desktop-rootfs.sh).
[ "${1:-}" = "--web" ] && packages+=(chromium debootstrap)
# Node.js builds the web UI; a newer one already on PATH is used as it is.
[ "${1:-}" = "--web" ] && ! command -v npm >/dev/null && packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq "${missing[@]}" >&2
fi
# CRIU for hibernate/resume: trixie's 4.x in a prefix Verse owns (bookworm's
# 3.17 fails on kernels >= 6.13). Not fatal: everything else works without it.
"$(dirname "$0")/install-criu.sh" >/dev/null || echo "note: no working CRIU; hibernate/resume will be refused" >&2

# The vm backend's guest kernel: Debian's linux-image, unpacked (not installed:
# this host does not boot it) into /usr/lib/verse/kernel (boot/vmlinuz-*,
# lib/modules/*). Verse reads it from there, or from $VERSE_VM_KERNEL.
kernel_dir=/usr/lib/verse/kernel
if ! ls "$kernel_dir"/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    apt-get update -qq >&2 || true
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  echo "unpacking guest kernel $pkg into $kernel_dir" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq "$pkg" >&2 2>/dev/null)
  mkdir -p "$kernel_dir.tmp"
  dpkg-deb -x "$tmp"/*.deb "$kernel_dir.tmp"
  rm -rf "$tmp" "$kernel_dir"
  mv "$kernel_dir.tmp" "$kernel_dir"
fi
