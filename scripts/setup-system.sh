#!/usr/bin/env bash
# System packages the tests need, from Debian, every one by its package name
# (nothing is left to "Recommends" or to what happens to be on the machine).
# A package counts as present when dpkg lists it as installed or, for one that
# provides a command, when that command is on PATH (Node.js may come from
# another packaging of `nodejs` that carries npm and conflicts with Debian's
# `npm`). Only the rest is installed, so a machine that has everything is not
# touched (and apt is not updated). Afterwards each tool the tests call is
# looked up; a missing one fails naming its package.
set -euo pipefail
# package:command-that-proves-it (command empty = a file checked below)
wanted=(
  podman:podman runc:runc catatonit: debootstrap:debootstrap
  sqlite3:sqlite3 shellcheck:shellcheck curl:curl nodejs:node npm:npm
  make:make g++:g++ procps:pkill psmisc:fuser util-linux:findmnt
  iproute2:ss passwd:useradd cron:cron systemd:systemd-analyze
  nginx:nginx openssh-client:ssh
)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for entry in "${wanted[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  if [[ -n "$cmd" ]] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
  installed "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-system: missing Debian packages ${need[*]}; run as root or: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "setup-system: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages with a service (nginx, cron) must not start one on this machine:
  # the tests start their own on loopback. policy-rc.d (exit 101) is Debian's
  # way to say so; it is only added when absent, and removed afterwards.
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
  fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
  [[ -z "$policy" ]] || rm -f "$policy"
  ((rc == 0)) || exit "$rc"
fi
missing=()
for entry in "${wanted[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  if [[ -n "$cmd" ]] && ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$cmd (Debian package $pkg)")
  fi
done
# podman --init runs catatonit from here; without it every container fails to start.
[[ -x /usr/libexec/podman/catatonit ]] || missing+=("/usr/libexec/podman/catatonit (Debian package catatonit)")
if ((${#missing[@]})); then
  printf 'setup-system: missing after install: %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "setup-system: ok"
