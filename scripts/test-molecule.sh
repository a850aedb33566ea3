#!/usr/bin/env bash
# Stage `molecule` of `make test`: podman setup, the image, then
# `molecule test -s NAME` for every scenario under molecule/ (a folder with a
# molecule.yml), in two lanes (see run_lane). A failing scenario does not stop
# the others. Ends with exactly
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

# One scenario: molecule test, its log and timing, a destroy after a failure,
# then its shared host folder removed. Writes "NAME rc" to the lane's result file.
run_scenario() {
    local s=$1 results=$2 start rc secs
    start=$(date +%s)
    echo "test-molecule: === scenario $s ==="
    if molecule test -s "$s" >"$LOGS/$s.log" 2>&1; then
        rc=0
    else
        rc=1
    fi
    secs=$(($(date +%s) - start))
    echo "$s rc=$rc seconds=$secs" >>"$LOGS/timings.txt"
    if ((rc == 0)); then
        echo "test-molecule: scenario $s passed in ${secs} s"
    else
        echo "test-molecule: scenario $s FAILED in ${secs} s (log: $LOGS/$s.log); its last lines:"
        tail -n 150 "$LOGS/$s.log" | sed "s/^/  [$s] /"
        # The lines that name the failure, repeated at the end of the stage (CI keeps only the tail of a run).
        { echo "$s: failure lines of $LOGS/$s.log (fatal, assert, error; last 12):"
          grep -nE 'fatal: |FAILED!|failed=[1-9]|Assertion|^E  |CRITICAL|ERROR' "$LOGS/$s.log" \
            | grep -v '\.\.\.ignoring' | tail -n 12 | cut -c1-400 | sed 's/^/    /'; } >>"$digest"
        # Leave no containers behind for the next scenario (same names).
        molecule destroy -s "$s" >>"$LOGS/$s.log" 2>&1 || true
    fi
    # The host folder a scenario bind-mounts as the pair's shared DB folder
    # (its dependency step makes it, `molecule destroy` too, so only after it):
    # nothing of a run may stay in /tmp.
    rm -rf "/tmp/dbfix-molecule-$s"
    echo "$s $rc" >>"$results"
}

# Two lanes at once: the scenarios whose containers are called blue/green
# (they share those names, so one after the other), and the scenarios with
# their own container names, ports and folders (promote-*, ssh-*: host
# networking, own loopback ports), which run beside them. On 2 cores this
# cuts the stage by about a third; every scenario still runs exactly once.
lane_of() {
    if grep -Eq '^[[:space:]]*-[[:space:]]*name:[[:space:]]*(blue|green)[[:space:]]*$' "molecule/$1/molecule.yml"; then
        echo a
    else
        echo b
    fi
}
lane_a=()
lane_b=()
for s in "${scenarios[@]}"; do
    if [[ ! -f "molecule/$s/molecule.yml" ]]; then
        echo "test-molecule: no scenario $s (molecule/$s/molecule.yml)" >&2
        summary 0 1
        exit 1
    fi
    if [[ "$(lane_of "$s")" == a || "${DBFIX_MOLECULE_LANES:-2}" == 1 ]]; then lane_a+=("$s"); else lane_b+=("$s"); fi
done
results=$(mktemp "$LOGS/results.XXXXXX")
digest=$(mktemp "$LOGS/digest.XXXXXX")
run_lane() {
    local s
    for s in "$@"; do run_scenario "$s" "$results"; done
}
bg=""
if ((${#lane_b[@]})); then
    echo "test-molecule: beside ${lane_a[*]:-nothing}: ${lane_b[*]}"
    run_lane "${lane_b[@]}" &
    bg=$!
fi
run_lane "${lane_a[@]}"
[[ -n "$bg" ]] && wait "$bg"

passed=0
failed=0
failed_names=()
while read -r s rc; do
    if ((rc == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$s"); fi
done <"$results"
rm -f "$results"
# A scenario that never reported (its lane died) counts as failed.
if ((passed + failed != ${#scenarios[@]})); then
    failed=$((${#scenarios[@]} - passed))
    failed_names+=("(not reported)")
fi

if ((failed)); then
    cat "$digest"
    echo "test-molecule: failed: ${failed_names[*]}" >&2
fi
rm -f "$digest"
summary "$passed" "$failed"
((failed == 0))
