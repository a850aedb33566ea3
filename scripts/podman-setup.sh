#!/usr/bin/env bash
# Prepare this machine for the Molecule scenarios (rootful podman, Debian 12).
#
#  1. apt: podman, runc, catatonit (podman's --init; Debian only recommends
#     it), debootstrap (one `apt-get update`, only when something is missing).
#  2. /etc/containers/containers.conf: runc + cgroupfs + file events logger and
#     ulimits root can actually grant here (podman's defaults fail on these
#     machines: crun refuses the hybrid cgroup layout; root has no
#     CAP_SYS_RESOURCE to raise rlimits). Keys are set in place, other settings
#     in the file are kept, a second run changes nothing.
#  3. containers.podman (needed by Molecule's podman driver) taken from the
#     `ansible` wheel on PyPI, because Galaxy is not reachable. Only
#     ansible_collections/containers/podman/ is extracted, into
#     .cache/collections/.
#
# Idempotent: safe to run before every test run. Needs root for 1 and 2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
ANSIBLE_WHEEL_VERSION="${ANSIBLE_WHEEL_VERSION:-12.3.0}"
COLL_DIR="$ROOT/.cache/collections"
WHEEL_DIR="$ROOT/.cache/wheels"
CONF="${CONTAINERS_CONF:-/etc/containers/containers.conf}"

log() { printf 'podman-setup: %s\n' "$*"; }

# --- 1. packages -------------------------------------------------------------
need=()
for pkg in podman runc catatonit debootstrap; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        need+=("$pkg")
    fi
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing packages ${need[*]} and not root: run as root or install them with apt-get" >&2
        exit 1
    fi
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    log "podman, runc, catatonit, debootstrap already installed"
fi

# --- 2. containers.conf ------------------------------------------------------
mkdir -p "$(dirname "$CONF")"
python3 - "$CONF" <<'PY'
"""Set TOML keys inside their [section] in containers.conf, keep everything else."""
import os
import re
import sys

path = sys.argv[1]
wanted = {
    "engine": {
        "runtime": '"runc"',
        "cgroup_manager": '"cgroupfs"',
        "events_logger": '"file"',
    },
    "containers": {
        "default_ulimits": '[\n  "nofile=20000:20000",\n  "nproc=32768:32768",\n]',
    },
}
try:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
except FileNotFoundError:
    lines = ["# Managed in part by bluegreen.dbfix scripts/podman-setup.sh (runc, cgroupfs,",
             "# file events, ulimits root can grant on this machine). Other keys are kept."]
original = list(lines)

section_re = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def key_span(lines, start, end, key):
    """Return (first, last) line index of `key = value` (value may span lines) or None."""
    key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(start, end):
        if key_re.match(lines[i]):
            value = lines[i].split("=", 1)[1]
            j = i
            if value.strip().startswith("[") and value.count("[") > value.count("]"):
                depth = value.count("[") - value.count("]")
                while depth > 0 and j + 1 < end:
                    j += 1
                    depth += lines[j].count("[") - lines[j].count("]")
            return i, j
    return None


for section, keys in wanted.items():
    # locate the section: header index and end (next header or EOF)
    head = next((i for i, ln in enumerate(lines) if (m := section_re.match(ln)) and m.group(1).strip() == section), None)
    if head is None:
        lines += ["", "[%s]" % section]
        head = len(lines) - 1
    for key, value in keys.items():
        end = next((i for i in range(head + 1, len(lines)) if section_re.match(lines[i])), len(lines))
        new = ("%s = %s" % (key, value)).split("\n")
        span = key_span(lines, head + 1, end, key)
        if span is None:
            lines[head + 1:head + 1] = new
        elif lines[span[0]:span[1] + 1] != new:
            lines[span[0]:span[1] + 1] = new

if lines != original:
    tmp = path + ".dbfix-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print("podman-setup: updated %s" % path)
else:
    print("podman-setup: %s already set" % path)
PY

# A quick proof that the engine works with these settings (no image needed).
if ! podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >/dev/null 2>&1; then
    log "podman info failed with $CONF:" >&2
    podman info >&2 || true
    exit 1
fi
log "engine: $(podman info --format '{{.Host.OCIRuntime.Name}} / {{.Host.CgroupManager}} / {{.Host.EventLogger}}')"

# --- 3. containers.podman from the ansible wheel -----------------------------
if [[ -f "$COLL_DIR/ansible_collections/containers/podman/MANIFEST.json" ]]; then
    log "containers.podman already in $COLL_DIR"
else
    mkdir -p "$WHEEL_DIR" "$COLL_DIR"
    wheel=$(find "$WHEEL_DIR" -maxdepth 1 -name "ansible-$ANSIBLE_WHEEL_VERSION-*.whl" | head -n1)
    if [[ -z "$wheel" ]]; then
        log "downloading ansible==$ANSIBLE_WHEEL_VERSION wheel (for containers.podman only)"
        "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: \
            -d "$WHEEL_DIR" "ansible==$ANSIBLE_WHEEL_VERSION"
        wheel=$(find "$WHEEL_DIR" -maxdepth 1 -name "ansible-$ANSIBLE_WHEEL_VERSION-*.whl" | head -n1)
    fi
    "$VENV/bin/python" - "$wheel" "$COLL_DIR" <<'PY'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/containers/podman/"
with zipfile.ZipFile(wheel) as zf:
    members = [n for n in zf.namelist() if n.startswith(prefix)]
    if not members:
        sys.exit("podman-setup: %s has no %s" % (wheel, prefix))
    zf.extractall(dest, members)
print("podman-setup: extracted %d files of containers.podman into %s" % (len(members), dest))
PY
fi
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
    "$COLL_DIR/ansible_collections/containers/podman/MANIFEST.json")
log "containers.podman $version ready"
