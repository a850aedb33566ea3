# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/demo.sh and scripts/demo-clean.sh: the checks that stop a demo before it starts.

The demo goes to a temp DBFIX_DEMO_DIR, so a demo running from the checkout is
never touched. `make demo` takes ports 3000/3001/8080; the full run here takes free ports and ends with the
promotion of GREEN behind the demo's own nginx, then demo-clean must leave no nginx and no pm2 behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
CLEAN = ROOT / "scripts" / "demo-clean.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script: Path, demo_dir: Path, timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "DBFIX_DEMO_DIR": str(demo_dir), **env}
    return subprocess.run(["bash", str(script)], cwd=ROOT, env=full, capture_output=True, text=True, check=False,
                          timeout=timeout)


def processes_naming(text: str) -> list[tuple[int, str]]:
    """Every process whose command line contains ``text`` (read from /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(d.name), cmd))
    return found


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


def test_a_taken_proxy_port_is_named_with_the_variable_to_change(tmp_path):
    demo = tmp_path / "demo"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        proc = run(DEMO, demo, DBFIX_DEMO_BLUE_PORT=str(free_port()), DBFIX_DEMO_GREEN_PORT=str(free_port()),
                   DBFIX_DEMO_PROXY_PORT=str(taken))

    assert proc.returncode != 0
    assert f"port {taken} (for the proxy) is already in use" in proc.stderr
    assert "DBFIX_DEMO_PROXY_PORT=<port>" in proc.stderr
    assert not (demo / "inventory.ini").exists()


def test_the_proxy_port_may_not_be_a_color_port(tmp_path):
    port = str(free_port())
    proc = run(DEMO, tmp_path / "demo", DBFIX_DEMO_BLUE_PORT=str(free_port()), DBFIX_DEMO_GREEN_PORT=port,
               DBFIX_DEMO_PROXY_PORT=port)

    assert proc.returncode != 0
    assert f"the proxy and GREEN both want port {port}" in proc.stderr


def test_the_demo_ends_with_green_in_production_and_clean_stops_its_nginx(tmp_path):
    """The whole demo (estate, incident, site.yml, promote.yml to GREEN behind a real nginx with the demo's own
    prefix), on free ports; then demo-clean. Minutes on a loaded machine."""
    demo = tmp_path / "demo"
    ports = {"DBFIX_DEMO_BLUE_PORT": str(free_port()), "DBFIX_DEMO_GREEN_PORT": str(free_port()),
             "DBFIX_DEMO_PROXY_PORT": str(free_port())}
    try:
        proc = run(DEMO, demo, timeout=1500, **ports)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        assert "Promoting GREEN" in out
        assert "X-Dbfix-Production: green" in out, out[-4000:]
        assert "production=green" in out, out[-4000:]
        state = json.loads((demo / "home/ubuntu/TimeTracking-BLUE/.dbfix/state.json").read_text(encoding="utf-8"))
        assert state["production"]["color"] == "green"
        conf = (demo / "nginx/conf.d").glob("dbfix-*.conf")
        assert any("# dbfix-production: green" in c.read_text(encoding="utf-8") for c in conf)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['DBFIX_DEMO_PROXY_PORT']}/api/health", timeout=5) as r:
            assert r.status == 200 and r.headers.get("X-Dbfix-Production") == "green"
        assert processes_naming(str(demo / "nginx")), "the demo's nginx does not run"
    finally:
        clean = run(CLEAN, demo, timeout=120)
        left = processes_naming(str(demo))
        if left:  # never leave a process behind, even when the test fails
            for pid, _cmd in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert clean.returncode == 0, clean.stderr
    assert "stopped the demo's nginx" in clean.stdout
    assert left == [], left
    assert not demo.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(ports["DBFIX_DEMO_PROXY_PORT"]))) != 0, "the proxy port still answers"
