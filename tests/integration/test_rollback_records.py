# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollback records are written once per fix and trusted only while they match the files (issue 11, class 10).

The bug: after phase 2, a re-run of ``site.yml`` made phase 1 back up the
*shared* DB and overwrite the host's phase-1 record; ``rollback.yml -e
dbfix_rollback_phase=phase1`` then restored the shared DB's backup into BLUE's
own ``database.db``. Here, on a real local estate (real pm2, real Node app, real
SQLite and ``.env`` files, ``ansible-playbook`` with local connections):

* ``site.yml`` twice, with a row written in between (so the second run really
  backs up the shared DB): every record is unchanged by the second run;
  rollback of phase 1 while the DBs are linked refuses and changes nothing;
  after phase 2's rollback, phase 1's rollback gives each app its *own* pre-fix
  content back;
* a record that no longer describes the files (the DB file replaced, a record
  about the shared DB as older versions wrote it, a ``.env`` edited after
  CORS) is refused, naming the backup to use, with every file byte-identical.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _estate import H, built


def files_state(estate) -> dict:
    """Every file of both server dirs (sha256; links as '->target'; live DBs by committed content) and the state files."""
    out = {}
    for h in estate.hosts:
        files = {k: v for k, v in estate.files_of(h).items() if not k.startswith("database.db") or k.endswith(".OLD")}
        files["database.db (link)"] = ("->" + os.readlink(h.db_path)) if h.db_path.is_symlink() else "file"
        files["database.db (inode)"] = h.db_path.lstat().st_ino
        files["database.db (content)"] = H.table_digest(h.db_path)
        files["state.json"] = H.sha256_file(state_file(h)) if state_file(h).exists() else None
        out[h.name] = files
    return out


def state_file(h) -> Path:
    return h.app_dir / ".dbfix" / "state.json"


def records(estate) -> dict:
    return {h.name: json.loads(state_file(h).read_text()) for h in estate.hosts}


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def records_estate():
    with built("records", playbooks=("site.yml", "phase1.yml", "cors.yml", "rollback.yml")) as estate:
        yield estate


@pytest.fixture
def estate(records_estate):
    H.restore(records_estate, "pristine")
    records_estate.wait_healthy()
    return records_estate


def test_site_rerun_keeps_records_and_phase1_rollback_restores_each_apps_own_db(estate):
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    prefix = {h.name: H.table_digest(h.db_path) for h in estate.hosts}

    run = estate.playbook("site.yml", log_name="site-1")
    assert run.rc == 0, run.tail(60)
    first = records(estate)
    for h in estate.hosts:
        rec = first[h.name]["phase1"]
        assert rec["db_path"] == str(h.db_path) and not rec["linked"]
        assert Path(rec["backup_file"]).parent == h.server_dir

    # A row through BLUE after phase 2: the shared DB now differs from its newest backup, so the second
    # run's phase 1 really makes a new backup of the shared DB (the run that used to overwrite the record).
    status, body = H.http_request(blue.port, "POST", "/api/time-entries", {"user_id": 1, "minutes": 3, "note": "after-fix"})
    assert status == 201, body
    shared_backups = set(blue.shared_db.parent.glob(blue.shared_db.name + ".backup.*"))

    run = estate.playbook("site.yml", log_name="site-2")
    assert run.rc == 0, run.tail(60)
    assert set(blue.shared_db.parent.glob(blue.shared_db.name + ".backup.*")) - shared_backups, \
        "the second run should have backed up the shared DB (else this test proves nothing)"
    second = records(estate)
    changed = {(h, phase): (first[h].get(phase), second[h].get(phase))
               for h in first for phase in set(first[h]) | set(second[h]) if first[h].get(phase) != second[h].get(phase)}
    assert not changed, f"a later run must not replace any phase's rollback record: {changed}"

    # Phase 1 can't be rolled back while the apps share the DB: refused, nothing changed.
    before = files_state(estate)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase1"}, log_name="rb-p1-linked")
    assert run.rc != 0
    assert "roll back phase2 first" in flat(run.text())
    assert files_state(estate) == before
    assert all(h.health()[0] == 200 for h in estate.hosts)

    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase2"}, log_name="rb-p2")
    assert run.rc == 0, run.tail(60)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase1"}, log_name="rb-p1")
    assert run.rc == 0, run.tail(60)
    # Each app has its own pre-fix content: BLUE without the row written to the shared DB, GREEN without users.position.
    for h in estate.hosts:
        assert not h.db_path.is_symlink()
        assert H.table_digest(h.db_path) == prefix[h.name], h.name
        assert records(estate)[h.name]["phase1"]["rolled_back"]
    assert not H.notes_in(blue.db_path, "after-fix")
    assert "position" not in H.columns_of(green.db_path, "users")
    assert all(h.health()[0] == 200 for h in estate.hosts)


def test_records_that_no_longer_match_the_files_are_refused(estate):
    blue = estate.host(1, "blue")
    run = estate.playbook("phase1.yml", log_name="p1")
    assert run.rc == 0, run.tail(60)
    run = estate.playbook("cors.yml", log_name="cors")
    assert run.rc == 0, run.tail(60)
    rec = records(estate)[blue.name]
    backup = rec["phase1"]["backup_file"]

    # 1. BLUE's DB file replaced after phase 1 (same content, another file: a restore by hand, a deploy).
    tmp = blue.server_dir / "database.db.replaced"
    shutil.copy2(blue.db_path, tmp)
    os.replace(tmp, blue.db_path)
    estate.pm2("restart", blue.pm2_name)
    estate.wait_healthy()
    before = files_state(estate)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase1"}, log_name="rb-p1-inode")
    assert run.rc != 0
    text = flat(run.text())
    assert "Refusing to roll back phase 1" in text and "it was replaced after phase 1" in text
    assert backup in text, "the refusal names the backup to use"
    assert files_state(estate) == before

    # 2. A record about the shared DB, as older versions wrote it after phase 2.
    sf = state_file(blue)
    saved = sf.read_bytes()
    old = json.loads(saved)
    old["phase1"].update(db_path=str(blue.shared_db), linked=True,
                         backup_file=str(blue.shared_db) + ".backup." + old["phase1"]["timestamp"])
    old["phase1"].pop("db_inode", None)
    sf.write_text(json.dumps(old))
    before = files_state(estate)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase1"}, log_name="rb-p1-shared")
    assert run.rc != 0
    text = flat(run.text())
    assert f"the record is about {blue.shared_db}" in text
    assert files_state(estate) == before
    sf.write_bytes(saved)

    # 3. The .env edited by hand after CORS: restoring the backup would throw the edit away.
    with open(blue.env_file, "a", encoding="utf-8") as fh:
        fh.write("ADDED_BY_HAND=1\n")
    before = files_state(estate)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "cors"}, log_name="rb-cors-edited")
    assert run.rc != 0
    text = flat(run.text())
    assert "Refusing to roll back CORS" in text and "changed after the CORS run" in text
    assert rec["cors"]["backup_file"] in text
    assert files_state(estate) == before
    assert all(h.health()[0] == 200 for h in estate.hosts)
