#!/usr/bin/env bash
# `make test`: every check, each stage run even when an earlier one failed, one
#   STAGE: N passed, N failed, N skipped (S s)
# line per stage, every skipped test named, and a total at the end. The last
# stage, `leftovers`, fails when the run left a pm2 daemon, an app process, a
# container or a temp folder behind (scripts/leftovers.py), pass or fail.
# Under CI=true a test skipped for a missing tool is a failure (tests/conftest.py)
# and Molecule runs against an empty container store (scripts/test-molecule.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
stages=(lint sanity pytest molecule)
[ -n "${DBFIX_STAGES:-}" ] && read -r -a stages <<<"$DBFIX_STAGES"
mkdir -p .cache
snap=.cache/leftovers-snapshot.json
.venv/bin/python scripts/leftovers.py snapshot "$snap"
summary=()
skips=()
rc=0
t_all=$(date +%s)
run_stage() {  # run_stage NAME COMMAND...: tee its output, keep its summary line and skips
  local stage=$1; shift
  local start log src line
  start=$(date +%s)
  log=$(mktemp "$here/.cache/stage-$stage.XXXXXX")
  "$@" 2>&1 | tee "$log"
  src=${PIPESTATUS[0]}
  line=$(grep -E "^$stage: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n1)
  [ -n "$line" ] || line="$stage: 0 passed, 1 failed"
  [[ $line == *skipped* ]] || line="$line, 0 skipped"
  if [ "$src" -ne 0 ]; then
    rc=1
    # A stage that failed must not read as passed, whatever its counter said.
    if [[ $line =~ ^$stage:\ [0-9]+\ passed,\ 0\ failed ]]; then line=${line/ 0 failed/ 1 failed}; fi
  fi
  while IFS= read -r s; do skips+=("$stage: ${s#skip: }"); done < <(grep -E '^skip: ' "$log")
  summary+=("$line ($(( $(date +%s) - start )) s)")
  echo "== $line ($(( $(date +%s) - start )) s)"
  rm -f "$log"
}
for stage in "${stages[@]}"; do
  case $stage in
    lint) run_stage lint bash scripts/test-lint.sh ;;
    sanity) run_stage sanity bash scripts/sanity.sh ;;
    pytest) run_stage pytest bash scripts/test-pytest.sh ;;
    molecule) run_stage molecule bash scripts/test-molecule.sh ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
run_stage leftovers .venv/bin/python scripts/leftovers.py check "$snap"
rm -f "$snap"
echo
echo "==== make test summary ===="
tp=0 tf=0 ts=0
for l in "${summary[@]}"; do
  echo "$l"
  [[ $l =~ ^[a-z]+:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]] || continue
  tp=$((tp + BASH_REMATCH[1])); tf=$((tf + BASH_REMATCH[2])); ts=$((ts + BASH_REMATCH[3]))
done
if ((${#skips[@]})); then
  echo "skipped tests:"
  printf '  %s\n' "${skips[@]}"
fi
echo "wall time: $(( $(date +%s) - t_all )) s"
echo "total: $tp passed, $tf failed, $ts skipped"
exit "$rc"
