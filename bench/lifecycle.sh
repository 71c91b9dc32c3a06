#!/usr/bin/env bash
# Lifecycle latencies of a container env whose processes hold 256 MiB of touched
# memory (a tmpfs file inside the env, charged to its cgroup) and whose writable
# layer holds a 64 MiB file: pause, unpause, snapshot (first and unchanged),
# restore, and the first response of a process inside after unpause.
# Each measured with hyperfine (-N, RUNS runs), medians reported in ms.
# Usage: sudo bench/lifecycle.sh   (VERSE_BIN defaults to target/release/verse)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
verse="${VERSE_BIN:-$here/../target/release/verse}"
runs="${RUNS:-20}"
root="$(mktemp -d /tmp/verse-bench.XXXXXX)"
export VERSE_ROOT="$root"
cleanup() {
  "$verse" rm hold >/dev/null 2>&1 || true
  [ -f "$root/run/verse/verse.pid" ] && kill "$(cat "$root/run/verse/verse.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$root"
}
trap cleanup EXIT
(setsid "$verse" daemon >"$root/daemon.log" 2>&1 &)
for _ in $(seq 100); do [ -S "$root/run/verse/verse.sock" ] && break; sleep 0.05; done
"$verse" image import busybox "$("$here/../scripts/busybox-rootfs.sh")" >/dev/null
cat >"$root/verse.toml" <<'SPEC'
[env.hold]
image = "busybox"
memory = "1GiB"
SPEC
"$verse" apply "$root/verse.toml" >/dev/null
"$verse" exec hold -- sh -c 'mkdir -p /mem && mount -t tmpfs -o size=300m tmpfs /mem 2>/dev/null; head -c 268435456 /dev/urandom > /mem/held 2>/dev/null || head -c 268435456 /dev/urandom > /tmp/held; head -c 67108864 /dev/urandom > /root/data'
echo "env memory: $("$verse" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["memory_bytes"])') bytes"
"$verse" snapshot hold base >/dev/null
out="$root/json"; mkdir -p "$out"
hyperfine -N -w 2 -r "$runs" --export-json "$out/pause.json" \
  --prepare "sh -c '$verse unpause hold >/dev/null 2>&1; true'" "$verse pause hold" >/dev/null
hyperfine -N -w 2 -r "$runs" --export-json "$out/unpause.json" \
  --prepare "sh -c '$verse pause hold >/dev/null 2>&1; true'" "$verse unpause hold" >/dev/null
"$verse" unpause hold >/dev/null 2>&1 || true
hyperfine -N -w 1 -r "$runs" --export-json "$out/exec.json" "$verse exec hold -- true" >/dev/null
hyperfine -N -w 1 -r "$runs" --export-json "$out/snapshot_unchanged.json" "$verse snapshot hold" >/dev/null
hyperfine -N -w 1 -r "$runs" --export-json "$out/snapshot_changed.json" \
  --prepare "$verse exec hold -- sh -c 'head -c 1048576 /dev/urandom > /root/new'" "$verse snapshot hold" >/dev/null
hyperfine -N -w 1 -r "$((runs / 2))" --export-json "$out/restore.json" "$verse restore hold base" >/dev/null
python3 "$here/medians.py" "$out" \
  "pause=pause (verse pause, CLI round trip)" \
  "unpause=unpause (verse unpause, CLI round trip)" \
  "exec=exec of true (first response, for reference)" \
  "snapshot_unchanged=snapshot, writable layer unchanged (64 MiB file)" \
  "snapshot_changed=snapshot, 1 MiB new file" \
  "restore=restore (stop, swap in 64 MiB copy, start)"
