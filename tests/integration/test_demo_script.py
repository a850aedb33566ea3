# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/demo.sh and scripts/demo-clean.sh: the checks that stop a demo before it starts.

The demo goes to a temp DBFIX_DEMO_DIR, so a demo running from the checkout is
never touched. A full demo run is `make demo` (it takes ports 3000/3001).
"""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
CLEAN = ROOT / "scripts" / "demo-clean.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script: Path, demo_dir: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "DBFIX_DEMO_DIR": str(demo_dir), **env}
    return subprocess.run(["bash", str(script)], cwd=ROOT, env=full, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(autouse=True)
def tools():
    for need in (ROOT / ".venv" / "bin" / "ansible-playbook", ROOT / "tests" / "tools" / "node_modules" / ".bin" / "pm2",
                 ROOT / "tests" / "app" / "node_modules" / "better-sqlite3"):
        if not need.exists():
            pytest.fail(f"{need} is missing: run `make venv node-tools`")


@pytest.mark.parametrize("color", ["BLUE", "GREEN"])
def test_a_taken_port_is_named_with_the_variable_to_change(tmp_path, color):
    demo = tmp_path / "demo"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        ports = {"BLUE": str(free_port()), "GREEN": str(free_port())}
        ports[color] = str(taken)

        proc = run(DEMO, demo, DBFIX_DEMO_BLUE_PORT=ports["BLUE"], DBFIX_DEMO_GREEN_PORT=ports["GREEN"])

    assert proc.returncode != 0
    assert f"port {taken} (for {color}) is already in use" in proc.stderr
    assert f"DBFIX_DEMO_{color}_PORT=<port>" in proc.stderr
    assert not (demo / "inventory.ini").exists(), "nothing may be built when a port is taken"


def test_a_port_that_is_not_a_number_is_refused(tmp_path):
    proc = run(DEMO, tmp_path / "demo", DBFIX_DEMO_GREEN_PORT="30o1")

    assert proc.returncode != 0
    assert "DBFIX_DEMO_GREEN_PORT=30o1 is not a port number" in proc.stderr


def test_the_same_port_for_both_colors_is_refused(tmp_path):
    port = str(free_port())
    proc = run(DEMO, tmp_path / "demo", DBFIX_DEMO_BLUE_PORT=port, DBFIX_DEMO_GREEN_PORT=port)

    assert proc.returncode != 0
    assert f"both want port {port}" in proc.stderr


def test_demo_clean_leaves_a_folder_it_did_not_make(tmp_path):
    foreign = tmp_path / "somebodys-folder"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine", encoding="utf-8")

    proc = run(CLEAN, foreign)

    assert proc.returncode == 1
    assert "not made by scripts/demo.sh" in proc.stderr
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_demo_clean_removes_a_demo_folder(tmp_path):
    demo = tmp_path / "demo"
    (demo / "pm2").mkdir(parents=True)  # a PM2_HOME whose daemon is not running
    (demo / ".dbfix-demo").write_text("made by scripts/demo.sh\n", encoding="utf-8")
    (demo / "inventory.ini").write_text("[timetracking]\n", encoding="utf-8")

    proc = run(CLEAN, demo)

    assert proc.returncode == 0, proc.stderr
    assert not demo.exists()
