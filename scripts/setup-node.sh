#!/usr/bin/env bash
# Node.js dependencies from the committed lock files: real pm2 and the dotenv
# oracles (tests/tools), the test app's better-sqlite3 + dotenv (tests/app).
# Skipped when node_modules already matches the lock file.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# better-sqlite3 compiles against the Node headers; node-gyp would otherwise try
# to download them from a host these machines cannot reach.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
  export npm_config_nodedir=/usr
fi
for dir in tests/tools tests/app; do
  d="$here/$dir"
  [ -f "$d/package.json" ] || continue
  stamp="$d/node_modules/.lock.sha256"
  want=$(cat "$d/package.json" "$d/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    continue
  fi
  echo "setup-node: npm ci in $dir"
  (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
done
