# SPDX-License-Identifier: GPL-3.0-or-later
"""dbfix_state on real files: four steps (check, real, check, real), merge/remove, modes kept, a bad file never
overwritten, where the database stands (a real symlink), and the published fact."""
from __future__ import annotations

import json
import os
import stat

from _modrun import module_runner

from ansible_collections.bluegreen.dbfix.plugins.modules import dbfix_state

run = module_runner(dbfix_state)


def test_four_steps_and_new_file_mode(tmp_path):
    path = tmp_path / '.dbfix' / 'state.json'
    upd = {'path': str(path), 'update': {'phase2': {'old_file': '/x.OLD'}}, 'fact': 'st'}
    r = run(upd, check=True)
    assert r['changed'] and r['state'] == {'phase2': {'old_file': '/x.OLD'}} and not path.parent.exists()
    r = run(upd)
    assert r['changed'] and json.loads(path.read_text()) == {'phase2': {'old_file': '/x.OLD'}}
    assert r['ansible_facts'] == {'st': r['state']}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not run(upd, check=True)['changed']
    assert not run(upd)['changed']


def test_merge_remove_and_mode_kept(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text(json.dumps({'phase1': {'backup_file': 'b'}, 'cors': {'backup_file': 'c'}}))
    os.chmod(path, 0o640)
    r = run({'path': str(path), 'update': {'phase1': {'linked': True}}, 'remove': ['cors']}, diff=True)
    assert r['changed'] and r['state'] == {'phase1': {'backup_file': 'b', 'linked': True}}
    assert r['diff']['before']['cors'] == {'backup_file': 'c'}
    assert json.loads(path.read_text()) == r['state'] and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ['state.json']


def test_read_only_absent_file(tmp_path):
    r = run({'path': str(tmp_path / 'none.json'), 'fact': '_s'})
    assert r == {**r, 'changed': False, 'state': {}, 'exists': False} and r['ansible_facts'] == {'_s': {}}
    assert not (tmp_path / 'none.json').exists()


def test_bad_json_is_never_overwritten(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('{not json')
    for content in ('{not json', '[1, 2]'):
        path.write_text(content)
        r = run({'path': str(path), 'update': {'a': 1}})
        assert r['failed'] and str(path) in r['msg'] and path.read_text() == content


def test_where_the_database_stands(tmp_path):
    shared = tmp_path / 'shared.db'
    shared.write_bytes(b'x')
    db = tmp_path / 'database.db'
    db.write_bytes(b'y')
    r = run({'path': str(tmp_path / 's.json'), 'db_path': str(db), 'shared_db': str(shared)})
    st = db.lstat()
    assert r['db'] == {'exists': True, 'islnk': False, 'linked': False, 'shared_exists': True, 'shared_real': str(shared),
                       'inode': st.st_ino, 'dev': st.st_dev}
    db.unlink()
    db.symlink_to(shared)
    r = run({'path': str(tmp_path / 's.json'), 'db_path': str(db), 'shared_db': str(shared)})
    # The link itself (lstat), not the shared DB it points to: phase 1's record names the app's own file.
    assert r['db']['linked'] is True and r['db']['inode'] == db.lstat().st_ino != shared.stat().st_ino
    db.unlink()
    assert run({'path': str(tmp_path / 's.json'), 'db_path': str(db), 'shared_db': str(shared)})['db']['inode'] is None
