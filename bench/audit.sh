#!/usr/bin/env bash
# Audit log: appends per second (buffered, and fdatasync'ed per record as the
# daemon does) and the time to verify a log of N records (default 1,000,000).
#
#   N=1000000 DIR=/var/tmp bench/audit.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --release -p verse-guard --example audit_bench >&2
exec ./target/release/examples/audit_bench "${N:-1000000}" "${DIR:-/var/tmp}"
