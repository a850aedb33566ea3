# SPDX-License-Identifier: GPL-3.0-or-later
"""What an outside user found running the roles against the foreign app (tests/integration/test_foreign_app.py's
Python service under real pm2, own PM2_HOME under tmp_path, killed at teardown; real SQLite files and .env files;
``ansible-playbook`` with local connections; no mocks). Each test failed before its fix.

* check.yml honours ``dbfix_report_dir`` (the one report folder README tells a user to set); the monitor role's
  ``dbfix_monitor_report_dir`` default ignored it and wrote under ``$XDG_DATA_HOME``.
* check.yml reads a WAL database that no process has open without creating ``-wal``/``-shm`` beside it (they were
  created owned by whoever ran the check - root for a system timer - which can lock the app's user out of its DB).
* A failed phase 1 whose app did not come back in the rescue does not say "App restarted: yes, healthy" (the rescue
  start was registered with ``failed_when: false``, so the message always said healthy).
* Rolling CORS back keeps the ``.env``'s owner and mode, as the cors role itself does (the restore by
  ``ansible.builtin.copy`` with ``mode: preserve`` gave the file to the user running the rollback). Real second
  local user (``useradd``, removed in teardown); needs root.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import sqlite3
import subprocess

import pytest
import test_foreign_app
from test_foreign_app import sha256, tail

# The foreign estate fixture of test_foreign_app.py (one builder for both files).
foreign = test_foreign_app.foreign


def test_check_playbook_writes_its_table_into_dbfix_report_dir(foreign, tmp_path):
    xdg = tmp_path / "xdg"
    rc, out = foreign.playbook("check.yml", log="check", env={"XDG_DATA_HOME": str(xdg)})
    assert rc == 0, tail(out)
    assert sorted(p.suffix for p in foreign.reports.glob("*-check.*")) == [".json", ".md"], (
        f"check.yml wrote no table into dbfix_report_dir={foreign.reports}; under XDG_DATA_HOME: "
        f"{sorted(str(p) for p in xdg.rglob('*'))}")
    assert not list(xdg.rglob("*-check.*")), "check.yml must not write beside dbfix_report_dir"


def test_check_playbook_leaves_no_side_files_beside_a_closed_wal_database(foreign, tmp_path):
    green = foreign.hosts["green"]
    foreign.pm2("stop", green["name"])
    with contextlib.closing(sqlite3.connect(green["db"])) as c:
        assert c.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
    folder = green["db"].parent
    before = sorted(p.name for p in folder.iterdir())
    assert before == ["notes.sqlite3"], before
    digest = sha256(green["db"])
    rc, out = foreign.playbook("check.yml", log="check", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert rc == 0, tail(out)
    assert sorted(p.name for p in folder.iterdir()) == before, "check.yml created files beside the app's database"
    assert sha256(green["db"]) == digest


def test_phase1_failed_health_gate_does_not_report_the_app_healthy(foreign):
    dbs = {c: sha256(h["db"]) for c, h in foreign.hosts.items()}
    # The app answers 200; the operator configured 204. Forced restart so the health gate runs.
    rc, out = foreign.playbook("phase1.yml", extra={"dbfix_health_status": 204, "dbfix_health_timeout": 3,
                                                    "dbfix_phase1_force_restart": True}, log="phase1-bad-status")
    assert rc != 0, tail(out)
    assert "did not answer HTTP 204" in out, tail(out)
    assert "App restarted: yes, healthy" not in out, tail(out)
    assert "App restarted: NO" in out, tail(out)
    assert {c: sha256(h["db"]) for c, h in foreign.hosts.items()} == dbs


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.fail("this test must run as root: it creates a second local user and chowns the app's .env to it")
    name = "dbfixo" + secrets.token_hex(3)
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True, timeout=60)
    try:
        pw = pwd.getpwnam(name)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)


@pytest.fixture
def owned(foreign, other_user):
    """The foreign estate with both .env files owned by the second user (0600); given back to root at teardown."""
    uid, gid = other_user
    for h in foreign.hosts.values():
        os.chown(h["env"], uid, gid)
        os.chmod(h["env"], 0o600)
    try:
        yield foreign
    finally:
        # Files owned by the removed user would stay in tmp_path with a dangling uid: give them back.
        for h in foreign.hosts.values():
            for p in h["dir"].iterdir():
                if p.name.startswith(".env"):
                    os.chown(p, 0, 0, follow_symlinks=False)


def test_cors_rollback_keeps_the_env_owner_and_mode(owned, other_user):
    uid, gid = other_user
    before = {c: h["env"].read_bytes() for c, h in owned.hosts.items()}
    rc, out = owned.playbook("cors.yml", log="cors")
    assert rc == 0, tail(out)
    for h in owned.hosts.values():
        st = h["env"].stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, gid, 0o600), "cors.yml kept owner and mode"
    rc, out = owned.playbook("rollback.yml", extra={"dbfix_rollback_phase": "cors"}, log="rb-cors")
    assert rc == 0, tail(out)
    for c, h in owned.hosts.items():
        assert h["env"].read_bytes() == before[c]
        st = h["env"].stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, gid, 0o600), (
            f"{h['env']} after the CORS rollback: uid {st.st_uid} gid {st.st_gid} mode {oct(st.st_mode & 0o777)}, "
            f"was uid {uid} gid {gid} mode 0o600")
