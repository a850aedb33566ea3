# SPDX-License-Identifier: GPL-3.0-or-later
"""Phase 1 run again once both colors share one database (a new release after phase 2): its SQL migrations run
with sqlite_migrate's policy expand (dbfix_phase1_migrations_policy: auto). A migration that drops a column is
refused naming the statement, and every file of the estate (databases, .env files, state files, the migrations)
keeps its sha256; an expanding one is applied to the shared DB once.

Real parts: the foreign notes app (Python) under real pm2, real SQLite files, ansible-playbook with local
connections; the pm2 daemon is killed in teardown (the `foreign` fixture).
"""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

from ansible_collections.bluegreen.dbfix.tests.integration.test_foreign_app import foreign, request, tail  # noqa: F401  # pylint: disable=unused-import


def files_of(f) -> dict[str, str]:
    """sha256 of every regular file of the estate, except pm2's own home and Ansible's temp/log folders."""
    skip = (f.pm2_home, f.root / "ansible-tmp", f.logs, f.reports)
    out = {}
    for p in sorted(f.root.rglob("*")):
        if any(p == s or s in p.parents for s in skip) or p.is_symlink() or not p.is_file():
            continue
        out[str(p.relative_to(f.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def columns(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return [r[1] for r in c.execute("PRAGMA table_info(notes)")]


def test_phase1_on_a_shared_db_refuses_a_dropping_migration(foreign, tmp_path):  # noqa: F811
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "001_pinned.sql").write_text("ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n")
    dir_mode = {"dbfix_phase1_migrations": "dir", "dbfix_phase1_migrations_dir": str(mig)}
    rc, out = foreign.playbook("phase1.yml", extra=dir_mode, log="phase1")
    assert rc == 0, tail(out, 80)
    rc, out = foreign.playbook("phase2.yml", log="phase2")
    assert rc == 0, tail(out, 80)
    for h in foreign.hosts.values():
        assert h["db"].is_symlink() and h["db"].resolve() == foreign.shared.resolve()
    assert "pinned" in columns(foreign.shared)

    # The next release: a migration that drops what the color still running the old release reads.
    (mig / "002_drop_created.sql").write_text("ALTER TABLE notes DROP COLUMN created;\n")
    before = files_of(foreign)
    assert any(k.endswith("notes-shared.sqlite3") for k in before)
    rc, out = foreign.playbook("phase1.yml", extra=dir_mode, log="phase1-refused")
    assert rc != 0, tail(out, 80)
    assert "policy=expand refuses migration" in out, tail(out, 80)
    assert "002_drop_created.sql" in out and "DROP COLUMN created" in out, tail(out, 80)
    after = files_of(foreign)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == set(), changed
    assert "created" in columns(foreign.shared)
    for h in foreign.hosts.values():
        assert request(h["port"], "GET", "/health")[0] == 200

    # An expansion goes through on the shared DB (same policy, auto).
    (mig / "002_drop_created.sql").unlink()
    (mig / "002_title.sql").write_text("ALTER TABLE notes ADD COLUMN title TEXT;\n")
    rc, out = foreign.playbook("phase1.yml", extra=dir_mode, log="phase1-expand")
    assert rc == 0, tail(out, 80)
    assert {"created", "pinned", "title"} <= set(columns(foreign.shared))


def test_an_explicit_contract_policy_lets_a_drop_through_on_the_shared_db(foreign, tmp_path):  # noqa: F811
    """The operator's explicit choice wins over auto (the contract step, taken after every color runs the release):
    a column no release reads any more is dropped from the shared DB."""
    mig = tmp_path / "migrations"
    mig.mkdir()
    dir_mode = {"dbfix_phase1_migrations": "dir", "dbfix_phase1_migrations_dir": str(mig)}
    rc, out = foreign.playbook("phase2.yml", log="phase2")
    assert rc == 0, tail(out, 80)
    (mig / "001_scratch.sql").write_text("ALTER TABLE notes ADD COLUMN scratch TEXT;\n")
    rc, out = foreign.playbook("phase1.yml", extra=dir_mode, log="phase1-expand")
    assert rc == 0, tail(out, 80)
    assert "scratch" in columns(foreign.shared)
    (mig / "002_drop_scratch.sql").write_text("ALTER TABLE notes DROP COLUMN scratch;\n")
    rc, out = foreign.playbook("phase1.yml", extra={**dir_mode, "dbfix_phase1_migrations_policy": "contract"},
                               log="phase1-contract")
    assert rc == 0, tail(out, 80)
    assert "scratch" not in columns(foreign.shared)
