#!/usr/bin/env bash
# Hibernate/resume latency of a vm env (QEMU microvm, TCG: this host's KVM is
# paravirtual and slow) with 256 MiB of guest RAM (206 MiB of it usable by the
# guest), whose main process holds 100 MiB of touched memory (busybox `tail`
# buffering one endless line; its buffer grows by reallocation, so much more
# gets it OOM-killed in this guest). Hibernate is QMP `migrate` to
# `exec:cat > checkpoint/vm.state`, resume a new QEMU with `-incoming`. Also
# resume-to-first-response (resume, then `verse exec true`) and pause/unpause
# (QMP stop/cont) of the same env. hyperfine -N, RUNS runs, medians in ms.
# Usage: sudo bench/hibernate-vm.sh   (VERSE_BIN defaults to bench/lib.sh's release build;
# the static agent must be built: scripts/build-agent.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
verse=$VERSE
runs="${RUNS:-10}"
root=$VERSE_ROOT
start_daemon
"$verse" image import busybox "$ROOTFS" >/dev/null
cat >"$root/verse.toml" <<'SPEC'
[env.hold]
image = "busybox"
backend = "vm"
accel = "tcg"
memory = "256MiB"
command = ["sh", "-c", "{ head -c 104857600 /dev/zero | tr '\\0' x; sleep 1000000; } | tail"]
SPEC
"$verse" apply "$root/verse.toml" >/dev/null
# Wait until the guest's tail holds the 100 MiB.
for _ in $(seq 600); do
  rss=$("$verse" exec hold -- sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = tail ] && grep VmRSS $p/status; done; true' | awk '{print $2}')
  [ "${rss:-0}" -gt 102000 ] && break
  sleep 0.2
done
echo "guest tail RSS before hibernate: ${rss:-0} kB"
out="$BENCH_TMP/json"; mkdir -p "$out"
resume_if="sh -c '$verse resume hold >/dev/null 2>&1; true'"
hibernate_if="sh -c '$verse hibernate hold >/dev/null 2>&1; true'"
hyperfine -N -w 1 -r "$runs" --export-json "$out/hibernate.json" --prepare "$resume_if" "$verse hibernate hold" >/dev/null
du -sh "$root/var/lib/verse/envs/hold/checkpoint" | sed 's/^/saved VM on disk: /'
hyperfine -N -w 1 -r "$runs" --export-json "$out/resume.json" --prepare "$hibernate_if" "$verse resume hold" >/dev/null
hyperfine -N -w 1 -r "$runs" --export-json "$out/resume_first.json" --prepare "$hibernate_if" \
  "sh -c '$verse resume hold >/dev/null && $verse exec hold -- true'" >/dev/null
"$verse" resume hold >/dev/null 2>&1 || true
rss=$("$verse" exec hold -- sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = tail ] && grep VmRSS $p/status; done; true' | awk '{print $2}')
echo "guest tail RSS after resume: ${rss:-0} kB"
hyperfine -N -w 2 -r "$runs" --export-json "$out/pause.json" \
  --prepare "sh -c '$verse unpause hold >/dev/null 2>&1; true'" "$verse pause hold" >/dev/null
hyperfine -N -w 2 -r "$runs" --export-json "$out/unpause.json" \
  --prepare "sh -c '$verse pause hold >/dev/null 2>&1; true'" "$verse unpause hold" >/dev/null
python3 "$here/medians.py" "$out" \
  "hibernate=hibernate (QMP migrate of a 256 MiB guest to a file, QEMU ended)" \
  "resume=resume (new shim, QEMU -incoming, cont)" \
  "resume_first=resume to first response (resume + exec true)" \
  "pause=pause (QMP stop, memory kept)" \
  "unpause=unpause (QMP cont)"
