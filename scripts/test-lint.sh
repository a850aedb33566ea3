#!/usr/bin/env bash
# Static checks. Each tool is one check; prints "lint: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
bin="$here/.venv/bin"
export PATH="$bin:$PATH"  # ansible-lint warns when its own folder is not on PATH
export ANSIBLE_COLLECTIONS_PATH="$here/.collections:$here/.cache/collections:$HOME/.ansible/collections"
pass=0 fail=0
check() {
  local name=$1; shift
  echo "--- lint: $name"
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $name"; fi
}
check ruff "$bin/ruff" check .
check yamllint "$bin/yamllint" -s .
check ansible-lint "$bin/ansible-lint" --offline --profile production -q
check antsibull-changelog "$bin/antsibull-changelog" lint
check shellcheck shellcheck -S warning -x scripts/*.sh .ci/run
echo "lint: $pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
