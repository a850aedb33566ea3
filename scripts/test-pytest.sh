#!/usr/bin/env bash
# Unit and integration tests (real SQLite files, real pm2, real Node). Prints
# "pytest: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
export PATH="$here/.venv/bin:$here/tests/tools/node_modules/.bin:$PATH"
log=$(mktemp)
[ "$#" -gt 0 ] || set -- tests/unit tests/integration
python -m pytest -p no:cacheprovider -q -rfE "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# With -q, pytest 9 prints "N passed in Xs" without the ==== padding.
summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$log" | tail -n1)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{n += $1} END {print n + 0}')
rm -f "$log"
# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
if [ "$rc" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then failed=1; fi
echo "pytest: ${passed:-0} passed, ${failed:-0} failed"
exit "$rc"
