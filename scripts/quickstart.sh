#!/usr/bin/env bash
# One command from a fresh Debian machine (as root) to a running Verse:
# installs what it needs, builds verse, starts the daemon, imports the bundled
# busybox image, applies examples/quickstart.toml and runs a command inside.
#
#   sudo ./scripts/quickstart.sh [--desktop]
#
# --desktop also builds a Debian desktop image (debootstrap and apt-get: a few
# minutes and about 600 MB the first time, cached after), applies
# examples/quickstart-desktop.toml instead, and ends with the URL of the web UI
# showing the env "writer"'s desktop.
set -euo pipefail
desktop=false
for arg in "$@"; do
  case "$arg" in
    --desktop) desktop=true ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $arg (known: --desktop)" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "quickstart: run as root (Verse uses namespaces, cgroups and mounts): sudo $0" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "quickstart: no Rust toolchain found; install one with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

say "installing system packages"
"$here/scripts/install-deps.sh"

say "building the web UI (npm)"
"$here/scripts/install-deps.sh" --web
"$here/scripts/web-build.sh"

say "building verse (release)"
cargo build --release -p verse-cli
install -m 0755 target/release/verse /usr/local/bin/verse

say "starting the daemon (log: /var/log/verse.log)"
pidfile="${VERSE_ROOT:-/}/run/verse/verse.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill "$(cat "$pidfile")"   # envs keep running; the new daemon reattaches to them
  sleep 0.5
fi
# Its own session: the daemon outlives the shell that started it.
setsid -f /usr/local/bin/verse daemon >>/var/log/verse.log 2>&1 </dev/null
for _ in $(seq 100); do
  verse ls >/dev/null 2>&1 && break
  sleep 0.1
done

say "importing the busybox image"
rootfs=$("$here/scripts/busybox-rootfs.sh")
verse image import busybox "$rootfs"

spec=examples/quickstart.toml
if $desktop; then
  say "building the desktop image (debootstrap; cached after the first time)"
  desktop_rootfs=$("$here/scripts/desktop-rootfs.sh")
  verse image import desktop "$desktop_rootfs"
  spec=examples/quickstart-desktop.toml
fi

say "applying $spec"
verse apply "$spec"
verse ls

say "running a command inside the env 'novel'"
verse exec novel -- /bin/sh -c 'echo "$GREETING, from $(hostname) (pid 1 here is: $(cat /proc/1/comm))"'

cat <<'MSG'

Verse is running. Next:
  verse shell novel            an interactive shell inside the env
  verse run --rm busybox -- uname -a
  verse logs scratch           the console of the other env
  verse doctor                 what this host can do
MSG

say "the web UI"
url=$(verse web)
if $desktop; then
  # The fragment opens the env's page, which shows its desktop.
  echo "  ${url}#/env/writer    (the writer's desktop; open it in a browser on this machine)"
else
  echo "  $url    (open it in a browser on this machine; see README: Desktops in the browser)"
  echo "  (./scripts/quickstart.sh --desktop adds an example desktop)"
fi
