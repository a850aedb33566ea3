#!/usr/bin/env bash
# Build an execution environment (EE) holding this collection with
# ansible-builder (the venv's pinned version), FROM the Molecule image
# $DBFIX_IMAGE (Debian 12 + python3, already built by scripts/build-image.sh;
# no registry is reachable, so nothing is pulled):
#
#   ansible-galaxy collection build   -> bluegreen-dbfix-<v>.tar.gz
#   ansible-builder create + podman build
#       base:  $DBFIX_IMAGE + python3-pip from apt (Debian's python3 has no ensurepip)
#       + ansible-core / ansible-runner pinned to the venv's versions (from PyPI)
#       + the collection from the tarball (+ its meta/execution-environment.yml deps)
#   -> localhost/dbfix-ee:<hash>
#
# <hash> covers the collection's files as packed in the tarball (except docs,
# changelogs and manifests), this script,
# the base image's id and the pinned versions; when that tag exists the build is
# skipped. Prints the duration on stderr and the tag as the last line on stdout:
#
#   export DBFIX_EE_IMAGE="$(scripts/build-ee.sh)"
#
# Leaves nothing in /tmp (its build folder is removed on exit). Needs root
# (rootful podman), the venv (.venv) and $DBFIX_IMAGE present in the image store.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/build-ee.sh"
VENV="${DBFIX_VENV:-$ROOT/.venv}"
BASE="${DBFIX_IMAGE:-localhost/dbfix-node:latest}"
CA_DIR="${DBFIX_CA_DIR:-/usr/local/share/ca-certificates}"
CACHE="$ROOT/.cache"

log() { printf 'build-ee: %s\n' "$*" >&2; }

t0=$(date +%s)
if ! podman image exists "$BASE"; then
    log "base image $BASE is not in the image store: run scripts/build-image.sh first (DBFIX_IMAGE names its tag)"
    exit 2
fi
base_id="$(podman image inspect --format '{{.Id}}' "$BASE")"
core_version="$("$VENV/bin/python" -c 'import ansible.release as r; print(r.__version__)')"
runner_version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-runner"))')"

mkdir -p "$CACHE"
exec 9>"$CACHE/build-ee.lock"
flock 9

ctx="$(mktemp -d /tmp/dbfix-ee-ctx.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT

# --- the collection as users get it --------------------------------------------
# From a copy of the tree: a file edited between `build` hashing and packing it
# would give a tarball that `install` rejects.
mkdir -p "$ctx/src"
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude=./.collections \
    --exclude=node_modules --exclude=./tests --exclude=./molecule --exclude=./bench -cf - . | tar -C "$ctx/src" -xf -
"$VENV/bin/ansible-galaxy" collection build "$ctx/src" --output-path "$ctx/dist" >&2
tarball="$(cd "$ctx/dist" && ls bluegreen-dbfix-*.tar.gz)"
mkdir -p "$ctx/unpacked"
tar -xzf "$ctx/dist/$tarball" -C "$ctx/unpacked"
# What runs: everything but the docs, changelogs and the manifests (which hash
# the docs too), so a docs-only edit reuses the EE.
content_hash="$(cd "$ctx/unpacked" && find . -type f ! -path './docs/*' ! -path './changelogs/*' \
    ! -name 'README*' ! -name MANIFEST.json ! -name FILES.json -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
tag_hash="$(printf '%s\n' "$content_hash" "$(sha256sum <"$SELF")" "$base_id" "$core_version" "$runner_version" \
    | sha256sum | cut -c1-12)"
tag="localhost/dbfix-ee:$tag_hash"

if podman image exists "$tag"; then
    log "$tag exists, nothing to build ($(($(date +%s) - t0)) s)"
    echo "$tag"
    exit 0
fi

# --- EE definition ---------------------------------------------------------------
mkdir -p "$ctx/def/ca"
cp "$ctx/dist/$tarball" "$ctx/def/"
# Extra CA certificates of the build machine (an intercepting proxy's CA would
# otherwise break pip). The folder may be empty.
if [[ -d "$CA_DIR" ]]; then
    find "$CA_DIR" -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/def/ca/" \;
fi
touch "$ctx/def/ca/.keep"
cat >"$ctx/def/execution-environment.yml" <<YAML
---
version: 3
images:
  base_image:
    name: $BASE
dependencies:
  python_interpreter:
    package_system: python3
    python_path: /usr/bin/python3
  ansible_core:
    package_pip: ansible-core==$core_version
  ansible_runner:
    package_pip: ansible-runner==$runner_version
  galaxy:
    collections:
      - name: collections/$tarball
        type: file
additional_build_files:
  - src: $tarball
    dest: collections
  - src: ca
    dest: ca
additional_build_steps:
  prepend_base:
    - ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
    - COPY _build/ca/ /usr/local/share/ca-certificates/
    - RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates python3-pip && update-ca-certificates
options:
  package_manager_path: /usr/bin/apt-get
  skip_pip_install: true
  tags:
    - $tag
YAML

log "building $tag FROM $BASE (ansible-core $core_version, ansible-runner $runner_version)"
(
    cd "$ctx/def"
    "$VENV/bin/ansible-builder" build --container-runtime podman -f execution-environment.yml \
        --context "$ctx/def/context" -t "$tag" -v 2
) >&2
# The intermediate stages (galaxy, builder) stay as untagged images, as with any
# multi-stage build; they are not pruned here (a prune would also take other
# builds' layers on a shared machine).
log "built $tag in $(($(date +%s) - t0)) s"
echo "$tag"
