#!/usr/bin/env bash
# Unit and integration tests (real SQLite files, real pm2, real Node). Prints
#   pytest: N passed, N failed, N skipped
# and one "skip: TEST - REASON" line per skipped test. Under CI=true a skip is a
# failure (tests/conftest.py), so a broken environment cannot read as green.
# Every temp folder of the run lives under one base folder removed at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
export PATH="$here/.venv/bin:$here/tests/tools/node_modules/.bin:$PATH"
mkdir -p "$here/.cache"
log=$(mktemp "$here/.cache/pytest-log.XXXXXX")
base=$(mktemp -d /tmp/dbfix-pytest.XXXXXX)
chmod 755 "$base"  # tests hand folders to a second, unprivileged user
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { rm -rf "$base" "$log"; }
trap cleanup EXIT
# Longest files first, then the other integration files, then the many short unit files that fill the
# workers at the end. xdist (--dist loadfile) hands out files in this order only with
# --no-loadscope-reorder: by default it sorts them by their number of tests, which put the long estate
# files (1 to 3 tests each) after every unit file, so they started last and set the stage's length.
# (A worker is handed its next file while 2 or fewer of its tests are still queued, so a worker on a
# one-test file already holds its next one; with the figures below a simulation of xdist's scheduler
# found no order more than a minute better than longest first.)
# Seconds per file, 4 workers on 2 cores under load (the fault files: measured 2026-11-30 with a load average
# of 15, set-up included); keep it up to date with the --durations table when a file grows.
LONG=(
  tests/integration/test_fault_injection.py          # ~1310: estate 430, locks 343, disk 66, app 192, pm2 279
  tests/integration/test_fault_injection_phase2.py   # ~1270: estate 425, the phase-2 kill sweep 843
  tests/integration/test_fault_injection_rollback.py # ~1170: estate 558, the rollback kill sweep 606
  tests/integration/test_roles_local.py              # ~1000: site 464, rollback 511
  tests/integration/test_monitor_role.py             # ~850: cron 815
  tests/integration/test_foreign_app.py              # ~750
  tests/integration/test_promote.py                  # ~520
  tests/integration/test_security.py                 # ~400: set-up 381
  tests/integration/test_rollback_records.py         # ~400
  tests/integration/test_galaxy_install.py           # ~290
)
if [ "$#" -eq 0 ]; then
  set -- "${LONG[@]}"
  for f in tests/integration/test_*.py; do
    case " ${LONG[*]} " in *" $f "*) ;; *) set -- "$@" "$f" ;; esac
  done
  set -- "$@" tests/unit
fi
# Parallel (pytest-xdist): the tests mostly wait on pm2, Node and ansible-playbook subprocesses, so twice
# as many workers as cores. --dist loadfile keeps a file's tests (and its module-scoped pm2 daemon) on
# one worker. DBFIX_PYTEST_WORKERS=0 runs in this process, as before.
workers=${DBFIX_PYTEST_WORKERS:-$(($(nproc) * 2))}
xdist=()
if [ "$workers" -gt 0 ]; then xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder); fi
DBFIX_SWEEP=1 python -m pytest -p no:cacheprovider -q -rfEs --durations=30 --basetemp="$base/t" "${xdist[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# With -q, pytest 9 prints "N passed in Xs" without the ==== padding.
summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$log" | tail -n1)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
skipped=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{n += $1} END {print n + 0}')
# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
if [ "$rc" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then failed=1; fi
grep -E '^SKIPPED ' "$log" | sed -E 's/^SKIPPED \[[0-9]+\] /skip: /'
echo "pytest: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit "$rc"
