# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitor's entry point is rendered from a template whose first line is a
Jinja comment (so the template itself is no script for ansible-test's shebang
check). Rendered by the real ansible.builtin.template, the installed file must
start with the role's interpreter as its shebang and be valid Python."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "monitor" / "templates" / "dbfix-monitor.j2"


def test_entry_point_starts_with_the_chosen_interpreter(tmp_path):
    assert not TEMPLATE.read_text().startswith("#!"), "the template must not be a script itself"
    dest = tmp_path / "dbfix-monitor"
    extra = {"dbfix_monitor_python": "/opt/py/bin/python3", "dbfix_monitor_lib_dir": "/opt/lib",
             "ansible_python_interpreter": sys.executable}
    ansible = Path(sys.executable).with_name("ansible")
    res = subprocess.run(
        [str(ansible), "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.template",
         "-a", "src=%s dest=%s" % (TEMPLATE, dest), "-e", json.dumps(extra)],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = dest.read_text()
    assert out.splitlines()[0] == "#!/opt/py/bin/python3"
    compile(out, str(dest), "exec")
