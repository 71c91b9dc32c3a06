#!/usr/bin/env bash
# Builds the web UI (web/ -> web/dist) with npm, only when its sources changed
# since the last build. The verse binary embeds web/dist when it is compiled
# (crates/verse-web/build.rs), so run this before `cargo build`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
web="$here/web"
if ! command -v npm >/dev/null; then
  echo "web-build: npm not found; scripts/install-deps.sh --web installs Node.js" >&2
  exit 1
fi
want=$(cd "$web" && cat package.json package-lock.json index.html vite.config.ts tsconfig.json \
  $(find src -type f | sort) | sha256sum | cut -c1-16)
if [ -f "$web/dist/index.html" ] && [ "$(cat "$web/dist/.stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
cd "$web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm ci` installs exactly the committed lockfile and never rewrites it, so a build
  # leaves the tree clean. The lockfile lists every platform's optional packages (esbuild's,
  # rollup's): a lockfile missing some is refused here ("Missing: ... from lock file")
  # instead of completed in place; regenerate it with `npm install` in web/ and commit it.
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent build >&2
echo "$want" > dist/.stamp
