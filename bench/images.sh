#!/usr/bin/env bash
# Verse's store vs OSTree on the same Debian bookworm minbase rootfs (the debootstrap tar the
# images e2e test caches in .cache/debootstrap/), side by side in one run:
#
#   (a) import/commit of the rootfs tar into an empty store/repo
#       verse image import deb DEB.tar          vs  ostree commit --tree=tar=DEB.tar (bare repo)
#   (b) checkout/materialise of it into a directory
#       the checkout verse makes at env start   vs  ostree checkout (hardlinks)
#   (c) disk used by 10 images sharing the base (each adds one small file of its own)
#   (d) the cost of verification at env start: quick check of every layer of a 3-layer
#       Debian image, from the daemon's own timing, next to the whole `verse up`.
#
#   sudo bench/images.sh           (RUNS=10 by default; DEB=path/to/debootstrap.tar)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need ostree ostree
RUNS=${RUNS:-10}
DEB=${DEB:-$REPO/.cache/debootstrap/debootstrap-bookworm-$(dpkg --print-architecture).tar}
[ -f "$DEB" ] || { echo "no $DEB: run the images e2e test once (it caches it), or set DEB" >&2; exit 1; }
OUT=${OUT:-$BENCH_TMP/out}
mkdir -p "$OUT"
start_daemon
STORE=$VERSE_ROOT/var/lib/verse/store
REPO_O=$BENCH_TMP/ostree
# OSTree cannot commit device nodes ("Unsupported file type"): both get the rootfs without
# the /dev nodes debootstrap made (the directory stays; envs get their own /dev anyway).
tar tvf "$DEB" | awk '$1 ~ /^[cb]/ {print $NF}' >"$BENCH_TMP/devs"
cp "$DEB" "$BENCH_TMP/deb.tar"
[ -s "$BENCH_TMP/devs" ] && tar --delete -f "$BENCH_TMP/deb.tar" -T "$BENCH_TMP/devs"
DEB=$BENCH_TMP/deb.tar
echo "rootfs: $DEB ($(du -h "$DEB" | cut -f1), $(tar tf "$DEB" | wc -l) entries)" >&2

# (a) import / commit into an empty store / repo.
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$OUT/commit.json" \
  --prepare "sh -c '$VERSE image rm deb >/dev/null 2>&1; $VERSE image gc >/dev/null'" \
  -n "verse image import" "$VERSE image import deb $DEB" \
  --prepare "sh -c 'rm -rf $REPO_O && ostree init --repo=$REPO_O --mode=bare'" \
  -n "ostree commit" "ostree commit --repo=$REPO_O --branch=deb --tree=tar=$DEB --no-xattrs" >&2

# (b) checkout. Verse makes a layer's checkout at env start; measured here as the
# difference between an env start with the checkout removed and one with it present, and
# the daemon's own timing of that step. OSTree: `ostree checkout` (hardlinks from a bare repo).
cat >"$BENCH_TMP/spec.toml" <<EOF
[env.d]
image = "deb"
command = ["/bin/true"]
EOF
"$VERSE" image import deb "$DEB" >/dev/null
rm -rf "$REPO_O" && ostree init --repo="$REPO_O" --mode=bare
ostree commit --repo="$REPO_O" --branch=deb --tree=tar="$DEB" --no-xattrs >/dev/null
ROOT_HASH=$("$VERSE" image ls --json | python3 -c 'import json,sys; print([i["root"] for i in json.load(sys.stdin) if i["name"]=="deb"][0])')
# "fresh checkout": the layer's checkout removed through Verse (image rm + gc) and the image
# re-imported, while another image (`keep`, the same files plus one) keeps the pool of
# shifted inodes: the common case of a new image or layer over files Verse already holds.
# "checkout deleted outside Verse": rm -rf of the checkout behind the store's back, which
# moves the pool inodes' ctimes, so every pool inode is re-hashed before it is trusted again.
mkdir -p "$BENCH_TMP/keep/etc" && echo keep >"$BENCH_TMP/keep/etc/verse-keep"
cp "$DEB" "$BENCH_TMP/keep.tar" && tar -rf "$BENCH_TMP/keep.tar" -C "$BENCH_TMP/keep" etc/verse-keep
"$VERSE" image import keep "$BENCH_TMP/keep.tar" >/dev/null
"$VERSE" run --rm keep -- /bin/true
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$OUT/checkout.json" \
  --prepare "sh -c '$VERSE image rm deb >/dev/null && $VERSE image gc >/dev/null && $VERSE image import deb $DEB >/dev/null'" \
  -n "verse run (fresh checkout)" "$VERSE run --rm deb -- /bin/true" \
  --prepare "sh -c 'rm -rf $STORE/checkouts/$ROOT_HASH-*'" \
  -n "verse run (checkout deleted outside Verse)" "$VERSE run --rm deb -- /bin/true" \
  --prepare "true" \
  -n "verse run (checkout present)" "$VERSE run --rm deb -- /bin/true" \
  --prepare "rm -rf $BENCH_TMP/co" \
  -n "ostree checkout" "ostree checkout --repo=$REPO_O deb $BENCH_TMP/co" >&2

# (c) 10 images sharing the base, each with one file of its own.
rm -rf "$REPO_O" && ostree init --repo="$REPO_O" --mode=bare
"$VERSE" image gc >/dev/null
{
  for i in $(seq 1 10); do
    printf '[image.app%s]\nbase = "deb"\nfiles = { "/etc/app%s" = "image %s" }\n\n' "$i" "$i" "$i"
  done
} >"$BENCH_TMP/ten.toml"
"$VERSE" image build -f "$BENCH_TMP/ten.toml" >/dev/null
for i in $(seq 1 10); do
  mkdir -p "$BENCH_TMP/extra$i/etc" && echo "image $i" >"$BENCH_TMP/extra$i/etc/app$i"
  ostree commit --repo="$REPO_O" --branch="app$i" --tree=tar="$DEB" --tree=dir="$BENCH_TMP/extra$i" --no-xattrs >/dev/null
done
# Checkouts made by the build (files steps read the layer below) are not content: count the
# content (objects, trees, layers, manifests) as OSTree's repo holds only content.
verse_kb=$(du -sk "$STORE/objects" "$STORE/trees" "$STORE/layers" "$STORE/manifests" | awk '{s+=$1} END {print s}')
ostree_kb=$(du -sk "$REPO_O" | cut -f1)
one_kb=$(du -sk --apparent-size "$DEB" | cut -f1)

# (d) verification at start: a 3-layer Debian image (base, a files layer, a run layer),
# checkouts present, so each start quick-checks every layer.
cat >"$BENCH_TMP/three.toml" <<'EOF'
[image.three]
base = "deb"
files = { "/etc/motd" = "three layers" }
run = ["echo built > /built"]

[env.t]
image = "three"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
stop_timeout = "100ms"
EOF
"$VERSE" apply "$BENCH_TMP/three.toml" >&2
"$VERSE" down t >&2
before=$(wc -l <"$BENCH_TMP/daemon.log")
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$OUT/verify.json" --show-output \
  --prepare "sh -c '$VERSE down t >/dev/null 2>&1 || true'" \
  -n "verse up (3-layer Debian image, quick check of each layer)" "$VERSE up t" >&2
verify_us=$(tail -n +"$((before + 1))" "$BENCH_TMP/daemon.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'micros=[0-9]*' | cut -d= -f2 | sort -n |
  awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
files=$(tar tf "$DEB" | wc -l)

python3 - "$OUT" "$verse_kb" "$ostree_kb" "$one_kb" "$verify_us" "$files" <<'EOF'
import json, sys
out, verse_kb, ostree_kb, one_kb, verify_us, files = sys.argv[1:]
def med(name):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(f"{out}/{name}.json"))["results"]}
c, k, v = med("commit"), med("checkout"), med("verify")
vi, oc = c["verse image import"], c["ostree commit"]
fresh, present, oco = k["verse run (fresh checkout)"], k["verse run (checkout present)"], k["ostree checkout"]
outside = k["verse run (checkout deleted outside Verse)"]
print("\n| question | verse | ostree | ratio (ostree/verse) |")
print("|---|---|---|---|")
print(f"| (a) import/commit of the rootfs tar, ms | {vi:.0f} | {oc:.0f} | {oc/vi:.2f}x |")
print(f"| (b) checkout, ms (verse: fresh minus present env start) | {fresh-present:.0f} | {oco:.0f} | {oco/(fresh-present):.2f}x |")
print(f"| (b') verse env start with a fresh checkout / with it present, ms | {fresh:.0f} / {present:.0f} | | |")
print(f"| (b'') checkout after it was deleted outside Verse (every pool inode re-hashed), ms | {outside-present:.0f} | {oco:.0f} | {oco/(outside-present):.2f}x |")
print(f"| (c) disk for 10 images sharing the base, MiB (one rootfs tar: {int(one_kb)/1024:.0f}) | {int(verse_kb)/1024:.0f} | {int(ostree_kb)/1024:.0f} | {int(ostree_kb)/int(verse_kb):.2f}x |")
up = list(v.values())[0]
print(f"| (d) quick check of 3 Debian layers ({files} entries in the base) at start, ms | {int(float(verify_us))/1000:.1f} | | |")
print(f"| (d') whole `verse up` of that env, ms | {up:.0f} | | |")
EOF
