#!/usr/bin/env bash
# Interleaved A/B of `verse run --rm busybox -- /bin/true`: base and new binaries,
# each with its own daemon and root, alternating run by run (and which goes first) so
# host load hits both alike. Run as root:
#
#   RUNS=100 bench/ab-startup.sh OLD_VERSE NEW_VERSE
#
# e.g. two release builds of two commits (git worktree add ... OLD; cargo build --release).
set -euo pipefail
BASE=$1 NEW=$2 RUNS=${RUNS:-100}
ROOTFS=$("$(dirname "$0")/../scripts/busybox-rootfs.sh")
T=$(mktemp -d /tmp/verse-ab.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$T/"; then kill -KILL "${p#/proc/}" 2>/dev/null; fi
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  findmnt -rn -o TARGET | grep -F "$T" | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$T"
}
trap cleanup EXIT
for side in base new; do
  bin=$BASE; [ $side = new ] && bin=$NEW
  mkdir -p "$T/$side"
  VERSE_ROOT=$T/$side "$bin" daemon >"$T/$side.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$T/$side/run/verse/verse.sock" ] && break; sleep 0.05; done
  VERSE_ROOT=$T/$side "$bin" image import busybox "$ROOTFS" >/dev/null
  for _ in 1 2 3 4 5; do VERSE_ROOT=$T/$side "$bin" run --rm busybox -- /bin/true; done
done
python3 - "$BASE" "$NEW" "$T" "$RUNS" <<'PY'
import os, statistics, subprocess, sys, time
base, new, t, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
times = {"base": [], "new": []}
for i in range(runs):
    order = [("base", base), ("new", new)] if i % 2 == 0 else [("new", new), ("base", base)]
    for side, binary in order:
        env = dict(os.environ, VERSE_ROOT=f"{t}/{side}")
        start = time.perf_counter()
        subprocess.run([binary, "run", "--rm", "busybox", "--", "/bin/true"], env=env, check=True,
                       stdin=subprocess.DEVNULL)
        times[side].append((time.perf_counter() - start) * 1000)
for side in ("base", "new"):
    v = times[side]
    print(f"{side:5} median {statistics.median(v):7.2f} ms  mean {statistics.mean(v):7.2f}  min {min(v):7.2f}  runs {len(v)}")
print(f"new/base median ratio {statistics.median(times['new'])/statistics.median(times['base']):.3f}")
PY
