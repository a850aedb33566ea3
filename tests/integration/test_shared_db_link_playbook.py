# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_link through real ansible-playbook runs on localhost (real files, real processes).

The four-step pattern for both states (``_fourstep.four_step_runs``, one run per step):
check mode (changed, and provably nothing happened), real run (changed, and the
effect), check mode again (not changed), real run again (not changed and nothing
touched).
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat

import pytest
from _fourstep import db_held_open, four_step_runs, run_playbook

PLAYBOOK = """\
---
- name: Drive shared_db_link once
  hosts: localhost
  connection: local
  gather_facts: false
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
    evars = {'db_path': site['path'], 'shared_path': site['shared'], 'link_state': state, 'result_file': str(result_file)}
    out = run_playbook(site['playbook'], evars, '--diff', *(['--check'] if check else []), expect_rc=expect_rc, timeout=300)
    if expect_rc:
        return None, out
    with open(result_file) as f:
        return json.load(f), out


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def four_steps(site, state):
    """check -> real -> check -> real for ``state``, the whole data dir compared between the steps."""
    return four_step_runs(lambda check: play(site, state, check=check), lambda: snapshot(site['data']))


def test_linked_then_unlinked_four_steps(site):
    path, old, shared = site['path'], site['old'], site['shared']
    original = sha(path)
    before = snapshot(site['data'])

    linked = four_steps(site, 'linked')
    step1, step2, step3, _step4 = linked.results
    assert step1['previous'] == 'file' and step1['target'] == shared
    assert 'symlink -> %s' % shared in linked.outputs[0]  # --diff shows what would change
    assert step2['old_file'] == old and step2['old_method'] == 'hardlink'
    assert os.readlink(path) == shared
    assert sha(old) == original
    assert step3['previous'] == 'link:%s' % shared

    unlinked = four_steps(site, 'unlinked')
    step1, step2, step3, _step4 = unlinked.results
    assert step1['target'] is None
    assert step2['previous'] == 'link:%s' % shared
    assert not os.path.islink(path) and not os.path.lexists(old)
    assert unlinked.state == before  # same inode, bytes, mode and mtime as before linking
    assert step3['previous'] == 'file'


def test_playbook_fails_naming_the_process_that_holds_the_db(site):
    with db_held_open(site['path']) as holder:
        before = snapshot(site['data'])
        _res, out = play(site, 'linked', expect_rc=2)
        assert 'pid %d' % holder.pid in out and site['path'] in out
        assert snapshot(site['data']) == before
