# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario `rollback`: site.yml, then rollback of cors, phase2 and phase1.
Every DB and .env is byte-identical to what prepare recorded; the apps are
healthy on their own DBs, and so the incident is back (GREEN's migration was
undone with the rest)."""

from __future__ import annotations

from dbfix_checks import TAURI_ORIGIN, assert_on_own_db, before, http, pm2_status, reports_of_this_run, sha256


def test_db_byte_identical_to_before(host):
    rec = before(host)
    assert_on_own_db(host, rec, expect_sha256=rec["db_sha256"])


def test_env_byte_identical_to_before(host):
    rec = before(host)
    assert sha256(host, rec["env_file"]) == rec["env_sha256"]


def test_pm2_online(host):
    assert pm2_status(host, "timetracking-%s" % before(host)["color"]) == "online"


def test_incident_is_back(host):
    rec = before(host)
    resp = http(host, "GET", rec["port"], "/api/users/me")
    assert resp.status == (200 if rec["color"] == "blue" else 500), resp


def test_cors_rolled_back(host):
    rec = before(host)
    resp = http(host, "OPTIONS", rec["port"], "/api/time-entries",
                headers={"Origin": TAURI_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in resp.headers, resp


def test_rollback_reports_written():
    """One rollback report per phase rolled back, all successful."""
    reports = reports_of_this_run("rollback")
    assert len(reports) >= 3, [r["_path"] for r in reports]
    assert all(r["ok"] is True for r in reports), reports
