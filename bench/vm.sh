#!/usr/bin/env bash
# The vm backend against bare QEMU, and the gvisor backend against the
# container backend, side by side in one run.
#
# (a) boot to the env's first command: `verse up` of a vm env (QEMU start,
#     kernel, verse-agent as PID 1, disks mounted, overlay root, main command
#     started and reported) vs bare `qemu-system-x86_64 -M microvm` booting the
#     same kernel with a busybox initramfs whose /init only prints a marker and
#     ends the VM, same accelerator, same kernel arguments;
# (b) idle resident memory of the VMM: Verse's QEMU with its env idle vs the
#     bare QEMU idling after its marker (same guest RAM);
# (c) `verse up` of a gvisor env vs a container env (runsc --platform=ptrace).
#
#   RUNS=5 VERSE_BIN=target/debug/verse bench/vm.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
RUNS=${RUNS:-5}
ACCEL=${ACCEL:-tcg}
KDIR=${VERSE_VM_KERNEL:-/usr/lib/verse/kernel}
KERNEL=$(ls "$KDIR"/boot/vmlinuz-* | tail -1)
KHZ=$(awk -F: '/^cpu MHz/ {printf "%d", $2*1000; exit}' /proc/cpuinfo)
ARGS="console=ttyS0 quiet panic=-1 reboot=t"
[ "$ACCEL" = tcg ] && ARGS="$ARGS tsc_early_khz=$KHZ"
ACCEL_ARGS=(-accel tcg)
[ "$ACCEL" = kvm ] && ACCEL_ARGS=(-accel kvm -cpu host,-arch-capabilities)

# The bare guest: busybox /init that prints a marker, then idles or ends.
mk_initramfs() { # OUT MODE(exit|idle)
  local d=$BENCH_TMP/ir-$2
  mkdir -p "$d/bin" "$d/proc" "$d/dev"
  cp /bin/busybox "$d/bin/busybox"
  ln -sf busybox "$d/bin/sh"
  if [ "$2" = exit ]; then
    printf '#!/bin/sh\necho VERSE-BENCH-MARKER\n/bin/busybox reboot -f\n' >"$d/init"
  else
    printf '#!/bin/sh\necho VERSE-BENCH-MARKER\nwhile :; do /bin/busybox sleep 3600; done\n' >"$d/init"
  fi
  chmod +x "$d/init"
  (cd "$d" && find . | cpio -o -H newc 2>/dev/null) >"$1"
}
mk_initramfs "$BENCH_TMP/marker-exit.cpio" exit
mk_initramfs "$BENCH_TMP/marker-idle.cpio" idle
bare() { # INITRD, prints to stdout
  echo qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on -nodefaults -no-user-config \
    -nographic -no-reboot "${ACCEL_ARGS[@]}" -smp 1 -m 256M -kernel "$KERNEL" -initrd "$1" \
    -append "\"$ARGS\"" -serial stdio
}

start_daemon
"$VERSE" image import busybox "$ROOTFS" >/dev/null
cat >"$BENCH_TMP/verse.toml" <<TOML
[env.benchvm]
image = "busybox"
backend = "vm"
accel = "$ACCEL"
memory = "256MiB"

[env.benchgv]
image = "busybox"
backend = "gvisor"

[env.benchct]
image = "busybox"
TOML
"$VERSE" apply "$BENCH_TMP/verse.toml" >/dev/null
for e in benchvm benchgv benchct; do "$VERSE" down "$e" >/dev/null; done

echo "== (a) boot to first command, $ACCEL, median of $RUNS" >&2
hyperfine -N --runs "$RUNS" --export-json "$BENCH_TMP/a.json" \
  --prepare "$VERSE down benchvm" -n "verse up (vm)" "$VERSE up benchvm" \
  -n "bare qemu microvm + marker initramfs" "$(bare "$BENCH_TMP/marker-exit.cpio")" >&2

echo "== (b) idle VMM RSS" >&2
"$VERSE" up benchvm >/dev/null
sleep 10
vpid=$("$VERSE" ls --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["name"]=="benchvm"][0]["pid"])')
vrss=$(awk '/VmRSS/ {print $2}' /proc/"$vpid"/status)
(eval "exec $(bare "$BENCH_TMP/marker-idle.cpio")") >/dev/null 2>&1 &
bpid=$!
echo "$bpid" >"$BENCH_TMP/bare.pid"
sleep 10
brss=$(awk '/VmRSS/ {print $2}' /proc/"$bpid"/status)
kill -KILL "$bpid"
"$VERSE" down benchvm >/dev/null
echo "verse QEMU idle RSS ${vrss} kB, bare QEMU idle RSS ${brss} kB" >&2

echo "== (c) gvisor vs container start" >&2
hyperfine -N --runs "$((RUNS * 4))" --export-json "$BENCH_TMP/c.json" \
  --prepare "$VERSE down benchgv" -n "verse up (gvisor)" "$VERSE up benchgv" \
  --prepare "$VERSE down benchct" -n "verse up (container)" "$VERSE up benchct" >&2

python3 - "$BENCH_TMP/a.json" "$BENCH_TMP/c.json" "$vrss" "$brss" <<'PY'
import json, sys
a, c = (json.load(open(p))["results"] for p in sys.argv[1:3])
def row(r, base):
    m = r["median"] * 1000
    return f'| {r["command"]} | {m:.0f} | {r["min"]*1000:.0f} | {r["max"]*1000:.0f} | {m / (base["median"]*1000):.2f} |'
print("| command | median ms | min | max | ratio |\n|---|---:|---:|---:|---:|")
for r in a: print(row(r, a[1]))
for r in c: print(row(r, c[1]))
vrss, brss = int(sys.argv[3]), int(sys.argv[4])
print(f"\nidle VMM RSS: verse {vrss/1024:.1f} MiB, bare {brss/1024:.1f} MiB, ratio {vrss/brss:.2f}")
PY
