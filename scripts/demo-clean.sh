#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# make demo-clean: stop the demo's own pm2 daemon (PM2_HOME=demo/pm2 only,
# never the user's ~/.pm2) and the demo's own nginx (the master whose pid is in
# demo/nginx/nginx.pid and runs with prefix demo/nginx - never the system's
# nginx), then remove demo/ (or DBFIX_DEMO_DIR). A folder that
# scripts/demo.sh did not make (no .dbfix-demo marker) is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$(realpath -m "${DBFIX_DEMO_DIR:-$ROOT/demo}")"
PM2="$ROOT/tests/tools/node_modules/.bin/pm2"

if [ ! -e "$DEMO" ]; then
  echo "demo-clean: nothing to do ($DEMO does not exist)"
  exit 0
fi
if [ ! -f "$DEMO/.dbfix-demo" ] && [ -n "$(ls -A "$DEMO" 2>/dev/null)" ]; then
  echo "demo-clean: ERROR: $DEMO was not made by scripts/demo.sh (no .dbfix-demo marker); not touching it" >&2
  exit 1
fi

if [ -d "$DEMO/pm2" ]; then
  if [ -x "$PM2" ]; then
    PM2_HOME="$DEMO/pm2" "$PM2" kill >/dev/null 2>&1 || true
  fi
  # pm2 missing or its kill failed: stop the daemon by the pid file it keeps.
  if [ -f "$DEMO/pm2/pm2.pid" ]; then
    pid="$(cat "$DEMO/pm2/pm2.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  fi
fi
# The demo's nginx: only a process whose pid is in our pid file AND whose
# command line names our prefix (a pid file left by a dead nginx may name a
# pid reused by something else). QUIT (graceful), then KILL after 10 s.
ngx_pid_file="$DEMO/nginx/nginx.pid"
if [ -f "$ngx_pid_file" ]; then
  pid="$(cat "$ngx_pid_file" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
      && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DEMO/nginx"; then
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      # Its workers are its children; a KILLed master leaves them to exit on their own, so KILL them too.
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "demo-clean: stopped the demo's nginx (pid $pid)"
  fi
fi

rm -rf "$DEMO"
echo "demo-clean: stopped the demo's pm2 and removed $DEMO"
