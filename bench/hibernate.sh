#!/usr/bin/env bash
# Hibernate/resume latency (CRIU) of a container env whose main process holds
# 256 MiB of touched memory (busybox `tail` buffering one 256 MiB line that
# never ends), and resume-to-first-response (resume, then `verse exec true`).
# Each measured with hyperfine (-N, RUNS runs), medians reported in ms. Side
# by side: pause/unpause of the same env, which keep the memory allocated.
# Usage: sudo bench/hibernate.sh   (VERSE_BIN defaults to target/release/verse)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
verse="${VERSE_BIN:-$here/../target/release/verse}"
runs="${RUNS:-10}"
root="$(mktemp -d /tmp/verse-bench.XXXXXX)"
export VERSE_ROOT="$root"
cleanup() {
  "$verse" hibernate --discard hold >/dev/null 2>&1 || true
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
command = ["sh", "-c", "{ head -c 268435456 /dev/zero; sleep 1000000; } | tail"]
SPEC
"$verse" apply "$root/verse.toml" >/dev/null
for _ in $(seq 200); do
  mem=$("$verse" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["memory_bytes"] or 0)')
  [ "$mem" -gt 268435456 ] && break
  sleep 0.1
done
echo "env memory before hibernate: $mem bytes"
out="$root/json"; mkdir -p "$out"
resume_if="sh -c '$verse resume hold >/dev/null 2>&1; true'"
hibernate_if="sh -c '$verse hibernate hold >/dev/null 2>&1; true'"
hyperfine -N -w 1 -r "$runs" --export-json "$out/hibernate.json" --prepare "$resume_if" "$verse hibernate hold" >/dev/null
du -sh "$root/var/lib/verse/envs/hold/checkpoint" | sed 's/^/checkpoint on disk: /'
hyperfine -N -w 1 -r "$runs" --export-json "$out/resume.json" --prepare "$hibernate_if" "$verse resume hold" >/dev/null
hyperfine -N -w 1 -r "$runs" --export-json "$out/resume_first.json" --prepare "$hibernate_if" \
  "sh -c '$verse resume hold >/dev/null && $verse exec hold -- true'" >/dev/null
"$verse" resume hold >/dev/null 2>&1 || true
mem=$("$verse" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["memory_bytes"] or 0)')
echo "env memory after resume: $mem bytes"
hyperfine -N -w 2 -r "$runs" --export-json "$out/pause.json" \
  --prepare "sh -c '$verse unpause hold >/dev/null 2>&1; true'" "$verse pause hold" >/dev/null
hyperfine -N -w 2 -r "$runs" --export-json "$out/unpause.json" \
  --prepare "sh -c '$verse pause hold >/dev/null 2>&1; true'" "$verse unpause hold" >/dev/null
python3 "$here/medians.py" "$out" \
  "hibernate=hibernate (criu dump of 256 MiB, memory freed)" \
  "resume=resume (new shim, criu restore)" \
  "resume_first=resume to first response (resume + exec true)" \
  "pause=pause (same env, memory kept)" \
  "unpause=unpause"
