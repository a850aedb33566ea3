# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad inventories and bad role inputs are refused before anything is touched.

These runs use real ``ansible-playbook`` with local connections against app
dirs in ``tmp_path`` that hold a sentinel file; every case asserts the message
the operator sees and that the files are byte-identical afterwards. No app or
pm2 is needed: the checks come before the first module that would need them.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"


def tree(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def layout(tmp_path: Path, hosts: dict[str, dict]) -> Path:
    """App dirs with a DB and .env stand-in per host, and an inventory for them (pair key: the shared DB)."""
    lines = ["[pair]"]
    for name, hv in hosts.items():
        app = tmp_path / name
        (app / "server").mkdir(parents=True)
        (app / "server" / "database.db").write_bytes(b"not touched " + name.encode())
        (app / "server" / ".env").write_text("PORT=1\n")
        extra = " ".join(f"{k}={v}" for k, v in hv.items())
        lines.append(f"{name} dbfix_app_dir={app} {extra}")
    lines += ["", "[pair:vars]", f"dbfix_shared_db={tmp_path}/shared.db", "ansible_connection=local",
              f"ansible_python_interpreter={sys.executable}", f"dbfix_report_dir={tmp_path}/reports", ""]
    inv = tmp_path / "inventory.ini"
    inv.write_text("\n".join(lines))
    return inv


def run(playbook: str, inv: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(PLAYBOOK), "-i", str(inv), str(ROOT / "playbooks" / playbook), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("playbook", ["phase1.yml", "phase2.yml", "cors.yml", "rollback.yml"])
def test_pair_with_a_missing_color_is_refused(tmp_path, playbook):
    inv = layout(tmp_path, {"blue": {"dbfix_color": "blue", "dbfix_port": 1}})
    before = tree(tmp_path / "blue")
    res = run(playbook, inv)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "must have exactly one blue and one green host" in out
    assert "green=[]" in out
    assert tree(tmp_path / "blue") == before


def test_two_blues_in_one_pair_are_refused(tmp_path):
    inv = layout(tmp_path, {"b1": {"dbfix_color": "blue", "dbfix_port": 1}, "b2": {"dbfix_color": "blue", "dbfix_port": 2},
                            "g": {"dbfix_color": "green", "dbfix_port": 3}})
    res = run("phase2.yml", inv)
    assert res.returncode != 0
    assert "give each pair its own dbfix_pair" in res.stdout


def test_unknown_color_is_refused(tmp_path):
    inv = layout(tmp_path, {"blue": {"dbfix_color": "purple", "dbfix_port": 1}, "green": {"dbfix_color": "green", "dbfix_port": 2}})
    res = run("phase1.yml", inv)
    assert res.returncode != 0
    assert "dbfix_color" in res.stdout and "purple" in res.stdout


@pytest.mark.parametrize("origin", ["*", "null", "https://app.example/", "https://app.example/path", "app.example", "https://a b.example"])
def test_invalid_cors_origin_is_refused_before_any_change(tmp_path, origin):
    inv = layout(tmp_path, {"blue": {"dbfix_color": "blue", "dbfix_port": 1}, "green": {"dbfix_color": "green", "dbfix_port": 2}})
    before = tree(tmp_path)
    origins = json.dumps({"dbfix_cors_allowed_origins": ["tauri://localhost", origin]})
    res = run("cors.yml", inv, "-e", origins)
    assert res.returncode != 0
    assert "invalid: " + origin in " ".join(res.stdout.split())
    assert "Nothing was changed" in res.stdout
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith("reports/")}
    assert after == before
    # The failed run still leaves its report, and it says which hosts failed.
    report = json.loads(next((tmp_path / "reports").glob("*-cors.json")).read_text())
    assert report["ok"] is False and sorted(report["failed_hosts"]) == ["blue", "green"]


def test_rollback_phase_must_be_known(tmp_path):
    inv = layout(tmp_path, {"blue": {"dbfix_color": "blue", "dbfix_port": 1}, "green": {"dbfix_color": "green", "dbfix_port": 2}})
    res = run("rollback.yml", inv, "-e", "dbfix_rollback_phase=phase3")
    assert res.returncode != 0
    assert "dbfix_rollback_phase" in res.stdout and "phase3" in res.stdout


def test_rollback_of_phase1_without_a_record_is_refused(tmp_path):
    inv = layout(tmp_path, {"blue": {"dbfix_color": "blue", "dbfix_port": 1}, "green": {"dbfix_color": "green", "dbfix_port": 2}})
    before = tree(tmp_path)
    res = run("rollback.yml", inv, "-e", "dbfix_rollback_phase=phase1")
    assert res.returncode != 0
    assert "records no phase 1 backup" in " ".join(res.stdout.split())
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("reports/")} == before
