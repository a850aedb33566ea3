#!/usr/bin/env bash
# ansible-test bootstraps pip in each of its tool venvs with a get-pip script it
# downloads from a host these machines cannot reach. It looks for a cached copy
# first (~/.ansible/test/cache/get_pip_<ver>.py). We provide a stand-in that
# installs pip from pip's own wheel (downloaded from PyPI, which is reachable),
# so sanity works on a fresh machine. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
# The version ansible-test wants, read from the installed ansible-test itself.
ver=$("$py" - <<'PY'
import re, inspect
from ansible_test._internal import python_requirements as pr
m = re.search(r"pip='([0-9.]+)'", inspect.getsource(pr.get_venv_packages))
print(m.group(1))
PY
)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache/pip-wheels"
script="$cache/get_pip_${ver//./_}.py"
wheel=$(find "$cache/pip-wheels" -name "pip-$ver-*.whl" | head -n1)
if [ -z "$wheel" ]; then
  "$py" -m pip download -q --no-deps --only-binary=:all: -d "$cache/pip-wheels" "pip==$ver"
  wheel=$(find "$cache/pip-wheels" -name "pip-$ver-*.whl" | head -n1)
fi
cat > "$script" <<PY
# Stand-in for get-pip.py $ver, written by bluegreen.dbfix scripts/setup-ansible-test.sh.
# Installs pip from its own wheel; drops flags only get-pip understands.
import sys
WHEEL = "$wheel"
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", "$(dirname "$wheel")"] + args))
PY
echo "ansible-test pip bootstrap: $script (pip $ver)"
