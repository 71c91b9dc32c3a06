#!/usr/bin/env bash
# Installs a CRIU that works on this kernel into a prefix Verse owns, without
# touching the host's libc or its installed packages.
#
# Why: bookworm's criu 3.17 fails on kernels >= 6.13 (the vDSO bounds
# changed); Debian trixie's criu 4.1 works. We download trixie's criu and
# the libraries it links through a private apt configuration (its own sources
# list, state and cache; the host's apt state is never touched) and unpack
# them with dpkg-deb -x into $PREFIX.
#
# trixie's criu and its libraries need glibc 2.38; bookworm has 2.36. The
# host's libc is NOT upgraded: trixie's libc6 is unpacked into $PREFIX too and
# criu alone runs under that private copy, started through its own dynamic
# loader (`ld-linux-x86-64.so.2 --library-path ...`), so no LD_LIBRARY_PATH
# leaks to the programs criu starts. The script checks that every library
# resolves inside the prefix.
#
# Usage: scripts/install-criu.sh [PREFIX]   (default /usr/local/lib/verse/criu)
# Prints the path of the wrapper (PREFIX/criu) on success.
set -euo pipefail
prefix="${1:-/usr/local/lib/verse/criu}"
if [ -x "$prefix/criu" ] && "$prefix/criu" --version >/dev/null 2>&1; then
  echo "$prefix/criu"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/preferences.d" "$work/state/lists/partial" "$work/cache/archives/partial" "$work/debs"
cat >"$work/etc/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(
  -o Dir::Etc::sourcelist=/dev/null
  -o Dir::Etc::sourceparts="$work/etc"
  -o Dir::Etc::preferencesparts="$work/etc/preferences.d"
  -o Dir::State::Lists="$work/state/lists"
  -o Dir::Cache="$work/cache"
  -o Dir::State::status=/dev/null
  -o APT::Get::List-Cleanup=0
  -o Debug::NoLocking=1
)
apt-get "${apt_opts[@]}" update -qq >&2
# criu and the shared libraries it links that bookworm's versions may not
# satisfy. libc6 is deliberately not among them: the unpacked binary must run
# on the host's glibc, which ldd checks below.
pkgs=(criu libc6 libprotobuf-c1 libnl-3-200 libnet1 libnftables1 libgnutls30t64 libbsd0 libuuid1 libcap2 libnettle8t64 libhogweed6t64 libtasn1-6 libunistring5 libidn2-0 libp11-kit0 libgmp10 libffi8 libmd0 libjansson4 libxtables12 libmnl0 libnftnl11 libedit2)
cd "$work/debs"
for p in "${pkgs[@]}"; do
  apt-get "${apt_opts[@]}" download "$p" >&2 2>/dev/null || echo "note: $p not downloadable from trixie; relying on the host's" >&2
done
rm -rf "$prefix.new"
mkdir -p "$prefix.new"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$prefix.new/root"
done
libdirs="$prefix/root/lib/x86_64-linux-gnu:$prefix/root/usr/lib/x86_64-linux-gnu"
loader="$prefix/root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -e "$prefix.new/root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] || loader="$prefix/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
cat >"$prefix.new/criu" <<WRAP
#!/bin/sh
# CRIU 4.x from Debian trixie, unpacked by scripts/install-criu.sh. It runs
# under a private copy of trixie's glibc through that copy's own loader; the
# host's libc is untouched and nothing leaks into programs criu starts.
exec "$loader" --library-path "$libdirs" "$prefix/root/usr/sbin/criu" "\$@"
WRAP
chmod 755 "$prefix.new/criu"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
[ -e "$loader" ] || { echo "no dynamic loader in trixie's libc6 at $loader" >&2; exit 1; }
if "$loader" --library-path "$libdirs" --list "$prefix/root/usr/sbin/criu" | grep -q 'not found'; then
  echo "criu from trixie has unresolved libraries:" >&2
  "$loader" --library-path "$libdirs" --list "$prefix/root/usr/sbin/criu" | grep 'not found' >&2
  exit 1
fi
"$prefix/criu" --version >&2
echo "$prefix/criu"
