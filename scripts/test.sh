#!/usr/bin/env bash
# The whole test suite, as root on a Debian machine: unit tests of every crate
# and end-to-end tests that start real daemons and run real environments.
#
#   sudo ./scripts/test.sh
#
# With CI=true a test that cannot run here (not root, a missing kernel
# feature) fails instead of skipping.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/install-deps.sh" --test
if ! command -v cargo >/dev/null; then
  echo "test: no Rust toolchain found; install one with rustup (https://rustup.rs)" >&2
  exit 1
fi
"$here/scripts/busybox-rootfs.sh" >/dev/null
"$here/scripts/build-agent.sh" >/dev/null
"$here/scripts/install-deps.sh" --web
"$here/scripts/web-build.sh"
"$here/scripts/desktop-rootfs.sh" >/dev/null
cargo fmt --all -- --check
cargo fmt --manifest-path crates/verse-scan/Cargo.toml -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The YARA scanner (yara-x) is not in the workspace: it takes minutes to
# build, so it is built once, in release, and again only when its sources or
# the shipped rules change. The quarantine tests find it through VERSE_SCAN.
scan_bin="$here/target/release/verse-scan"
if [ ! -x "$scan_bin" ] || [ -n "$(find crates/verse-scan/src crates/verse-scan/Cargo.toml rules -newer "$scan_bin" -type f | head -1)" ]; then
  cargo build --release --manifest-path crates/verse-scan/Cargo.toml --target-dir "$here/target"
fi
export VERSE_SCAN="$scan_bin"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# The web UI end to end, in headless Chromium against real daemons.
cargo build -p verse-cli
(cd web && VERSE_BIN="$here/target/debug/verse" npm run --silent e2e)
