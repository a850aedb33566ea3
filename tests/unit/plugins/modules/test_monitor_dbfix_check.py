# SPDX-License-Identifier: GPL-3.0-or-later
"""The dbfix_check module run whole (as Ansible would), on a real pair of files: rows, problems, check mode,
bad options refused with a message and nothing touched."""
from __future__ import annotations

import sqlite3

from _fsfaults import tree

from ansible_collections.bluegreen.dbfix.plugins.modules import dbfix_check
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(dbfix_check)


def _pair(tmp_path):
    shared = tmp_path / 'database-shared.db'
    conn = sqlite3.connect(str(shared))
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)')
    conn.commit()
    conn.close()
    db = tmp_path / 'green' / 'database.db'
    db.parent.mkdir()
    db.symlink_to(shared)
    return db, shared


def test_rows_and_problems(tmp_path):
    db, shared = _pair(tmp_path)
    before = tree(tmp_path)
    for check in (False, True):
        res = run({'pair': 'p', 'color': 'green', 'path': str(db), 'shared_db': str(shared),
                   'expect_columns': {'users': ['id', 'email', 'position']}}, check=check)
        assert res['changed'] is False and 'failed' not in res, res
        by = {r['check']: r for r in res['rows']}
        assert list(by) == ['schema', 'migrations', 'quick_check', 'shared_link', 'process', 'open_files', 'sqlite_library',
                            'wal_size', 'disk_free']
        assert by['schema']['state'] == 'fail' and by['schema']['detail'] == 'table users lacks column position'
        assert by['shared_link']['state'] == 'ok' and by['quick_check']['state'] == 'ok'
        assert by['process']['state'] == 'fail'  # neither pm2_name nor pid_file
        assert res['problems'] == 2
        assert res['host_sqlite']['version'] == sqlite3.sqlite_version
    # Like every SQLite reader of a WAL database, the checks may create an empty -wal; nothing else changes.
    empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    after = {k: v for k, v in tree(tmp_path).items() if not (k.endswith('-wal') and v == empty)}
    assert after == {k: v for k, v in before.items() if not (k.endswith('-wal') and v == empty)}, 'the checks only read'


def test_bad_option_fails_with_a_message(tmp_path):
    db, _shared = _pair(tmp_path)
    before = tree(tmp_path)
    res = run({'pair': 'p', 'color': 'green', 'path': str(db)})
    assert res['failed'] is True and 'expect_shared is true but shared_db is not set' in res['msg'] and 'nothing was checked' in res['msg']
    res = run({'pair': 'p', 'color': 'green', 'path': 'relative.db', 'expect_shared': False})
    assert res['failed'] is True and 'db_path must be an absolute path' in res['msg']
    res = run({'pair': 'p', 'color': 'green', 'path': str(db), 'expect_shared': False, 'expect_columns': {'users': 'id'}})
    assert res['failed'] is True and 'expect_columns must map' in res['msg']
    assert tree(tmp_path) == before
