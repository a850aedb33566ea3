# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_info against real pm2 running a real Python app (not Node: the module must not care) that holds a real
SQLite file open, through a symlink, from a child process, or not at all (lazy). Own PM2_HOME per test, killed
at teardown. Nothing is mocked: the open files come from this machine's /proc.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bluegreen.dbfix.plugins.modules import pm2_info

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PM2 = os.path.join(ROOT, 'tests', 'tools', 'node_modules', '.bin', 'pm2')
HOLDER = os.path.join(HERE, 'apps', 'holder.py')


def run(args, check=False):
    buf = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check)), contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        pm2_info.main()
    return json.loads(buf.getvalue())


@pytest.fixture
def home():
    assert os.path.exists(PM2), 'needs tests/tools/node_modules/.bin/pm2 (make node-tools)'
    h = tempfile.mkdtemp(prefix='pm2i-', dir='/tmp')
    yield h
    subprocess.run([PM2, 'kill'], env=dict(os.environ, PM2_HOME=h), capture_output=True, timeout=60, check=False)
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(h, 'pm2.pid')) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    shutil.rmtree(h, ignore_errors=True)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / 'app.db'
    with sqlite3.connect(path) as c:
        c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY)')
    return path


SECRET = 'pm2-info-Secret-93b1'


def start(home, name, db_arg, mode):
    subprocess.run([PM2, 'start', HOLDER, '--name', name, '--interpreter', sys.executable, '--', str(db_arg), mode, '0'],
                   env=dict(os.environ, PM2_HOME=home, APP_TOKEN=SECRET), capture_output=True, timeout=120, check=True)


def wait_holding(home, name, path, want=True, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = run({'name': [name], 'pm2_home': home, 'executable': PM2, 'holds': [str(path)]})
        proc = r['processes'][0]
        if bool(proc['holds'][str(path)]) == want or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_no_daemon_means_no_process_and_none_is_started(tmp_path):
    home = str(tmp_path / 'pm2')
    r = run({'name': ['x'], 'pm2_home': home, 'executable': PM2})
    assert r['changed'] is False and r['daemon_running'] is False and r['processes'] == [] and r['missing'] == ['x']
    assert not os.path.exists(os.path.join(home, 'pm2.pid'))


def test_app_holding_the_db_is_seen_with_its_facts(home, db):
    start(home, 'holder', db, 'hold')
    r = wait_holding(home, 'holder', db)
    proc = r['processes'][0]
    assert r['daemon_running'] is True and r['missing'] == []
    assert proc['status'] == 'online' and proc['pid'] and isinstance(proc['pm_id'], int) and proc['restarts'] == 0
    assert proc['holds'][str(db)] == [proc['pid']]
    st = os.stat(db)
    assert any(f['ino'] == st.st_ino and f['dev'] == st.st_dev for f in proc['open_files'])
    assert SECRET not in json.dumps(r) and 'APP_TOKEN' not in json.dumps(r)  # never the environment
    # Asked for, the names (never the values) of pm2's saved environment: what would override the app's .env.
    named = run({'name': ['holder'], 'pm2_home': home, 'executable': PM2, 'open_files': False, 'env_keys': True})
    assert 'APP_TOKEN' in named['processes'][0]['env_keys'] and SECRET not in json.dumps(named)
    assert 'open_files' not in named['processes'][0]


def test_file_opened_through_a_symlink_is_found_by_inode(home, db, tmp_path):
    link = tmp_path / 'database.db'
    link.symlink_to(db)
    start(home, 'linked', link, 'hold')
    r = wait_holding(home, 'linked', db)
    assert r['processes'][0]['holds'][str(db)], r


def test_a_child_process_holding_the_db_counts(home, db):
    start(home, 'parent', db, 'child')
    r = wait_holding(home, 'parent', db)
    proc = r['processes'][0]
    holders = proc['holds'][str(db)]
    assert holders and proc['pid'] not in holders and set(holders) <= set(proc['pids'])


def test_lazy_app_holds_nothing_and_other_files_are_not_claimed(home, db, tmp_path):
    other = tmp_path / 'other.db'
    other.write_bytes(db.read_bytes())
    start(home, 'lazy', db, 'lazy')
    time.sleep(1)
    r = run({'name': ['lazy', 'ghost'], 'pm2_home': home, 'executable': PM2, 'holds': [str(db), str(other), str(tmp_path / 'missing.db')],
             'open_files': False}, check=True)
    proc = r['processes'][0]
    assert proc['holds'] == {str(db): [], str(other): [], str(tmp_path / 'missing.db'): []}
    assert 'open_files' not in proc and r['missing'] == ['ghost'] and r['changed'] is False


def test_missing_executable_fails_naming_it(home, tmp_path):
    subprocess.run([PM2, 'ping'], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=60, check=True)
    r = run({'name': ['x'], 'pm2_home': home, 'executable': str(tmp_path / 'nope' / 'pm2')})
    assert r['failed'] and str(tmp_path / 'nope' / 'pm2') in r['msg']
