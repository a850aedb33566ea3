# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_link through real ansible-playbook runs on localhost (real files, real processes).

The four-step pattern for both states: check mode (changed, and provably nothing
happened), real run (changed, and the effect), check mode again (not changed),
real run again (not changed and nothing touched).
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

PLAYBOOK = """\
---
- name: Drive shared_db_link once
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Link or unlink the app database
      bluegreen.dbfix.shared_db_link:
        path: "{{ db_path }}"
        shared: "{{ shared_path }}"
        state: "{{ link_state }}"
      register: link_result

    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ link_result | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
      diff: false
"""


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[p] = ('dir', stat.S_IMODE(st.st_mode), st.st_ino)
            elif stat.S_ISLNK(st.st_mode):
                out[p] = ('link', os.readlink(p), st.st_ino, st.st_uid)
            else:
                with open(p, 'rb') as f:
                    out[p] = ('file', hashlib.sha256(f.read()).hexdigest(), st.st_ino, st.st_nlink, st.st_size,
                              st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def make_db(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)')
    conn.executemany('INSERT INTO users (name) VALUES (?)', [(r,) for r in rows])
    conn.commit()
    conn.close()
    return str(path)


@pytest.fixture
def site(tmp_path):
    data = tmp_path / 'data'
    app = data / 'TimeTracking-Clean' / 'server'
    app.mkdir(parents=True)
    db = make_db(app / 'database.db', ['green-1', 'green-2'])
    shared = make_db(data / 'database-shared.db', ['shared-1'])
    pb = tmp_path / 'link.yml'
    pb.write_text(PLAYBOOK)
    return {'tmp': tmp_path, 'data': str(data), 'path': db, 'shared': shared, 'old': db + '.OLD', 'playbook': str(pb), 'n': 0}


def play(site, state, check=False, expect_rc=0):
    """Run the playbook; return (module result, output)."""
    site['n'] += 1
    result_file = site['tmp'] / ('result-%d.json' % site['n'])
    cmd = [PLAYBOOK_BIN, '-i', 'localhost,', site['playbook'],
           '-e', 'db_path=%s' % site['path'], '-e', 'shared_path=%s' % site['shared'],
           '-e', 'link_state=%s' % state, '-e', 'result_file=%s' % result_file, '--diff']
    if check:
        cmd.append('--check')
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect_rc, out
    if expect_rc:
        return None, out
    with open(result_file) as f:
        return json.load(f), out


def test_linked_then_unlinked_four_steps(site):
    path, old, shared = site['path'], site['old'], site['shared']
    with open(path, 'rb') as f:
        original = hashlib.sha256(f.read()).hexdigest()

    # linked: check -> real -> check -> real
    before = snapshot(site['data'])
    r, out = play(site, 'linked', check=True)
    assert r['changed'] is True and r['previous'] == 'file' and r['target'] == shared
    assert 'symlink -> %s' % shared in out  # --diff shows what would change
    assert snapshot(site['data']) == before

    r, _out = play(site, 'linked')
    assert r['changed'] is True and r['old_file'] == old and r['old_method'] == 'hardlink'
    assert os.readlink(path) == shared
    with open(old, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == original
    linked = snapshot(site['data'])

    r, _out = play(site, 'linked', check=True)
    assert r['changed'] is False and r['previous'] == 'link:%s' % shared
    r, _out = play(site, 'linked')
    assert r['changed'] is False
    assert snapshot(site['data']) == linked

    # unlinked: check -> real -> check -> real
    r, _out = play(site, 'unlinked', check=True)
    assert r['changed'] is True and r['target'] is None
    assert snapshot(site['data']) == linked

    r, _out = play(site, 'unlinked')
    assert r['changed'] is True and r['previous'] == 'link:%s' % shared
    assert not os.path.islink(path) and not os.path.lexists(old)
    assert snapshot(site['data']) == before  # same inode, bytes, mode and mtime as before linking
    restored = snapshot(site['data'])

    r, _out = play(site, 'unlinked', check=True)
    assert r['changed'] is False and r['previous'] == 'file'
    r, _out = play(site, 'unlinked')
    assert r['changed'] is False
    assert snapshot(site['data']) == restored


def test_playbook_fails_naming_the_process_that_holds_the_db(site):
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent('''
        import sqlite3, sys, time
        c = sqlite3.connect(sys.argv[1])
        c.execute('SELECT count(*) FROM sqlite_master').fetchone()
        print('ready', flush=True)
        time.sleep(600)
    '''), site['path']], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'ready'
        before = snapshot(site['data'])
        _res, out = play(site, 'linked', expect_rc=2)
        assert 'pid %d' % holder.pid in out and site['path'] in out
        assert snapshot(site['data']) == before
    finally:
        holder.kill()
        holder.wait()
