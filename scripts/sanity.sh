#!/usr/bin/env bash
# ansible-test needs the collection inside an ansible_collections/NS/NAME tree.
# We copy the checkout there (without git-ignored and dev-only trees) and run
# sanity on the copy (removed afterwards); prints "sanity: N passed, N failed, N skipped"
# and a "skip: TEST - REASON" line for each test ansible-test skipped.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: inside it, git would report the copy as ignored and
# ansible-test would skip every file.
top=$(mktemp -d "${DBFIX_SANITY_DIR:-/tmp}/dbfix-sanity.XXXXXX")
dest="$top/ansible_collections/bluegreen/dbfix"
log=$(mktemp "$top/log.XXXXXX")
trap 'rm -rf "$top"' EXIT
bash "$here/scripts/setup-ansible-test.sh" >/dev/null || { echo "sanity: 0 passed, 1 failed, 0 skipped"; exit 1; }
mkdir -p "$dest"
# tar rather than rsync: one less package to install on a fresh machine.
tar -C "$here" -cf - \
  --exclude=./.git --exclude=./.collections --exclude=./.venv --exclude=./.cache \
  --exclude=./build --exclude=./demo --exclude=./reports --exclude=node_modules \
  --exclude=./tests/output --exclude=__pycache__ --exclude=.pytest_cache \
  --exclude=.ruff_cache --exclude=.hypothesis --exclude=./bench/results . \
  | tar -C "$dest" -xf -
cd "$dest" || exit 1
"$here/.venv/bin/ansible-test" sanity --python 3.11 --venv --color no "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tests=$(grep -cE '^Running sanity test ' "$log" || true)
# ansible-test prints one "Running sanity test 'X'" per test and an ERROR summary
# line naming how many failed.
nfail=$(grep -oE 'The ([0-9]+) sanity test\(s\) listed below' "$log" | grep -oE '[0-9]+' | head -n1)
nfail=${nfail:-0}
if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then nfail=1; fi
# "WARNING: Skipping sanity test 'X' ..." (no targets, or not for this Python).
grep -oE "Skipping sanity test '[^']+'.*" "$log" | sed -E "s/^Skipping sanity test '([^']+)'[: ]*/skip: \1 - /"
nskip=$(grep -cE "Skipping sanity test '" "$log" || true)
echo "sanity: $((tests - nfail)) passed, $nfail failed, ${nskip:-0} skipped"
exit "$rc"
