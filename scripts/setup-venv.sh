#!/usr/bin/env bash
# Project venv from requirements-dev.txt (the one pinned list). Rebuilt when the
# list changes: its sha256 is stamped into the venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"
req="$here/requirements-dev.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup-venv: installing $req into $venv"
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -m pip check >/dev/null
echo "$want" > "$venv/.requirements.sha256"
