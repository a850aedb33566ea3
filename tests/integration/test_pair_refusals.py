# SPDX-License-Identifier: GPL-3.0-or-later
"""A pair is worked on together: when a check refuses ONE color, the other color changes nothing either
(real estate, real pm2, real SQLite).

Before, each role's first check looked at its own host only; the other color passed it and went on alone (CORS:
its .env changed and it restarted; phase 1: it backed up and migrated), leaving the pair half-done.

* CORS: BLUE's pm2-saved environment already holds the origins key (Node's dotenv never overrides a variable the
  process has, so editing BLUE's .env would change nothing). Both colors are refused before any change; the message
  names BLUE's pm2 process and what to do; pm2's value is not shown.
* phase 1: BLUE's database file is missing. GREEN's database and its folder stay exactly as they were.

Every .env and DB byte-identical afterwards; both apps still healthy.
"""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from _estate import H, built


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def estate():
    with built("pair-refusals", playbooks=("cors.yml", "phase1.yml")) as estate:
        yield estate


def test_one_color_with_the_key_in_pm2s_environment_stops_the_pair_before_any_change(estate):
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    env = {"PATH": estate.env()["PATH"], "HOME": os.environ.get("HOME", "/root"), "PM2_HOME": str(estate.pm2_home),
           "ALLOWED_ORIGINS": "https://pinned-by-pm2.example"}
    subprocess.run([str(H.PM2), "restart", blue.pm2_name, "--update-env"], env=env, check=True, capture_output=True, timeout=120)
    estate.wait_healthy()
    files = [p for h in (blue, green) for p in (h.env_file, h.db_path)]
    before = {str(p): sha(p) for p in files}
    run = estate.playbook("cors.yml", log_name="cors-pm2-env")
    text = run.text()
    assert run.rc == 2, run.tail(60)
    assert f"pm2's saved environment for {blue.pm2_name} on {blue.name} already holds ALLOWED_ORIGINS" in " ".join(text.split()), run.tail(60)
    assert "Neither color of pair" in text and "pm2 delete" in text
    assert "https://pinned-by-pm2.example" not in text, "pm2's environment values are secrets"
    assert {str(p): sha(p) for p in files} == before, "a refused run changed a file"
    assert "changed=0" in text.split("PLAY RECAP")[-1]
    estate.wait_healthy()


def test_phase1_refused_on_one_color_changes_nothing_on_the_other(estate):
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    green_dir = green.db_path.parent
    listing = sorted(os.listdir(green_dir))
    green_sha = sha(green.db_path)
    moved = blue.db_path.with_name("moved-away.db")
    os.rename(blue.db_path, moved)
    try:
        run = estate.playbook("phase1.yml", log_name="phase1-one-missing")
    finally:
        os.rename(moved, blue.db_path)
    text = run.text()
    assert run.rc == 2, run.tail(60)
    assert f"{blue.db_path} does not exist on {blue.name}" in " ".join(text.split()), run.tail(60)
    assert f"{blue.name} (the other color of pair" in text, "GREEN must stop because BLUE was refused"
    assert sha(green.db_path) == green_sha and sorted(os.listdir(green_dir)) == listing, "GREEN went on alone"
    assert "changed=0" in text.split("PLAY RECAP")[-1].split(green.name)[-1].splitlines()[0]
    estate.wait_healthy()
