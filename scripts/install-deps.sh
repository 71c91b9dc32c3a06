#!/usr/bin/env bash
# Installs the Debian packages Verse and its tests use, only those missing.
set -euo pipefail
packages=(busybox-static iproute2 procps nftables util-linux curl debootstrap ostree)
# guard tests: TLS certificates (openssl), non-root peers (setpriv, util-linux)
packages+=(openssl)
# curl, xz-utils: compose checks its catalog against the bookworm package list
[ "${1:-}" = "--test" ] && packages+=(hyperfine crun runc bubblewrap microsocks iperf3 xz-utils)
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
