# SPDX-License-Identifier: GPL-3.0-or-later
"""_live_write: when a write of ours needs the guard, and which holders count (real processes, real SQLite files)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _live_write as L

HOLD = '\nc.execute("SELECT 1 FROM sqlite_master").fetchall()\nprint("ok", flush=True)\nsys.stdin.read()\n'


@pytest.mark.parametrize(('wal', 'version', 'needed'), [
    (True, '3.40.1', True), (True, '3.51.2', True), (True, '3.44.6', False), (True, '3.50.7', False),
    (True, '3.51.3', False), (True, '3.53.2', False), (False, '3.40.1', False), (True, '3.6.23', False),
])
def test_needs_guard_truth_table(wal, version, needed):
    assert L.needs_guard(wal, version) is needed


def test_guard_with_a_fixed_sqlite_stops_nothing(tmp_path):
    """A host SQLite without the bug: the guard answers at once, even with a writer holding the WAL database."""
    db = str(tmp_path / 'a.db')
    c = sqlite3.connect(db)
    c.execute('PRAGMA journal_mode=WAL')
    c.execute('CREATE TABLE t(x)')
    c.commit()
    info, msg = L.guard(None, db, db, is_wal=True, apps=[], timeout=0, check_mode=False, version='3.51.3')
    assert msg is None and not info['needed'] and info['host_sqlite'] == '3.51.3'
    c.close()


def test_writers_tells_read_write_from_read_only_holders(tmp_path):
    db = str(tmp_path / 'a.db')
    c = sqlite3.connect(db)
    c.execute('PRAGMA journal_mode=WAL')
    c.execute('CREATE TABLE t(x)')
    c.commit()
    c.close()
    rw = subprocess.Popen([sys.executable, '-c', 'import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])' + HOLD, db],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ro = subprocess.Popen([sys.executable, '-c', 'import sqlite3,sys\nc=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True)' + HOLD, db],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert rw.stdout.readline().strip() == 'ok' and ro.stdout.readline().strip() == 'ok'
        holders, readers, _unreadable = L.writers(db)
        assert [h['pid'] for h in holders] == [rw.pid] and readers == [ro.pid]
        info, msg = L.guard(None, db, db, is_wal=True, apps=[], timeout=0, check_mode=False, version='3.40.1')
        assert info['needed'] and info['holders'] == [rw.pid] and 'pid %d' % rw.pid in msg and '3.40.1' in msg
    finally:
        for p in (rw, ro):
            p.kill()
            p.wait(timeout=30)


def test_sqlite_migrate_refuses_bad_quiesce_settings_and_changes_nothing(tmp_path):
    import hashlib

    from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
    from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module
    db = str(tmp_path / 'a.db')
    c = sqlite3.connect(db)
    c.execute('CREATE TABLE t(x)')
    c.commit()
    c.close()
    (tmp_path / 'm').mkdir()
    (tmp_path / 'm' / '001_a.sql').write_text('ALTER TABLE t ADD COLUMN y TEXT;\n')
    before = hashlib.sha256(open(db, 'rb').read()).hexdigest()
    res = run_module(sqlite_migrate, dict(path=db, migrations_dir=str(tmp_path / 'm'), quiesce_timeout=-1))
    assert res['failed'] and 'quiesce_timeout=-1' in res['msg'] and db in res['msg']
    res = run_module(sqlite_migrate, dict(path=db, migrations_dir=str(tmp_path / 'm'), quiesce=[' ']))
    assert res['failed'] and 'empty name' in res['msg']
    assert hashlib.sha256(open(db, 'rb').read()).hexdigest() == before
    # the same database, nobody else holding it: applied, nothing stopped
    res = run_module(sqlite_migrate, dict(path=db, migrations_dir=str(tmp_path / 'm'), quiesce=['not-running']))
    assert not res.get('failed') and res['applied'] == ['001_a.sql'] and res['live_write']['stopped'] == []


def test_no_pm2_daemon_is_started_by_asking(tmp_path):
    """An app in a PM2_HOME without a daemon is 'not running', and asking does not spawn a God daemon there."""
    home = tmp_path / 'pm2home'
    home.mkdir()
    assert L.app_process(None, dict(name='x', pm2_home=str(home), executable='pm2')) is None
    assert L.app_sqlite(None, dict(name='x', pm2_home=str(home), executable='pm2')) == (None, [])
    assert not (home / 'pm2.pid').exists() and list(home.iterdir()) == []
