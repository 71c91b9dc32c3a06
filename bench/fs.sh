#!/usr/bin/env bash
# The control filesystem against the CLI: `cat envs/web/state` vs `verse ls --json`,
# `echo pause > envs/web/ctl` vs `verse pause web`, and listing N envs
# (`ls envs` and every state file vs `verse ls --json`). hyperfine -N, medians in ms.
# Both sides pay a process start (cat/sh vs verse); the in-process read cost of
# the fs is measured too (python, 1000 open+read+close).
# Usage: sudo bench/fs.sh   (VERSE_BIN defaults to target/release/verse; ENVS=200 RUNS=30)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
verse="${VERSE_BIN:-$here/../target/release/verse}"
runs="${RUNS:-30}"
envs="${ENVS:-200}"
root="$(mktemp -d /tmp/verse-bench.XXXXXX)"
export VERSE_ROOT="$root"
mnt="$root/mnt"
cleanup() {
  set +e
  umount "$mnt" 2>/dev/null
  for e in $("$verse" ls --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(e["name"] for e in json.load(sys.stdin)))'); do
    "$verse" rm "$e" >/dev/null 2>&1
  done
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null
  sleep 0.3
  rm -rf "$root"
}
trap cleanup EXIT
"$verse" daemon >"$root/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S "$root/run/verse/verse.sock" ] && break; sleep 0.05; done
"$verse" image import busybox "$("$here/../scripts/busybox-rootfs.sh")" >/dev/null
{
  for i in $(seq 1 "$envs"); do
    name=web; [ "$i" -gt 1 ] && name="e$i"
    printf '[env.%s]\nimage = "busybox"\nmemory = "64MiB"\ncommand = ["/bin/sh", "-c", "trap \x27exit 0\x27 TERM; while :; do sleep 5; done"]\n' "$name"
  done
} >"$root/verse.toml"
"$verse" apply "$root/verse.toml" >/dev/null
mkdir -p "$mnt"
"$verse" fs mount --daemon "$mnt" >/dev/null
out="$root/json"; mkdir -p "$out"
hf() { hyperfine -N -w 3 -r "$runs" --export-json "$out/$1.json" "${@:2}" >/dev/null; }
hf cat_state "cat $mnt/envs/web/state"
hf ls_json "$verse ls --json"
hf ctl_pause --prepare "sh -c '$verse unpause web >/dev/null 2>&1; true'" "sh -c 'echo pause > $mnt/envs/web/ctl'"
hf cli_pause --prepare "sh -c '$verse unpause web >/dev/null 2>&1; true'" "$verse pause web"
"$verse" unpause web >/dev/null 2>&1 || true
hf list_fs "sh -c 'ls $mnt/envs >/dev/null && cat $mnt/envs/*/state >/dev/null'"
hf sh_noop "sh -c true"
inproc=$(python3 - "$mnt/envs/web/state" <<'PY'
import sys, time
p = sys.argv[1]
t = []
for _ in range(1000):
    s = time.perf_counter(); open(p).read(); t.append(time.perf_counter() - s)
t.sort(); print("%.3f" % (t[len(t)//2] * 1000))
PY
)
median() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$out/$1.json"; }
echo "envs: $envs, runs: $runs, binary: $verse"
echo "| operation | fs median ms | CLI median ms | CLI / fs |"
echo "|---|---|---|---|"
row() { python3 -c 'import sys; print("| %s | %s | %s | %.1fx |" % (sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[3]) / float(sys.argv[2])))' "$@"; }
row "read one env state (\`cat state\` vs \`verse ls --json\`)" "$(median cat_state)" "$(median ls_json)"
row "pause (\`echo pause > ctl\` vs \`verse pause\`)" "$(median ctl_pause)" "$(median cli_pause)"
row "list $envs envs with states (\`ls envs; cat envs/*/state\` vs \`verse ls --json\`)" "$(median list_fs)" "$(median ls_json)"
echo "in-process open+read+close of state (no process start): $inproc ms median of 1000"
echo "process start alone (\`sh -c true\`): $(median sh_noop) ms"
