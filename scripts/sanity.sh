#!/usr/bin/env bash
# ansible-test needs the collection inside an ansible_collections/NS/NAME tree.
# We copy the checkout there (without git-ignored and dev-only trees) and run
# sanity on the copy; prints "sanity: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: inside it, git would report the copy as ignored and
# ansible-test would skip every file.
dest="${DBFIX_SANITY_DIR:-/tmp/dbfix-sanity}/ansible_collections/bluegreen/dbfix"
bash "$here/scripts/setup-ansible-test.sh" >/dev/null || { echo "sanity: 0 passed, 1 failed"; exit 1; }
rm -rf "$dest" && mkdir -p "$dest"
# tar rather than rsync: one less package to install on a fresh machine.
tar -C "$here" -cf - \
  --exclude=./.git --exclude=./.collections --exclude=./.venv --exclude=./.cache \
  --exclude=./build --exclude=./demo --exclude=./reports --exclude=node_modules \
  --exclude=./tests/output --exclude=__pycache__ --exclude=.pytest_cache \
  --exclude=.ruff_cache --exclude=.hypothesis --exclude=./bench/results . \
  | tar -C "$dest" -xf -
cd "$dest" || exit 1
log=$(mktemp)
"$here/.venv/bin/ansible-test" sanity --python 3.11 --venv --color no "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tests=$(grep -cE '^Running sanity test ' "$log" || true)
# ansible-test prints one "Running sanity test 'X'" per test and an ERROR summary
# line naming how many failed.
nfail=$(grep -oE 'The ([0-9]+) sanity test\(s\) listed below' "$log" | grep -oE '[0-9]+' | head -n1)
nfail=${nfail:-0}
if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then nfail=1; fi
echo "sanity: $((tests - nfail)) passed, $nfail failed"
rm -f "$log"
exit "$rc"
