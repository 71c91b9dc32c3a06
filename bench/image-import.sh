#!/usr/bin/env bash
# `podman load` vs `verse image import` of the same ~200 MiB image archive, side by side in
# one run. The image: the busybox rootfs plus 200 MiB of files (half incompressible, half
# text), made into a 2-layer image by podman (import + a COPY in a Containerfile) and saved
# with `podman save` in both formats. Each run starts from an empty store on both sides:
#
#   podman load -i F          after `podman rmi -a` (vfs storage, as in docs/images.md)
#   verse image import x F    after `verse image rm x; verse image gc`
#
#   sudo bench/image-import.sh      (RUNS=5 by default; VERSE_BIN=target/release/verse)
#
# Both hash every byte (podman: sha256 of each layer; verse: BLAKE3 of each file and sha256
# of each blob) and write every file into their store.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need podman podman
RUNS=${RUNS:-5}
OUT=${OUT:-$BENCH_TMP/out}
MIB=${MIB:-200}
mkdir -p "$OUT"
start_daemon

# Podman's own storage and settings (see docs/images.md, "Running podman as root").
cat >"$BENCH_TMP/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
cat >"$BENCH_TMP/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$BENCH_TMP/podman/storage"
runroot = "$BENCH_TMP/podman/run"
EOF
export CONTAINERS_CONF=$BENCH_TMP/containers.conf CONTAINERS_STORAGE_CONF=$BENCH_TMP/storage.conf
export TMPDIR=$BENCH_TMP

# The image.
base=$BENCH_TMP/base
cp -a "$ROOTFS" "$base" && chmod 755 "$base"
tar -C "$base" -cf "$BENCH_TMP/base.tar" .
podman import -q "$BENCH_TMP/base.tar" localhost/bench-base:1 >/dev/null
ctx=$BENCH_TMP/ctx
mkdir -p "$ctx/data"
half=$((MIB / 2))
for i in $(seq 1 "$half"); do
  head -c 1048576 /dev/urandom >"$ctx/data/random-$i.bin"
  seq 1 150000 | head -c 1048576 >"$ctx/data/text-$i.txt"
done
printf 'FROM localhost/bench-base:1\nCOPY data /data\nCMD ["/bin/sh"]\n' >"$ctx/Containerfile"
podman build -q --pull=never -t localhost/bench:1 "$ctx" >/dev/null
rm -rf "$ctx"
podman save -q --format docker-archive -o "$BENCH_TMP/bench.docker.tar" localhost/bench:1
podman save -q --format oci-archive -o "$BENCH_TMP/bench.oci.tar" localhost/bench:1
podman rmi -a -f >/dev/null
echo "archives: $(du -h "$BENCH_TMP/bench.docker.tar" | cut -f1) docker-archive (plain layers)," \
  "$(du -h "$BENCH_TMP/bench.oci.tar" | cut -f1) oci-archive (gzip layers)" >&2

for fmt in docker oci; do
  F=$BENCH_TMP/bench.$fmt.tar
  hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$OUT/import-$fmt.json" \
    --prepare "podman rmi -a -f" \
    -n "podman load ($fmt-archive)" "podman load -q -i $F" \
    --prepare "sh -c '$VERSE image rm x >/dev/null 2>&1; $VERSE image gc >/dev/null'" \
    -n "verse image import ($fmt-archive)" "$VERSE image import x $F" >&2
done
python3 - "$OUT" <<'PY'
import json, os, sys
print("| archive | podman load, median ms | verse image import, median ms | ratio |")
print("|---|---:|---:|---:|")
for fmt in ("docker", "oci"):
    r = json.load(open(os.path.join(sys.argv[1], f"import-{fmt}.json")))["results"]
    p, v = (x["median"] * 1000 for x in r)
    faster = "verse faster" if v < p else "verse slower"
    print(f"| {fmt}-archive | {p:.0f} | {v:.0f} | {p / v:.2f} ({faster}) |")
PY
