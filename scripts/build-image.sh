#!/usr/bin/env bash
# Build the container image the Molecule scenarios run (no registry is
# reachable, so nothing is pulled):
#
#   debootstrap --variant=minbase bookworm  ->  podman import localhost/dbfix-base:<h1>
#   tests/image/Containerfile FROM it       ->  localhost/dbfix-node:<h2>
#
# <h2> is a hash of the Containerfile, tests/app/package.json,
# tests/app/package-lock.json and this script; when that tag exists the build is
# skipped. The final tag is printed as the last line on stdout (logs go to
# stderr) and written to .cache/dbfix-image.tag, e.g.
#
#   export DBFIX_IMAGE="$(scripts/build-image.sh)"
#
# Needs root (rootful podman) and scripts/podman-setup.sh done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/build-image.sh"
CONTAINERFILE="$ROOT/tests/image/Containerfile"
APP_DIR="$ROOT/tests/app"
SUITE=bookworm
VARIANT=minbase
CA_DIR="${DBFIX_CA_DIR:-/usr/local/share/ca-certificates}"
CACHE="$ROOT/.cache"

log() { printf 'build-image: %s\n' "$*" >&2; }
short_hash() { sha256sum | cut -c1-12; }

mkdir -p "$CACHE"
# Two runs at once (two `make test`s) would both debootstrap; serialise them.
exec 9>"$CACHE/build-image.lock"
flock 9

# --- the app's package files (tests/app is the source of truth) -------------
ctx="$(mktemp -d /tmp/dbfix-image-ctx.XXXXXX)"
rootfs=""
cleanup() {
    rm -rf "$ctx"
    if [[ -n "$rootfs" ]]; then rm -rf "$rootfs"; fi
}
trap cleanup EXIT
mkdir -p "$ctx/app" "$ctx/ca"
if [[ -f "$APP_DIR/package.json" ]]; then
    cp "$APP_DIR/package.json" "$ctx/app/"
    if [[ -f "$APP_DIR/package-lock.json" ]]; then
        cp "$APP_DIR/package-lock.json" "$ctx/app/"
    else
        log "WARNING: $APP_DIR/package-lock.json missing: npm install without a lock (not reproducible)"
    fi
else
    # Placeholder until tests/app exists: the two dependencies the app uses.
    log "WARNING: $APP_DIR/package.json missing: using a placeholder (better-sqlite3@12, dotenv)"
    cat >"$ctx/app/package.json" <<'JSON'
{"name": "timetracking-placeholder", "version": "0.0.0", "private": true,
 "dependencies": {"better-sqlite3": "^12.0.0", "dotenv": "^16.0.0"}}
JSON
fi
cp "$CONTAINERFILE" "$ctx/Containerfile"

# --- tags ---------------------------------------------------------------------
base_tag="localhost/dbfix-base:$(printf '%s %s v1\n' "$SUITE" "$VARIANT" | short_hash)"
final_hash="$(cat "$ctx/Containerfile" "$ctx/app/package.json" "$SELF" \
    "$([[ -f "$ctx/app/package-lock.json" ]] && echo "$ctx/app/package-lock.json" || echo /dev/null)" | short_hash)"
final_tag="localhost/dbfix-node:$final_hash"

if podman image exists "$final_tag"; then
    log "$final_tag exists, nothing to build"
    echo "$final_tag" >"$CACHE/dbfix-image.tag"
    echo "$final_tag"
    exit 0
fi

t0=$(date +%s)

# --- base image: debootstrap + import -----------------------------------------
if podman image exists "$base_tag"; then
    log "$base_tag exists"
else
    # The host's own Debian mirror (deb822 first, then the classic format).
    mirror=""
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
    fi
    if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
        mirror="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)"
    fi
    mirror="${DBFIX_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
    rootfs="$(mktemp -d /tmp/dbfix-rootfs.XXXXXX)"
    log "debootstrap --variant=$VARIANT $SUITE from $mirror"
    if ! debootstrap --variant="$VARIANT" "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        log "debootstrap failed, last lines of $CACHE/debootstrap.log:"
        tail -n 20 "$CACHE/debootstrap.log" >&2
        exit 1
    fi
    # Same suites as the host (updates + security) so nodejs gets its fixes.
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
        rm -f "$rootfs/etc/apt/sources.list"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    log "podman import as $base_tag"
    tar -C "$rootfs" -c . | podman import --quiet - "$base_tag" >/dev/null
    rm -rf "$rootfs"
    rootfs=""
fi

# --- final image ----------------------------------------------------------------
shopt -s nullglob
certs=("$CA_DIR"/*.crt)
shopt -u nullglob
if ((${#certs[@]})); then
    cp "${certs[@]}" "$ctx/ca/"
    log "adding ${#certs[@]} CA certificate(s) from $CA_DIR"
fi
touch "$ctx/ca/.keep"

log "podman build $final_tag (FROM $base_tag); log in $CACHE/build-image.log"
# Host network for the build only: the build talks to the Debian mirror and
# the npm registry, nothing else. Scenarios never use it.
if ! podman build --network=host --build-arg "BASE=$base_tag" -t "$final_tag" \
        -f "$ctx/Containerfile" "$ctx" >"$CACHE/build-image.log" 2>&1; then
    log "podman build failed, last lines of $CACHE/build-image.log:"
    tail -n 30 "$CACHE/build-image.log" >&2
    exit 1
fi
podman image tag "$final_tag" localhost/dbfix-node:latest
# Older recipes' images: untag them (layers shared with the new one stay; an
# image a container still uses is kept).
# (No grep pipeline: on a new machine nothing matches, and under pipefail a
# grep that matches nothing would fail the whole build.)
while read -r old; do
    case $old in
        localhost/dbfix-node:latest | "$final_tag") continue ;;
        localhost/dbfix-node:*) ;;
        *) continue ;;
    esac
    if podman image rm "$old" >/dev/null 2>&1; then log "removed old image $old"; fi
done < <(podman images --format '{{.Repository}}:{{.Tag}}')
log "built $final_tag in $(($(date +%s) - t0)) s"
echo "$final_tag" >"$CACHE/dbfix-image.tag"
echo "$final_tag"
