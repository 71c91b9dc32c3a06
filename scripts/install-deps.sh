#!/usr/bin/env bash
# Installs the Debian packages Verse and its tests use, only those missing.
set -euo pipefail
packages=(busybox-static iproute2 procps debootstrap ostree curl bsdutils)
[ "${1:-}" = "--test" ] && packages+=(hyperfine crun runc bubblewrap)
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
