# SPDX-License-Identifier: GPL-3.0-or-later
"""check.yml (the monitor's checks, read-only) must not create ``-wal``/``-shm`` beside a closed WAL database.

Found by an outside user: an app in WAL mode that is stopped (or opens its DB lazily and has not yet) leaves a
closed WAL database with no side files. ``check.yml`` opened it with a plain ``mode=ro`` connection
(``plugins/module_utils/_monitor.py`` ``_connect_ro``), and SQLite created an empty ``-wal`` and a 32 KiB
``-shm`` that stay after it closes - owned by whoever ran the check (root for a system timer), which can
leave the app's own user unable to write its database. The phase 2 readers already avoid it
(``_sqlite_compare.Source``: ``immutable=1`` for a closed WAL DB).

Real parts only: the foreign Python app of test_foreign_app.py under real pm2 (own PM2_HOME under tmp_path,
killed at teardown), real SQLite files, ``ansible-playbook`` with local connections. No mocks.
"""
from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest
from test_foreign_app import PM2, VENV_BIN, Foreign, sha256, tail


@pytest.fixture
def estate(tmp_path):
    for tool in (PM2, VENV_BIN / "ansible-playbook"):
        if not tool.exists():
            pytest.fail(f"{tool} missing (make node-tools / make venv): this test needs the real tool")
    if shutil.which("python3") is None:
        pytest.fail("python3 not on PATH: pm2 runs the foreign app with interpreter python3")
    f = Foreign(tmp_path / "estate")
    try:
        f.build()
        yield f
    finally:
        f.kill()


def test_check_playbook_leaves_no_side_files_beside_a_closed_wal_database(estate, tmp_path):
    green = estate.hosts["green"]
    estate.pm2("stop", green["name"])
    with contextlib.closing(sqlite3.connect(green["db"])) as c:
        assert c.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
    folder = green["db"].parent
    before = sorted(p.name for p in folder.iterdir())
    assert before == ["notes.sqlite3"], before
    digest = sha256(green["db"])

    # Its own XDG_DATA_HOME: check.yml ignores dbfix_report_dir (test_outsider_check_report_dir.py).
    rc, out = estate.playbook("check.yml", log="check", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert rc == 0, tail(out)
    assert sorted(p.name for p in folder.iterdir()) == before, "check.yml created files beside the app's database"
    assert sha256(green["db"]) == digest
