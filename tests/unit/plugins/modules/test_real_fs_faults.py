# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad inputs from the reliability catalogue that need a real filesystem in a bad state.

Each case is produced for real (no mocks): a tmpfs mounted read-only or filled to the last byte, a
database locked by another process, a pm2 that is not there. Each asserts the message (path, what was
found, what to do) and that every file is byte-identical afterwards, mode and mtime included.
Mounting needs root (the tests skip otherwise, saying so).
"""
from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys

import pytest

from ansible_collections.bluegreen.dbfix.tests._fsfaults import fill, remount_ro, tmpfs, tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module


def run(module, args, check=False):
    return run_module(importlib.import_module('ansible_collections.bluegreen.dbfix.plugins.modules.' + module), args, check=check)


def state(d):
    return tree(d, meta=True)


ENV = b'# app settings\nPORT=3000\nJWT_SECRET="s3cret value"\nALLOWED_ORIGINS=http://localhost:3000\n'


def test_dotenv_set_on_a_read_only_filesystem(tmp_path):
    with tmpfs(tmp_path / 'ro') as ro:
        env = ro / '.env'
        env.write_bytes(ENV)
        os.chmod(env, 0o600)
        remount_ro(ro)
        before = state(ro)
        r = run('dotenv_set', {'path': str(env), 'key': 'ALLOWED_ORIGINS', 'value': 'https://app.example.com'})
        assert r['failed']
        assert str(env) in r['msg'] and 'Read-only file system' in r['msg'] and 'remount' in r['msg'], r['msg']
        assert state(ro) == before


@pytest.mark.parametrize('backup', [False, True])
def test_dotenv_set_on_a_full_filesystem(tmp_path, backup):
    with tmpfs(tmp_path / 'full', 'size=256k') as full:
        env = full / '.env'
        env.write_bytes(ENV)
        os.chmod(env, 0o640)
        fill(full)
        before = state(full)
        r = run('dotenv_set', {'path': str(env), 'key': 'ALLOWED_ORIGINS', 'value': 'https://app.example.com,' * 200,
                               'backup': backup})
        assert r['failed']
        assert str(env) in r['msg'] and 'No space left on device' in r['msg'] and 'free space' in r['msg'], r['msg']
        assert state(full) == before            # the .env untouched, no temp file left behind


def _db(path, rows=50):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT)')
    c.executemany('INSERT INTO users(email) VALUES (?)', [('u%d@x' % i,) for i in range(rows)])
    c.close()


def test_sqlite_migrate_on_a_full_filesystem(tmp_path):
    """A migration that needs more room than the disk has: SQLite says the disk is full, the transaction (and its
    tracking row) is rolled back and the database file is byte-identical."""
    migs = tmp_path / 'migrations'
    migs.mkdir()
    (migs / '001_grow.sql').write_text('CREATE TABLE blob(x);\n'
                                       'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)\n'
                                       'INSERT INTO blob SELECT randomblob(1000) FROM n;\n')
    with tmpfs(tmp_path / 'full', 'size=512k') as full:
        db = full / 'database.db'
        _db(db)
        # the migrator creates its tracking table first: let it, so only the big migration meets the full disk
        r = run('sqlite_migrate', {'path': str(db), 'migrations_dir': str(migs), 'target': 0})
        assert not r.get('failed'), r
        fill(full)
        before = state(full)
        r = run('sqlite_migrate', {'path': str(db), 'migrations_dir': str(migs)})
        assert r['failed']
        assert '001_grow.sql' in r['msg'] and 'disk is full' in r['msg'] and str(db) in r['msg'], r['msg']
        assert 'free space' in r['msg'] and str(full) in r['msg'], r['msg']
        os.unlink(full / 'filler')
        after = state(full)
        before.pop('filler')
        assert after == before
        c = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        try:
            assert c.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
            assert c.execute('SELECT count(*) FROM users').fetchone()[0] == 50
            assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'blob'").fetchone()[0] == 0
        finally:
            c.close()


HOLDER = r'''
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN EXCLUSIVE')
c.execute("INSERT INTO users(email) VALUES ('locker')")
print('ready', flush=True)
time.sleep(60)
'''


def test_sqlite_info_on_a_locked_database_changes_nothing(tmp_path):
    db = tmp_path / 'database.db'
    _db(db)
    p = subprocess.Popen([sys.executable, '-c', HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'ready'
        before = state(tmp_path)
        r = run('sqlite_info', {'path': str(db), 'busy_timeout': 300})
        assert r['failed']
        assert str(db) in r['msg'] and 'locked' in r['msg'].lower(), r['msg']
        assert state(tmp_path) == before
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def app(tmp_path):
    """An app folder as pm2 would run it, plus an empty PM2_HOME."""
    d = tmp_path / 'TimeTracking-BLUE' / 'server'
    d.mkdir(parents=True)
    (d / 'server.js').write_text('require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT)\n')
    (d / '.env').write_bytes(ENV)
    os.chmod(d / '.env', 0o600)
    (tmp_path / 'pm2').mkdir()
    return tmp_path


@pytest.mark.parametrize('state_', ['started', 'restarted', 'stopped'])
def test_pm2_absent_changes_nothing(app, state_):
    before = state(app)
    r = run('pm2_service', {'name': 'timetracking-blue', 'state': state_, 'executable': str(app / 'no' / 'pm2'),
                            'pm2_home': str(app / 'pm2'), 'script': 'server.js', 'cwd': str(app / 'TimeTracking-BLUE' / 'server')})
    assert r['failed']
    assert str(app / 'no' / 'pm2') in r['msg'] and 'npm install -g pm2' in r['msg'], r['msg']
    assert state(app) == before
