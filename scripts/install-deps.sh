#!/usr/bin/env bash
# Installs the Debian packages Verse and its tests use, only those missing.
set -euo pipefail
packages=(busybox-static iproute2 procps)
[ "${1:-}" = "--test" ] && packages+=(hyperfine crun runc bubblewrap)
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
