# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_switch through real ansible-playbook (local connection), real pm2 (own PM2_HOME, killed at
teardown), a real Python app (tests/integration/apps/holder.py: not Node, health answers only
{"status":"ok"}) and real SQLite files.

* pm2_home and the pm2 executable reach every module the step runs only through ``module_defaults`` (by module
  name and through the ``group/bluegreen.dbfix.dbfix`` action group): the task itself never names them.
* quiesce (base) -> activate -> undo: seeded, linked, the app proven (from /proc) to hold the shared DB, then put
  back byte-identical; a lazy app is reported as lazy, not failed; an app holding a forbidden copy fails.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PM2 = ROOT / 'tests' / 'tools' / 'node_modules' / '.bin' / 'pm2'
PLAYBOOK = ROOT / '.venv' / 'bin' / 'ansible-playbook'
HOLDER = HERE / 'apps' / 'holder.py'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def home():
    assert PM2.exists(), 'needs tests/tools/node_modules/.bin/pm2 (make node-tools)'
    h = tempfile.mkdtemp(prefix='pm2s-', dir='/tmp')
    yield h
    subprocess.run([str(PM2), 'kill'], env=dict(os.environ, PM2_HOME=h), capture_output=True, timeout=60, check=False)
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(Path(h, 'pm2.pid').read_text().strip()), signal.SIGKILL)
    shutil.rmtree(h, ignore_errors=True)


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def play(tmp_path, home, tasks, name='p', executable=None):
    """Run ``tasks`` in a play whose module_defaults alone carry pm2_home and the pm2 executable.

    The playbook is written as JSON (valid YAML). Returns (completed process, the last task's registered ``r``).
    """
    out = tmp_path / ('%s.json' % name)
    tasks = [*tasks, {'name': 'Save the result', 'ansible.builtin.copy': {'dest': str(out), 'content': '{{ r | to_json }}'},
                      'when': 'r is defined'}]
    defaults = {'pm2_home': home, 'executable': executable or str(PM2)}
    pb = tmp_path / ('%s.yml' % name)
    pb.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks,
                               'module_defaults': {'bluegreen.dbfix.pm2_service': defaults, 'bluegreen.dbfix.pm2_info': defaults}}]))
    # A PM2_HOME that does not exist: without the module_defaults no module could find the daemon.
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', PM2_HOME=str(tmp_path / 'no-pm2-here'))
    res = subprocess.run([str(PLAYBOOK), '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable, str(pb)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return res, (json.loads(out.read_text()) if out.exists() else {})


def app(tmp_path, mode, port):
    """A server folder with a real SQLite DB, the shared path, and the task that starts the app under pm2."""
    server = tmp_path / 'app' / 'server'
    server.mkdir(parents=True)
    db = server / 'database.db'
    with sqlite3.connect(db) as c:
        c.execute('CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)')
        c.executemany('INSERT INTO things VALUES (?, ?)', [(1, 'a'), (2, 'b')])
    c.close()
    shared_dir = tmp_path / 'shared'
    shared_dir.mkdir()
    start = {'name': 'Start the app', 'bluegreen.dbfix.pm2_service': {
        'name': 'holder', 'script': str(HOLDER), 'interpreter': sys.executable, 'args': [str(db), mode, str(port)], 'cwd': str(server),
        'health_url': 'http://127.0.0.1:%d/health' % port}}
    return db, shared_dir / 'shared.db', start


def step(db, shared, port, register='r', ignore=False, **options):
    args = {'db_path': str(db), 'shared_db': str(shared), 'pm2': {'name': 'holder'},
            'health': {'url': 'http://127.0.0.1:%d/health' % port, 'body_regex': '"status": *"ok"'}, **options}
    task = {'name': 'Step %s' % options['step'], 'bluegreen.dbfix.shared_db_switch': args, 'register': register}
    if ignore:
        task['ignore_errors'] = True
    return task


def test_switch_cycle_with_module_defaults_only(tmp_path, home):
    port = free_port()
    db, shared, start = app(tmp_path, 'hold', port)
    before = sha(db)
    tasks = [start, step(db, shared, port, 'q', step='quiesce', role='base'), step(db, shared, port, 'a', step='activate', role='base'),
             {'name': 'Keep both', 'ansible.builtin.set_fact': {'r': {'q': '{{ q }}', 'a': '{{ a }}'}}}]
    res, r = play(tmp_path, home, tasks, 'cycle')
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    q, a = r['q'], r['a']
    assert q['stopped']['changed'] and q['seeded']['file'] == str(shared) and q['linked']['changed']
    assert os.path.realpath(db) == str(shared) and Path(str(db) + '.OLD').is_file()
    assert a['open']['state'] == 'shared' and a['open']['shared_pids'] and a['started']['health']
    assert a['healthy_at'] > q['stopped_at']
    assert any(e.startswith('pm2_info') for e in a['executed'])
    # undo: the app's own database back, byte-identical, app running again.
    res, r = play(tmp_path, home, [step(db, shared, port, step='undo', unlink=True)], 'undo')
    assert res.returncode == 0, res.stdout[-4000:]
    assert r['unlinked']['changed'] and not db.is_symlink() and sha(db) == before and not Path(str(db) + '.OLD').exists()
    assert r['started']['status'] == 'online'


def test_lazy_app_is_reported_not_failed_and_forbidden_copy_fails(tmp_path, home):
    port = free_port()
    db, shared, start = app(tmp_path, 'lazy', port)
    shutil.copy(db, shared)
    res, r = play(tmp_path, home, [start, step(db, shared, port, step='verify')], 'lazy')
    assert res.returncode == 0, res.stdout[-4000:]
    assert r['open']['state'] == 'lazy' and r['changed'] is False
    assert 'opens its database lazily' in res.stdout + res.stderr
    # The same app restarted holding its own database, which the step is told it must not hold.
    subprocess.run([str(PM2), 'delete', 'holder'], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=60, check=True)
    start['bluegreen.dbfix.pm2_service']['args'][1] = 'hold'
    _res, r = play(tmp_path, home, [start, step(db, shared, port, ignore=True, step='verify', forbid_open=[str(db)])], 'forbid')
    assert r['failed'] and r['open']['state'] == 'other' and str(db) in r['msg'] and 'another copy' in r['msg']


def test_abort_reason_does_nothing(tmp_path, home):
    port = free_port()
    db, shared, start = app(tmp_path, 'hold', port)
    before = sha(db)
    _res, r = play(tmp_path, home, [start, step(db, shared, port, ignore=True, step='quiesce', role='base', abort_reason='peer failed')],
                   'abort')
    assert r['failed'] and 'peer failed' in r['msg'] and 'executed' not in r
    assert sha(db) == before and not shared.exists()


def test_switch_step_moves_an_old_shared_db_aside_with_its_wal(tmp_path, home):
    """step=switch (the base's whole window in one task): an unused old shared DB whose last writer left a -wal is
    moved aside WITH that -wal (a stale -wal left beside the newly seeded DB would be replayed into it); then
    seeded, linked, started, proven. An aside name that is taken fails naming it."""
    port = free_port()
    db, shared, start = app(tmp_path, 'hold', port)
    old_dir = tmp_path / 'old'
    old_dir.mkdir()
    writer = sqlite3.connect(old_dir / 'shared.db')
    writer.execute('PRAGMA journal_mode=wal')
    writer.execute('PRAGMA wal_autocheckpoint=0')
    writer.execute('CREATE TABLE old_things (x)')
    writer.execute("INSERT INTO old_things VALUES ('stale')")
    writer.commit()
    for suffix in ('', '-wal'):   # what a writer that died leaves: the DB and its frames
        shutil.copyfile(str(old_dir / 'shared.db') + suffix, str(shared) + suffix)
    writer.close()
    wal_sha = sha(str(shared) + '-wal')
    aside = str(shared) + '.aside.1'
    res, r = play(tmp_path, home, [start, step(db, shared, port, step='switch', role='base', aside=aside)], 'aside')
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert r['aside'] == aside and sha(aside + '-wal') == wal_sha
    assert any(e.startswith('rename: move the unused shared DB aside') for e in r['executed'])
    with sqlite3.connect('file:%s?mode=ro' % shared, uri=True) as c:
        assert [t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ['things']
    c.close()
    assert os.path.realpath(db) == str(shared) and r['open']['state'] == 'shared'
    # a second old shared DB, and the aside name already taken: named, and the taken file is not replaced
    res, r = play(tmp_path, home, [step(db, shared, port, step='undo', unlink=True)], 'undo')
    assert res.returncode == 0, res.stdout[-4000:]
    aside_sha = sha(aside)
    _res, r = play(tmp_path, home, [step(db, shared, port, ignore=True, step='switch', role='base', aside=aside)], 'taken')
    assert r['failed'] and aside in r['msg'] and 'already exists' in r['msg']
    assert sha(aside) == aside_sha and not db.is_symlink()


def test_switch_step_asks_pm2_nothing_between_stop_and_restart(tmp_path, home):
    """step=switch (the base): while the app is down - from `pm2 stop` to `pm2 restart` - no pm2 call is made (the
    stop is proven from /proc, the start plans from the list the stop left); the app ends on the shared DB."""
    port = free_port()
    db, shared, start = app(tmp_path, 'hold', port)
    log = tmp_path / 'pm2-calls.log'
    shim = tmp_path / 'pm2-logged'
    shim.write_text('#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n' % (log, PM2))
    shim.chmod(0o755)
    res, r = play(tmp_path, home, [start], 'start')
    assert res.returncode == 0, res.stdout[-4000:]
    log.unlink(missing_ok=True)
    res, r = play(tmp_path, home, [step(db, shared, port, step='switch', role='base')], 'switch', executable=str(shim))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    calls = log.read_text().splitlines()
    stop, restart = calls.index('stop holder'), calls.index('restart holder')
    assert calls[:stop] == ['jlist'] and stop + 1 == restart, calls
    assert r['stopped']['changed'] and r['seeded']['file'] == str(shared) and r['linked']['changed']
    assert r['open']['state'] == 'shared' and r['started']['status'] == 'online'
    assert os.path.realpath(db) == str(shared)
