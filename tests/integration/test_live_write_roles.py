# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 14 through the roles, with the foreign app (Python, the host's SQLite 3.40.1) on WAL databases.

Phase 1 with SQL migrations: sqlite_migrate stops the app (quiesce) before writing, and the role's restart brings
it back healthy. Phase 2: the preflight reads each app's SQLite from /proc/PID/maps and refuses to share a WAL
database with an affected app, unless dbfix_phase2_allow_wal_reset_bug. Real pm2, real SQLite files,
ansible-playbook with local connections; the pm2 daemon is killed in teardown.
"""
from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest

from ansible_collections.bluegreen.dbfix.tests.integration.test_foreign_app import PM2, VENV_BIN, Foreign, request, sha256, tail


@pytest.fixture
def wal_pair(tmp_path):
    for tool in (PM2, VENV_BIN / "ansible-playbook"):
        if not tool.exists():
            pytest.fail(f"{tool} missing (make node-tools / make venv): this test needs the real tool")
    assert shutil.which("python3"), "python3 not on PATH"
    f = Foreign(tmp_path / "estate")
    try:
        f.build()
        for h in f.hosts.values():
            with contextlib.closing(sqlite3.connect(h["db"])) as c:
                assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            assert request(h["port"], "GET", "/health")[0] == 200  # the app reads the database in WAL mode now
        yield f
    finally:
        f.kill()


def columns(db):
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return [r[1] for r in c.execute("PRAGMA table_info(notes)")]


def test_phase1_quiesces_for_the_write_and_phase2_preflight_refuses(wal_pair, tmp_path):
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "001_pinned.sql").write_text("ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n")
    pids = {c: wal_pair.jlist()[h["name"]]["pid"] for c, h in wal_pair.hosts.items()}
    rc, out = wal_pair.playbook("phase1.yml", extra={"dbfix_phase1_migrations": "dir", "dbfix_phase1_migrations_dir": str(mig)},
                                log="phase1")
    assert rc == 0, tail(out, 80)
    procs = wal_pair.jlist()
    for c, h in wal_pair.hosts.items():
        assert "pinned" in columns(h["db"])
        assert procs[h["name"]]["pm2_env"]["status"] == "online"
        assert procs[h["name"]]["pid"] != pids[c], "the app was stopped for the write and started again"
        assert request(h["port"], "GET", "/health")[0] == 200

    before = {c: sha256(h["db"]) for c, h in wal_pair.hosts.items()}
    rc, out = wal_pair.playbook("phase2.yml", log="phase2-refused")
    assert rc != 0
    for word in ("WAL-reset", "3.40.1", "dbfix_phase2_allow_wal_reset_bug", "3.51.3"):
        assert word in out, tail(out, 80)
    assert not wal_pair.shared.exists()
    for c, h in wal_pair.hosts.items():
        assert not h["db"].is_symlink() and sha256(h["db"]) == before[c]
        assert request(h["port"], "GET", "/health")[0] == 200

    rc, out = wal_pair.playbook("phase2.yml", extra={"dbfix_phase2_allow_wal_reset_bug": True}, log="phase2-allowed")
    assert rc == 0, tail(out, 80)
    for h in wal_pair.hosts.values():
        assert h["db"].is_symlink()
