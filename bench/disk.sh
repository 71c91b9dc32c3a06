#!/usr/bin/env bash
# What `disk = "SIZE"` costs at start: `verse up` of a stopped env (its disk
# already mounted) with and without a disk, side by side in one hyperfine run;
# and the first start of a new env with a disk (sparse image, mkfs.ext4, loop
# mount) against one without. Run as root:
#
#   bench/disk.sh                     # RUNS=30 by default
#   VERSE_BIN=target/debug/verse bench/disk.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}
OUT=${OUT:-$BENCH_TMP/out}
mkdir -p "$OUT"
need hyperfine hyperfine

start_daemon
"$VERSE" image import busybox "$ROOTFS" >/dev/null
cat >"$BENCH_TMP/verse.toml" <<'TOML'
[env.plain]
image = "busybox"
[env.disk]
image = "busybox"
disk = "1GiB"
TOML
"$VERSE" apply "$BENCH_TMP/verse.toml" >/dev/null
hyperfine -N -w 3 -r "$RUNS" --export-json "$OUT/up.json" \
  --prepare "$VERSE down plain" -n "up, no disk" "$VERSE up plain" \
  --prepare "$VERSE down disk" -n "up, disk = 1GiB (mounted)" "$VERSE up disk"
# First start: a new env each run (made by `verse run`, removed in --prepare's next round).
hyperfine -N -w 2 -r "$RUNS" --export-json "$OUT/first.json" \
  --prepare "sh -c '$VERSE rm first >/dev/null 2>&1; true'" \
  -n "first run, no disk" "$VERSE run --name first busybox -- true" \
  -n "first run, --disk 1GiB (mkfs + loop mount)" "$VERSE run --name first --disk 1GiB busybox -- true"
python3 - "$OUT" <<'PY'
import json, sys, statistics
for name in ("up", "first"):
    results = json.load(open(f"{sys.argv[1]}/{name}.json"))["results"]
    base = statistics.median(results[0]["times"])
    for r in results:
        m = statistics.median(r["times"])
        print(f"| {r['command']} | {m * 1000:.1f} ms | {m / base:.2f} |")
PY
