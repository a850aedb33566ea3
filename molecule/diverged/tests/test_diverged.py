# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario `diverged`: each DB had rows the other lacked, so phase 2 had no
base holding every row and had to fail before changing anything."""

from __future__ import annotations

from dbfix_checks import after_phase1, assert_on_own_db, before, http, phase2_run, pm2_status, rows_missing, sha256


def test_phase2_failed_and_said_why():
    run = phase2_run()
    assert run["rc"] != 0
    out = run["stdout"] + run["stderr"]
    # Refused for the right reason (rows would be lost, not a crash), listing
    # tables and row counts of both DBs.
    assert "lose" in out.lower(), out[-3000:]
    assert "time_entries" in out, out[-3000:]


def test_db_untouched_since_phase1(host):
    rec = before(host)
    assert_on_own_db(host, rec, expect_sha256=after_phase1(host)["db_sha256"])


def test_env_untouched_since_phase1(host):
    rec = before(host)
    assert sha256(host, rec["env_file"]) == after_phase1(host)["env_sha256"]


def test_no_shared_db_created(host):
    rec = before(host)
    assert not host.file(rec["shared_db"]).exists, "phase 2 created %s although it refused" % rec["shared_db"]


def test_no_row_lost(host):
    """Each app still has every row it had before (its own unique ones too)."""
    rec = before(host)
    assert rows_missing(host, "/var/lib/dbfix-molecule/before.db", rec["db_path"]) == {}


def test_apps_still_serving(host):
    rec = before(host)
    assert pm2_status(host, "timetracking-%s" % rec["color"]) == "online"
    # Phase 1 ran: GREEN has users.position now.
    resp = http(host, "GET", rec["port"], "/api/users/me")
    assert resp.status == 200, resp
