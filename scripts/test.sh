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
cargo build -p verse-cli
# The Python SDK (clients/python) against a real daemon over the TLS API, with
# pytest in a venv of its own under target/.
sdk_venv="$here/target/python-sdk-venv"
if [ ! -x "$sdk_venv/bin/pytest" ]; then
  python3 -m venv "$sdk_venv"
  "$sdk_venv/bin/pip" install --quiet --disable-pip-version-check "pytest>=7"
fi
"$sdk_venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./clients/python
VERSE_BIN="$here/target/debug/verse" "$sdk_venv/bin/pytest" -q -rs clients/python/tests
# The web UI end to end, in headless Chromium against real daemons.
(cd web && VERSE_BIN="$here/target/debug/verse" npm run --silent e2e)
