# SPDX-License-Identifier: GPL-3.0-or-later
"""The estate builder (tests/estate/build.yml) and incident check, run for real.

Both colors are inventory hosts on this machine (local connection), under a
temp dir, with free ports and their own PM2_HOME; ``pm2 kill`` at teardown.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PM2 = ROOT / "tests" / "tools" / "node_modules" / ".bin" / "pm2"
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _index in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Estate:
    def __init__(self, root: Path):
        self.root = root
        self.pm2_home = root / "pm2"
        self.ports = dict(zip(("blue", "green"), free_ports(2), strict=True))
        self.app_dirs = {"blue": root / "home" / "ubuntu" / "TimeTracking-BLUE",
                         "green": root / "home" / "ubuntu" / "TimeTracking-Clean"}
        self.inventory = root / "inventory.ini"
        self.inventory.write_text(
            "[timetracking]\n"
            + "".join(f"{c} ansible_connection=local dbfix_color={c} dbfix_app_dir={self.app_dirs[c]} dbfix_port={self.ports[c]}\n"
                      for c in ("blue", "green"))
            + "\n[timetracking:vars]\n"
            f"ansible_python_interpreter={sys.executable}\n"
            f"dbfix_shared_db={root / 'home' / 'ubuntu' / 'database-shared.db'}\n"
            f"dbfix_pm2_executable={PM2}\n"
            f"dbfix_pm2_home={self.pm2_home}\n",
            encoding="utf-8")

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "DB_PATH", "APP_COLOR", "ALLOWED_ORIGINS")}
        env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", PM2_HOME=str(self.pm2_home),
                   ANSIBLE_LOCAL_TEMP=str(self.root / "ansible-tmp"), ANSIBLE_REMOTE_TEMP=str(self.root / "ansible-tmp"))
        return env

    def playbook(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(PLAYBOOK_BIN), "-i", str(self.inventory), str(ROOT / "tests" / "estate" / name), *args],
                              cwd=ROOT, env=self.env(), capture_output=True, text=True, check=False, timeout=900)

    def pm2_jlist(self) -> list:
        out = subprocess.run([str(PM2), "jlist"], env=self.env(), capture_output=True, text=True, check=True, timeout=120).stdout
        return json.loads(out[out.index("["):])

    def kill(self):
        if self.pm2_home.exists():
            subprocess.run([str(PM2), "kill"], env=self.env(), capture_output=True, check=False, timeout=120)


def recap(out: str) -> dict:
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\w+)\s+:\s+(ok=.*)$", out, re.M)}


@pytest.fixture(scope="module")
def estate():
    for need in (PM2, ROOT / "tests" / "app" / "node_modules" / "better-sqlite3"):
        if not need.exists():
            pytest.fail(f"{need} is missing: run `make node-tools`")
    root = Path(tempfile.mkdtemp(prefix="dbfix-estate-"))
    est = Estate(root)
    try:
        first = est.playbook("build.yml")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        est.first = first
        yield est
    finally:
        est.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_build_lays_out_both_colors_with_the_incident(estate):
    for color, app_dir in estate.app_dirs.items():
        server = app_dir / "server"
        env_file = server / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#"))
        assert set(env) == {"PORT", "NODE_ENV", "JWT_SECRET", "APP_COLOR"}
        assert env["PORT"] == str(estate.ports[color]) and env["APP_COLOR"] == color
        assert "TEST-ONLY" in env["JWT_SECRET"]
        conn = sqlite3.connect(server / "database.db")
        cols = [r[1] for r in conn.execute("PRAGMA table_info(users)")]
        conn.close()
        assert ("position" in cols) == (color == "blue")
    blue_env = (estate.app_dirs["blue"] / "server" / ".env").read_text()
    green_env = (estate.app_dirs["green"] / "server" / ".env").read_text()
    assert blue_env != green_env


def test_both_apps_online_under_pm2_and_healthy(estate):
    procs = {p["name"]: p for p in estate.pm2_jlist()}
    for color, port in estate.ports.items():
        proc = procs[f"timetracking-{color}"]
        assert proc["pm2_env"]["status"] == "online"
        assert proc["pm2_env"]["pm_cwd"] == str(estate.app_dirs[color] / "server")
        status, body = get(f"http://127.0.0.1:{port}/api/health")
        assert status == 200
        assert body["color"] == color
        assert body["db"] == str((estate.app_dirs[color] / "server" / "database.db").resolve())


def test_incident_playbook_shows_green_500(estate):
    run = estate.playbook("incident.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    assert "INCIDENT: GREEN is missing users.position (HTTP 500)" in run.stdout
    assert get(f"http://127.0.0.1:{estate.ports['blue']}/api/users/me")[0] == 200
    assert get(f"http://127.0.0.1:{estate.ports['green']}/api/users/me")[0] == 500


def test_second_build_changes_nothing_and_keeps_the_processes(estate):
    pids = {p["name"]: p["pid"] for p in estate.pm2_jlist()}
    db = estate.app_dirs["green"] / "server" / "database.db"
    before = db.stat().st_ino

    run = estate.playbook("build.yml")

    assert run.returncode == 0, run.stdout[-4000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap(run.stdout).values()), run.stdout[-3000:]
    assert {p["name"]: p["pid"] for p in estate.pm2_jlist()} == pids
    assert db.stat().st_ino == before


def test_incident_playbook_fails_once_green_is_migrated(estate):
    # Runs after the checks above (file order): it changes GREEN's DB for good.
    server = estate.app_dirs["green"] / "server"
    env = {k: v for k, v in estate.env().items() if k not in ("PORT", "DB_PATH")}
    mig = subprocess.run(["npm", "run", "migrate"], cwd=server, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert mig.returncode == 0, mig.stderr
    assert "Applied 002_add_users_position.sql" in mig.stdout

    run = estate.playbook("incident.yml")

    assert run.returncode != 0
    assert "GREEN (staging) answered 200" in run.stdout


def test_reset_refuses_an_app_dir_it_did_not_build(tmp_path):
    # No pm2 needed: a foreign app dir must stop the play before anything is deleted.
    foreign = tmp_path / "TimeTracking-BLUE"
    (foreign / "server").mkdir(parents=True)
    keep = foreign / "server" / "database.db"
    keep.write_bytes(b"production data")
    inv = tmp_path / "inventory.ini"
    inv.write_text(f"blue ansible_connection=local ansible_python_interpreter={sys.executable} dbfix_color=blue "
                   f"dbfix_app_dir={foreign} dbfix_port={free_ports(1)[0]} dbfix_pm2_executable=/bin/true\n", encoding="utf-8")

    run = subprocess.run([str(PLAYBOOK_BIN), "-i", str(inv), str(ROOT / "tests" / "estate" / "build.yml"),
                          "-e", "estate_reset=true", "-e", "estate_start_apps=false"],
                         cwd=ROOT, env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
                         capture_output=True, text=True, check=False, timeout=300)

    assert run.returncode != 0
    assert "was not built by the test estate" in run.stdout
    assert keep.read_bytes() == b"production data"
