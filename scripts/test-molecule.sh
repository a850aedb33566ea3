#!/usr/bin/env bash
# Stage `molecule` of `make test`: podman setup, the image, then
# `molecule test -s NAME` for every scenario under molecule/ (a folder with a
# molecule.yml). A failing scenario does not stop the others. Ends with exactly
# one summary line
#
#   molecule: N passed, N failed, 0 skipped
#
# and exits non-zero when any scenario failed (or setup/build did).
# Scenarios can be picked: scripts/test-molecule.sh default rollback
# Per-scenario logs and timings: .cache/molecule-logs/
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
LOGS="$ROOT/.cache/molecule-logs"
cd "$ROOT" || exit 1
mkdir -p "$LOGS"

export PATH="$VENV/bin:$PATH"
# This checkout first (the committed .collections symlink, so the code under
# test is the working tree), containers.podman from the ansible wheel, then ~/.ansible.
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections:$ROOT/.cache/collections:$HOME/.ansible/collections"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"
export MOLECULE_NO_LOG="${MOLECULE_NO_LOG:-false}"

summary() {
    echo "molecule: $1 passed, $2 failed, 0 skipped"
}

# The platforms are named blue and green, which are also the container names:
# two runs at once (two checkouts, two `make test`s) would fight over them.
exec 8>"$ROOT/.cache/test-molecule.lock"
if ! flock -n 8; then
    echo "test-molecule: another Molecule run holds $ROOT/.cache/test-molecule.lock, waiting" >&2
    flock 8
fi

# Under CI=true the image is built from nothing on every run, exactly as on a
# new machine: podman's storage (graphroot/runroot) is a folder made empty for
# this run and removed afterwards, so no image left on a used machine can help.
# DBFIX_EMPTY_STORE=1 asks for the same outside CI.
store=""
drop_store() {
    [[ -n "$store" && -d "$store" ]] || return 0
    podman rm -a -f -t 0 >/dev/null 2>&1 || true
    podman rmi -a -f >/dev/null 2>&1 || true
    # Overlay mounts left by an interrupted run would keep files busy.
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done \
        < <(awk -v s="$store" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r)
    rm -rf "$store"
    echo "test-molecule: removed the run's container store $store"
}
if [[ "${CI:-}" == true || "${DBFIX_EMPTY_STORE:-}" == 1 ]]; then
    store=$(mktemp -d /tmp/dbfix-ci-store.XXXXXX)
    mkdir -p "$store/graph" "$store/run"
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
        "$store/graph" "$store/run" >"$store/storage.conf"
    export CONTAINERS_STORAGE_CONF="$store/storage.conf"
    trap drop_store EXIT
    echo "test-molecule: CI run: empty container store $store (image built from nothing)"
fi

if ! "$ROOT/scripts/podman-setup.sh"; then
    echo "test-molecule: scripts/podman-setup.sh failed" >&2
    summary 0 1
    exit 1
fi

t0=$(date +%s)
if ! DBFIX_IMAGE="$("$ROOT/scripts/build-image.sh" | tail -n 1)" || [[ -z "$DBFIX_IMAGE" ]]; then
    echo "test-molecule: scripts/build-image.sh failed" >&2
    summary 0 1
    exit 1
fi
export DBFIX_IMAGE
echo "test-molecule: image $DBFIX_IMAGE ($(($(date +%s) - t0)) s)"

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
    for f in molecule/*/molecule.yml; do
        [[ -f "$f" ]] || continue
        scenarios+=("$(basename "$(dirname "$f")")")
    done
fi

passed=0
failed=0
failed_names=()
for s in "${scenarios[@]}"; do
    start=$(date +%s)
    echo "test-molecule: === scenario $s ==="
    if molecule test -s "$s" 2>&1 | tee "$LOGS/$s.log"; then
        rc=0
    else
        rc=1
    fi
    # pipefail carries molecule's exit code through tee.
    secs=$(($(date +%s) - start))
    echo "$s rc=$rc seconds=$secs" >>"$LOGS/timings.txt"
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "test-molecule: scenario $s passed in ${secs} s"
    else
        failed=$((failed + 1))
        failed_names+=("$s")
        echo "test-molecule: scenario $s FAILED in ${secs} s (log: $LOGS/$s.log)"
        # Leave no containers behind for the next scenario (same names).
        molecule destroy -s "$s" >>"$LOGS/$s.log" 2>&1 || true
    fi
    # The host folder a scenario bind-mounts as the pair's shared DB folder
    # (its dependency step makes it, `molecule destroy` too, so only after it):
    # nothing of a run may stay in /tmp.
    rm -rf "/tmp/dbfix-molecule-$s"
done

if ((failed)); then
    echo "test-molecule: failed: ${failed_names[*]}" >&2
fi
summary "$passed" "$failed"
((failed == 0))
