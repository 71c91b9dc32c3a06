#!/usr/bin/env bash
# Start-up and exec latency of Verse against crun, runc and bwrap, on the same
# busybox rootfs, in one hyperfine run each. Run as root:
#
#   bench/startup.sh                 # RUNS=60 WARMUP=5 by default
#   RUNS=100 bench/startup.sh
#   BUILD=1 bench/startup.sh         # rebuild target-bench/release/verse first
#   OUT=/some/dir bench/startup.sh   # keep the hyperfine JSON there
#
# (a) start-to-exit of /bin/true in a fresh environment:
#       verse run --rm busybox -- /bin/true   (whole CLI -> daemon -> shim path)
#       crun run / runc run of an OCI bundle   (args ["/bin/true"])
#       bwrap --unshare-all --bind ROOTFS / --proc /proc --dev /dev /bin/true
# (b) /bin/true exec'd into a running environment:
#       verse exec bench -- /bin/true   against   crun exec / runc exec
#
# crun 1.8 refuses this host's hybrid cgroup layout unless
# /sys/fs/cgroup/unified is out of sight, so the measurements run in ONE private
# mount namespace (unshare -m) where it is unmounted. Every contender runs in it,
# none pays a per-run unshare; the verse daemon runs outside, in the host's
# namespace, as it would in production. `unshare -m true` is timed for reference.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-60}
WARMUP=${WARMUP:-5}
OUT=${OUT:-$BENCH_TMP/out}
mkdir -p "$OUT"

need hyperfine hyperfine
need crun crun
need runc runc
need bwrap bubblewrap
need python3 python3

echo "== setup ($BENCH_TMP)" >&2
start_daemon
"$VERSE" image import busybox "$ROOTFS" >/dev/null
cat >"$BENCH_TMP/verse.toml" <<'TOML'
[env.bench]
image = "busybox"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
TOML
"$VERSE" apply "$BENCH_TMP/verse.toml" >/dev/null
make_bundle "$BENCH_TMP/bundle-true" '["/bin/true"]'
make_bundle "$BENCH_TMP/bundle-sleep" '["/bin/sleep", "3600"]'
"$VERSE" run --rm busybox -- /bin/true  # sanity: the path works at all

cat >"$BENCH_TMP/inner.sh" <<'INNER'
set -euo pipefail
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
CRUN="crun --root $BENCH_TMP/crun-state"
RUNC="runc --root $BENCH_TMP/runc-state"
stop_containers() {
  $CRUN delete -f vb-exec >/dev/null 2>&1 || true
  $RUNC delete -f vb-exec >/dev/null 2>&1 || true
}
trap stop_containers EXIT
# sanity: every contender works before it is timed
$CRUN run -b "$BENCH_TMP/bundle-true" vb-run </dev/null
$RUNC run -b "$BENCH_TMP/bundle-true" vb-run </dev/null
bwrap --unshare-all --bind "$BENCH_TMP/rootfs" / --proc /proc --dev /dev /bin/true

echo "== (a) start-to-exit of /bin/true in a fresh env" >&2
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
  --export-json "$OUT/start.json" \
  -n "verse run --rm" "$VERSE run --rm busybox -- /bin/true" \
  -n "crun run" "$CRUN run -b $BENCH_TMP/bundle-true vb-run" \
  -n "runc run" "$RUNC run -b $BENCH_TMP/bundle-true vb-run" \
  -n "bwrap" "bwrap --unshare-all --bind $BENCH_TMP/rootfs / --proc /proc --dev /dev /bin/true" \
  -n "unshare -m true" "unshare -m true"

echo "== (b) exec of /bin/true into a running env" >&2
$CRUN run -d -b "$BENCH_TMP/bundle-sleep" vb-exec </dev/null >/dev/null 2>&1
$CRUN state vb-exec | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' >"$BENCH_TMP/crun-exec.pid"
# -N gives the commands /dev/null as stdin; `verse exec` with stdin at EOF
# sometimes loses the exit code (see bench/README.md), so -i keeps going and
# report.py prints how many runs exited non-zero. The work done is the same.
hyperfine -N -i --warmup "$WARMUP" --runs "$RUNS" --style basic \
  --export-json "$OUT/exec.json" \
  -n "verse exec" "$VERSE exec bench -- /bin/true" \
  -n "crun exec" "$CRUN exec vb-exec /bin/true"
INNER

BENCH_TMP=$BENCH_TMP VERSE=$VERSE RUNS=$RUNS WARMUP=$WARMUP OUT=$OUT \
  unshare -m --propagation private bash "$BENCH_TMP/inner.sh"

echo "== verse exec with stdin at EOF (/dev/null), 100 tries" >&2
fails=0
for _ in $(seq 100); do
  "$VERSE" exec bench -- /bin/true </dev/null 2>/dev/null || fails=$((fails + 1))
done
echo "verse exec </dev/null: $fails/100 failed" | tee "$OUT/exec-devnull.txt"

echo
python3 "$REPO/bench/report.py" "$OUT/start.json" "crun run" "$OUT/exec.json" "crun exec"
