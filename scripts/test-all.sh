#!/usr/bin/env bash
# `make test`: every check, each stage run even when an earlier one failed, one
# "STAGE: N passed, N failed" line per stage and a total at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
stages=(lint sanity pytest molecule)
[ -n "${DBFIX_STAGES:-}" ] && read -r -a stages <<<"$DBFIX_STAGES"
summary=()
rc=0
for stage in "${stages[@]}"; do
  case $stage in
    lint) script=scripts/test-lint.sh ;;
    sanity) script=scripts/sanity.sh ;;
    pytest) script=scripts/test-pytest.sh ;;
    molecule) script=scripts/test-molecule.sh ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
  start=$(date +%s)
  log=$(mktemp)
  bash "$script" 2>&1 | tee "$log"
  src=${PIPESTATUS[0]}
  line=$(grep -E "^$stage: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n1)
  [ -n "$line" ] || line="$stage: 0 passed, 1 failed"
  [ "$src" -ne 0 ] && rc=1
  summary+=("$line ($(( $(date +%s) - start ))s)")
  rm -f "$log"
done
echo
echo "==== make test summary ===="
tp=0 tf=0
for l in "${summary[@]}"; do
  echo "$l"
  p=$(sed -E 's/^[a-z]+: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$l")
  f=$(sed -E 's/^[a-z]+: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$l")
  tp=$((tp + p)); tf=$((tf + f))
done
echo "total: $tp passed, $tf failed"
exit "$rc"
