#!/usr/bin/env bash
# System packages the tests need, from Debian. Installs only what is missing, so
# a machine that already has everything is not touched (and apt is not updated).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have podman || need+=(podman)
have runc || need+=(runc)
have debootstrap || need+=(debootstrap)
have sqlite3 || need+=(sqlite3)
have shellcheck || need+=(shellcheck)
have curl || need+=(curl)
have node || need+=(nodejs)
have npm || need+=(npm)
have make || need+=(make)
have g++ || need+=(g++)
if ((${#need[@]})); then
  echo "setup-system: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup-system: ok"
