#!/usr/bin/env bash
# Builds a minimal root filesystem from Debian's busybox-static, for tests,
# benchmarks and the bundled example. Cached: a second call returns at once.
#
#   scripts/busybox-rootfs.sh [DEST]     (default: .cache/busybox-rootfs)
#
# Prints the path of the finished rootfs directory. A tarball of the same tree
# is written next to it (DEST.tar) for the tar import path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$here/.cache/busybox-rootfs}
bb=/usr/bin/busybox
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  echo "installing busybox-static (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2
fi
mkdir -p "$(dirname "$dest")"
# The stamp lives beside the tree, not in it, so the tree is exactly the rootfs.
want=$(cat "$bb" "$0" | sha256sum | cut -c1-16)
# Tests call this concurrently: one builds, the others wait and reuse.
exec 9>"$dest.lock"
flock 9
if [ -d "$dest" ] && [ "$(cat "$dest.stamp" 2>/dev/null)" = "$want" ]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d "${dest}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,home,var/log,run}
chmod 1777 "$tmp/tmp"
chmod 700 "$tmp/root"
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$tmp/$(dirname "$applet")"
  ln -sf /bin/busybox "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
user:x:1000:
nogroup:x:65534:
G
mkdir -p "$tmp/home/user" && chown 1000:1000 "$tmp/home/user"
echo busybox > "$tmp/etc/hostname"
echo "Welcome to a Verse environment (busybox)." > "$tmp/etc/motd"
rm -rf "$dest" "$dest.tar" "$dest.stamp"
mv "$tmp" "$dest"
trap - EXIT
tar -C "$dest" -cf "$dest.tar" .
echo "$want" > "$dest.stamp"
echo "$dest"
