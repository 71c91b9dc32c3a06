#!/usr/bin/env bash
# Builds verse-agent, the PID 1 of Verse microVMs, as a static executable
# (glibc, +crt-static: this toolchain has no musl target). Building for an
# explicit --target keeps these RUSTFLAGS away from the rest of the workspace:
# the result lands in target/x86_64-unknown-linux-gnu/<profile>/verse-agent,
# where verse looks for it (or set VERSE_AGENT).
#
#   scripts/build-agent.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build -q -p verse-agent --bin verse-agent --target x86_64-unknown-linux-gnu "$@"
profile=debug
[ "${1:-}" = "--release" ] && profile=release
agent="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/$profile/verse-agent"
if ldd "$agent" 2>&1 | grep -q "=>"; then
  echo "build-agent: $agent is not static" >&2
  exit 1
fi
echo "$agent"
