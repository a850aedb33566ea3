# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario `default`: after playbooks/site.yml on the incident estate.

The `host` fixture runs a test once per container (blue, green; testinfra's
podman backend, see molecule.yml). Tests without it look at the pair.
"""

from __future__ import annotations

import os
import posixpath

import pytest
from dbfix_checks import (
    FOREIGN_ORIGIN,
    TAURI_ORIGIN,
    before,
    get_host,
    http,
    pm2_status,
    quick_check,
    reports_of_this_run,
    rows_missing,
    run_ok,
    sha256,
    sqlite_json,
)


def test_users_me_answers_200(host):
    """The incident: GREEN answered 500 (no users.position). Both answer now."""
    rec = before(host)
    resp = http(host, "GET", rec["port"], "/api/users/me")
    assert resp.status == 200, resp
    assert "position" in resp.json()


def test_health_both_on_the_shared_db(host):
    rec = before(host)
    resp = http(host, "GET", rec["port"], "/api/health")
    assert resp.status == 200, resp
    body = resp.json()
    assert body["status"] == "ok"
    assert body["color"] == rec["color"]
    # The file the app really has open is the shared DB.
    assert body["db"] == rec["shared_db"]


def test_pm2_process_online(host):
    assert pm2_status(host, "timetracking-%s" % before(host)["color"]) == "online"


def test_database_db_is_a_link_to_the_shared_db(host):
    rec = before(host)
    db = host.file(rec["db_path"])
    assert db.is_symlink, "%s is not a symlink" % rec["db_path"]
    target = db.linked_to
    if not posixpath.isabs(target):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(rec["db_path"]), target))
    assert target == rec["shared_db"]
    shared = host.file(rec["shared_db"])
    assert shared.is_file and not shared.is_symlink


def test_old_file_is_the_pre_fix_db(host):
    """`.OLD` is the app's own DB as it was before phase 2 moved it.

    BLUE has nothing to migrate, so its `.OLD` is byte-identical to the file
    recorded in prepare. GREEN was migrated in phase 1 (users.position added),
    so its file changed legitimately: there every row of the recorded DB must
    still be in `.OLD`, and `.OLD` must have the column.
    """
    rec = before(host)
    old = rec["db_path"] + ".OLD"
    assert host.file(old).is_file and not host.file(old).is_symlink
    if rec["color"] == "blue":
        assert sha256(host, old) == rec["db_sha256"]
    else:
        assert rows_missing(host, "/var/lib/dbfix-molecule/before.db", old) == {}
        cols = [r["name"] for r in sqlite_json(host, old, "SELECT name FROM pragma_table_info('users')")]
        assert "position" in cols


def test_shared_db_lost_no_row_of_either_app(host):
    """Nothing lost: every row either app had before the fix is in the shared DB."""
    rec = before(host)
    assert rows_missing(host, "/var/lib/dbfix-molecule/before.db", rec["shared_db"]) == {}


def test_backups_exist_and_pass_quick_check(host):
    rec = before(host)
    server_dir = posixpath.dirname(rec["db_path"])
    found = run_ok(host, "ls -1 %s/database.db.backup.* 2>/dev/null || true" % server_dir).split()
    assert found, "no %s/database.db.backup.* after site.yml" % server_dir
    for path in found:
        assert quick_check(host, path) == "ok", path


def test_a_row_written_through_blue_is_read_through_green():
    blue, green = get_host("blue"), get_host("green")
    brec, grec = before(blue), before(green)
    count_before = http(green, "GET", grec["port"], "/api/stats").json()["tables"]["time_entries"]
    user_id = sqlite_json(blue, brec["shared_db"], "SELECT id FROM users WHERE active = 1 ORDER BY id LIMIT 1")[0]["id"]
    created = http(blue, "POST", brec["port"], "/api/time-entries",
                   data={"user_id": user_id, "minutes": 42, "note": "molecule default: written via BLUE"})
    assert created.status == 201, created
    new_id = created.json()["id"]
    stats = http(green, "GET", grec["port"], "/api/stats").json()
    assert stats["tables"]["time_entries"] == count_before + 1
    row = sqlite_json(green, grec["db_path"], "SELECT note FROM time_entries WHERE id = %d" % int(new_id))
    assert row == [{"note": "molecule default: written via BLUE"}]


@pytest.mark.parametrize("origin, allowed", [(TAURI_ORIGIN, True), (FOREIGN_ORIGIN, False)])
def test_cors_preflight(host, origin, allowed):
    rec = before(host)
    resp = http(host, "OPTIONS", rec["port"], "/api/time-entries",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert resp.status in (200, 204), resp
    if allowed:
        assert resp.headers.get("access-control-allow-origin") == origin, resp
    else:
        assert "access-control-allow-origin" not in resp.headers, resp


def test_report_written_by_this_run():
    """site.yml's report (JSON and Markdown) on the controller, for this run."""
    reports = reports_of_this_run("site")
    assert reports, "no reports/*-site.json from this run"
    report = reports[0]
    assert report["ok"] is True, report
    assert os.path.isfile(report["_path"][: -len(".json")] + ".md")
    for color in ("blue", "green"):
        assert report["hosts"][color]["phase2"], "no phase 2 section for %s" % color
