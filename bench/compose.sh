#!/usr/bin/env bash
# Compose latency: the offline composer over the prompt set (in-process, release build), and
# `verse compose` as a user runs it (a whole process, hyperfine). No daemon, no root.
# Nobody among the peers composes specs from words, so there is no side-by-side here.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
command -v hyperfine >/dev/null || ./scripts/install-deps.sh --test
cargo build --release -q -p verse-compose --example bench
cargo build --release -q -p verse-cli
echo "== in-process, over both prompt sets"
RUNS=$RUNS cargo run --release -q -p verse-compose --example bench
echo "== the whole command (process start, catalog and package index load, compose, print)"
json=$(mktemp); trap 'rm -f "$json"' EXIT
env -u VERSE_COMPOSE_ENDPOINT -u VERSE_COMPOSE_INDEX hyperfine -N --warmup 5 --runs 60 --export-json "$json" \
  './target/release/verse compose "a python dev box with 2 cores, 4 GB and no internet"' \
  './target/release/verse compose "disposable firefox for banking, red, through tor, with photoshop"' \
  './target/release/verse compose "a family tree program and octave through tor"' \
  './target/release/verse compose "scan a sketchy download with a virus scanner"'
python3 - "$json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['median']*1000:.2f} ms  {r['command']}")
PY
