# SPDX-License-Identifier: GPL-3.0-or-later
"""CORS on a pair where ONE color's pm2-saved environment already holds the origins key (real estate, real pm2).

Node's dotenv never overrides a variable the process already has, so editing that color's .env would change
nothing. The cors role must refuse before anything changes - on BOTH colors (the other color's check passes on its
own; before the pair-wide check it went on alone and the pair ended with one color changed) - and name the color,
its pm2 process and what to do. Every .env and DB byte-identical afterwards, both apps still healthy.
"""
from __future__ import annotations

import hashlib
import os
import subprocess

from _estate import H, built


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_one_color_with_the_key_in_pm2s_environment_stops_the_pair_before_any_change():
    with built("cors-env", playbooks=("cors.yml",)) as estate:
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
