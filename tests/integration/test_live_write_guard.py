# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 14: our own writes to a live WAL database and the WAL-reset bug, with real pm2, real SQLite files and real
processes (tests/integration/apps/holder.py keeps the database open with the host Python's SQLite 3.40.1).

The host's SQLite is asserted to be affected (Debian 12: 3.40.1); on a host with a fixed SQLite these tests fail
instead of silently testing nothing.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _live_write as L
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V
from ansible_collections.bluegreen.dbfix.plugins.modules import shared_db_plan, sqlite_migrate
from ansible_collections.bluegreen.dbfix.tests.integration import _pm2_helpers as H

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER = os.path.join(HERE, 'apps', 'holder.py')
HOLD = '\nc.execute("SELECT 1 FROM sqlite_master").fetchall()\nprint("ok", flush=True)\ntime.sleep(120)\n'
READER = 'import sqlite3,sys,time\nc=sqlite3.connect("file:%s?mode=ro", uri=True)' + HOLD
WRITER = 'import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1])' + HOLD


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_db(path, wal=True):
    c = sqlite3.connect(path)
    if wal:
        c.execute('PRAGMA journal_mode=WAL')
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT)')
    c.execute("INSERT INTO users(email) VALUES ('a@x')")
    c.commit()
    c.close()


def columns(path):
    c = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    try:
        return [r[1] for r in c.execute('PRAGMA table_info(users)')]
    finally:
        c.close()


@pytest.fixture
def estate(tmp_path):
    H.require_tools()
    assert V.affected(V.host_version()), 'these tests need a host SQLite with the WAL-reset bug (found %s)' % V.host_version()
    db = str(tmp_path / 'database.db')
    mig = tmp_path / 'migrations'
    mig.mkdir()
    (mig / '001_position.sql').write_text('ALTER TABLE users ADD COLUMN position TEXT;\n')
    with H.private_home() as home:
        yield dict(db=db, mig=str(mig), home=home, tmp=tmp_path)


def start_app(estate, name='app-blue'):
    H.pm2(estate['home'], 'start', HOLDER, '--name', name, '--interpreter', sys.executable, '--', estate['db'], 'hold', '0')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if L.writers(estate['db'])[0]:
            return
        time.sleep(0.2)
    raise AssertionError('the pm2 app never opened %s' % estate['db'])


def app(estate, name='app-blue'):
    return dict(name=name, pm2_home=estate['home'], executable=H.PM2)


def q(estate):
    return dict(quiesce=['app-blue'], pm2_home=estate['home'], pm2_executable=H.PM2)


def files(db):
    return {p: sha(p) for p in (db, db + '-wal') if os.path.exists(p)}


def test_write_refused_without_quiesce_and_nothing_changes(estate):
    make_db(estate['db'])
    start_app(estate)
    before = files(estate['db'])
    res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig']))
    assert res['failed']
    pid = H.jlist(estate['home'])[0]['pid']
    for word in (estate['db'], 'pid %d' % pid, V.host_version(), 'WAL-reset', '3.51.3', 'quiesce', 'Nothing was changed'):
        assert word in res['msg']
    assert files(estate['db']) == before
    assert 'position' not in columns(estate['db'])
    assert H.statuses(estate['home']) == {'app-blue': 'online'}


def test_check_mode_says_what_it_would_stop_and_stops_nothing(estate):
    make_db(estate['db'])
    start_app(estate)
    before = files(estate['db'])
    res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig'], **q(estate)), check=True)
    assert not res.get('failed'), res
    assert res['changed'] and res['live_write']['would_stop'] == ['app-blue'] and res['live_write']['stopped'] == []
    assert files(estate['db']) == before
    assert H.statuses(estate['home']) == {'app-blue': 'online'}


def test_quiesce_stops_the_app_then_writes(estate):
    make_db(estate['db'])
    start_app(estate)
    res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig'], **q(estate)))
    assert not res.get('failed'), res
    assert res['applied'] == ['001_position.sql']
    assert res['live_write']['needed'] and res['live_write']['stopped'] == ['app-blue'] and res['live_write']['holders'] == []
    assert H.statuses(estate['home']) == {'app-blue': 'stopped'}
    assert 'position' in columns(estate['db'])
    # second run: nothing to write, nothing stopped (the app is started again first, as phase 1's handler does)
    H.pm2(estate['home'], 'start', 'app-blue')
    start = time.monotonic()
    while not L.writers(estate['db'])[0] and time.monotonic() - start < 30:
        time.sleep(0.2)
    res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig'], **q(estate)))
    assert not res['changed'] and 'live_write' not in res
    assert H.statuses(estate['home']) == {'app-blue': 'online'}


def test_other_holder_left_refuses_and_restarts_the_app(estate):
    """The pm2 app is stopped, but a process outside pm2 still holds the file: refused, app started again, file unchanged."""
    make_db(estate['db'])
    start_app(estate)
    other = subprocess.Popen([sys.executable, '-c', WRITER, estate['db']], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'ok'
        before = files(estate['db'])
        res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig'], **q(estate), quiesce_timeout=2))
        assert res['failed']
        assert 'pid %d' % other.pid in res['msg'] and 'app-blue' in res['msg'] and 'started again' in res['msg']
        assert files(estate['db']) == before
        assert 'position' not in columns(estate['db'])
        assert H.statuses(estate['home']) == {'app-blue': 'online'}
    finally:
        other.kill()
        other.wait(timeout=30)


def test_read_only_holder_and_rollback_journal_db_need_no_quiesce(estate):
    make_db(estate['db'])
    reader = subprocess.Popen([sys.executable, '-c', READER % estate['db']], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == 'ok'
        res = H.run_module(sqlite_migrate, dict(path=estate['db'], migrations_dir=estate['mig']))
        assert not res.get('failed'), res
        assert res['live_write']['readers'] == [reader.pid] and not res['live_write']['needed']
    finally:
        reader.kill()
        reader.wait(timeout=30)
    # a rollback-journal database held by a writer: no WAL, no WAL-reset race
    db2 = str(estate['tmp'] / 'journal.db')
    make_db(db2, wal=False)
    other = subprocess.Popen([sys.executable, '-c', WRITER, db2], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'ok'
        res = H.run_module(sqlite_migrate, dict(path=db2, migrations_dir=estate['mig']))
        assert not res.get('failed'), res
        assert res['applied'] == ['001_position.sql'] and not res['live_write']['needed']
    finally:
        other.kill()
        other.wait(timeout=30)


def test_plan_preflight_reads_each_apps_sqlite(estate, tmp_path):
    """Phase 2's preflight: a Python app maps the host's libsqlite3 3.40.1; with a WAL base that is refused unless allowed."""
    make_db(estate['db'])
    start_app(estate)
    blue, green = str(tmp_path / 'blue.db'), str(tmp_path / 'green.db')
    for p in (blue, green):
        make_db(p)
        c = sqlite3.connect(p)
        c.execute('PRAGMA journal_mode=WAL')
        c.close()
    args = dict(blue=dict(path=blue), green=dict(path=green), apps=dict(blue=app(estate), green=app(estate)))
    res = H.run_module(shared_db_plan, args)
    assert res['failed']
    for word in ('app-blue', V.host_version(), '3.51.3', 'allow_wal_reset_bug'):
        assert word in res['msg'], res['msg']
    libs = res['sqlite_check']['blue']['libraries']
    assert libs and libs[0]['version'] == V.host_version() and libs[0]['affected']
    res = H.run_module(shared_db_plan, dict(args, allow_wal_reset_bug=True))
    assert not res.get('failed'), res
    assert res['sqlite_check']['blue']['affected'] and res['warnings']


def test_plan_preflight_passes_the_node_test_app(estate, tmp_path):
    """Our Node test app: better-sqlite3 links its own SQLite into its .node addon; measure what it really reports."""
    app_dir = os.path.join(os.path.dirname(HERE), 'app')
    port = H.free_port()
    H.pm2(estate['home'], 'start', os.path.join(app_dir, 'server.js'), '--name', 'node-blue', '--cwd', app_dir,
          env={'DB_PATH': estate['db'], 'PORT': str(port), 'APP_COLOR': 'blue'})
    make_db(estate['db'])
    blue, green = str(tmp_path / 'blue.db'), str(tmp_path / 'green.db')
    make_db(blue)
    make_db(green)
    args = dict(blue=dict(path=blue), green=dict(path=green),
                apps=dict(blue=dict(name='node-blue', pm2_home=estate['home'], executable=H.PM2)))
    deadline = time.monotonic() + 30
    while True:
        res = H.run_module(shared_db_plan, args)
        libs = (res.get('sqlite_check') or {}).get('blue', {}).get('libraries')
        if libs or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not res.get('failed'), res
    assert libs and libs[0]['kind'] == 'static' and libs[0]['path'].endswith('.node'), libs
    assert V.parse(libs[0]['version']) >= (3, 51, 3, 0) and not res['sqlite_check']['blue']['affected'], libs
