# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_link run as the app's own (non-root) user, the way Ansible runs it without ``become``.

Real processes with a real uid switch: the module runs as uid 4321 through the
system Python (the test venv lives under /root, which that user cannot enter),
and so does the app process holding the database. Needs root to switch users.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest
from _fourstep import db_held_open

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UID = GID = 4321
SYSTEM_PYTHON = '/usr/bin/python3'
SITE = os.path.join(ROOT, '.venv', 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages')


@pytest.fixture(autouse=True)
def _needs_root_and_system_python():
    """A missing prerequisite fails the test (never a skip)."""
    assert os.geteuid() == 0, 'switching to the app user needs root'
    assert os.path.exists(SYSTEM_PYTHON), 'no system python3 the app user can run'


# The app user: no supplementary groups (subprocess drops them with extra_groups=[]).
AS_APP_USER = {'user': UID, 'group': GID, 'extra_groups': []}


def make_db(path, rows):
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)')
    conn.executemany('INSERT INTO users (name) VALUES (?)', [(r,) for r in rows])
    conn.commit()
    conn.close()
    os.chown(path, UID, GID)
    return path


@pytest.fixture
def site():
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700 and the app user must reach it.
    root = tempfile.mkdtemp(prefix='dbfix-nonroot-', dir='/tmp')
    os.chmod(root, 0o755)
    app = os.path.join(root, 'app')
    os.mkdir(app)
    os.chown(app, UID, GID)
    shared_dir = os.path.join(root, 'shared')
    os.mkdir(shared_dir)
    os.chown(shared_dir, UID, GID)
    yield {
        'root': root,
        'path': make_db(os.path.join(app, 'database.db'), ['own']),
        'shared': make_db(os.path.join(shared_dir, 'database-shared.db'), ['shared']),
    }
    shutil.rmtree(root)


def run_as_app_user(site, **params):
    args = {'path': site['path'], 'shared': site['shared']}
    args.update(params)
    argfile = os.path.join(site['root'], 'args.json')
    with open(argfile, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': '%s:%s' % (SITE, os.path.join(ROOT, '.collections')), 'HOME': site['root']}
    proc = subprocess.run([SYSTEM_PYTHON, '-m', 'ansible_collections.bluegreen.dbfix.plugins.modules.shared_db_link', argfile],
                          env=env, cwd=site['root'], **AS_APP_USER, capture_output=True, text=True, timeout=60, check=False)
    return json.loads(proc.stdout)


def test_app_user_links_and_unlinks_and_is_refused_while_its_app_runs(site):
    path, old = site['path'], site['path'] + '.OLD'
    with db_held_open(path, SYSTEM_PYTHON, **AS_APP_USER) as holder:
        r = run_as_app_user(site)
        assert r.get('failed') is True
        assert 'pid %d' % holder.pid in r['msg']  # the user's own app is visible in /proc
        assert not os.path.islink(path) and not os.path.exists(old)

    r = run_as_app_user(site)
    assert not r.get('failed'), r
    assert r['changed'] is True and r['old_method'] == 'hardlink'
    # Root's processes cannot be inspected by this user: said, not silently skipped.
    # (ansible-core 2.19 returns warnings as structured summaries when a module runs directly.)
    assert 'could not be inspected' in json.dumps(r.get('warnings')), r
    assert os.readlink(path) == site['shared']
    assert os.lstat(path).st_uid == UID and os.stat(old).st_uid == UID

    r = run_as_app_user(site, state='unlinked')
    assert not r.get('failed'), r
    assert r['changed'] is True and not os.path.islink(path) and not os.path.exists(old)


def test_app_user_is_refused_for_a_shared_folder_it_cannot_write(site):
    shared_dir = os.path.dirname(site['shared'])
    os.chown(shared_dir, 0, 0)
    os.chmod(shared_dir, 0o755)
    r = run_as_app_user(site)
    assert r.get('failed') is True
    assert shared_dir in r['msg'] and 'uid %d' % UID in r['msg'] and 'mode 0755' in r['msg']
    assert not os.path.islink(site['path'])
