# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario `health-failure`: GREEN failed /api/health once its database.db
was a symlink, so phase 2 rolled itself back. Both apps are on their own DBs,
byte-identical to what they were after phase 1, and healthy."""

from __future__ import annotations

import re

from dbfix_checks import after_phase1, assert_on_own_db, before, get_host, http, phase2_run, pm2_processes, pm2_status, sha256


def test_the_failure_was_real():
    """GREEN's app runs with the test preload (else the scenario proves nothing)."""
    green = get_host("green")
    procs = {p["name"]: p for p in pm2_processes(green)}
    env = procs["timetracking-green"]["pm2_env"]
    node_options = env.get("NODE_OPTIONS") or env.get("env", {}).get("NODE_OPTIONS", "")
    assert "fail-health-on-link.js" in node_options, sorted(env)


def test_phase2_failed_and_rolled_back():
    run = phase2_run()
    assert run["rc"] != 0
    out = run["stdout"] + run["stderr"]
    assert re.search(r"roll(ed|ing)?[ -]?back", out, re.IGNORECASE), out[-3000:]
    assert "/api/health" in out or "health" in out.lower(), out[-3000:]


def test_back_on_own_db_as_after_phase1(host):
    rec = before(host)
    assert_on_own_db(host, rec, expect_sha256=after_phase1(host)["db_sha256"])


def test_env_as_after_phase1(host):
    rec = before(host)
    assert sha256(host, rec["env_file"]) == after_phase1(host)["env_sha256"]


def test_apps_serving(host):
    rec = before(host)
    assert pm2_status(host, "timetracking-%s" % rec["color"]) == "online"
    resp = http(host, "GET", rec["port"], "/api/users/me")
    assert resp.status == 200, resp
