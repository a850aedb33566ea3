# SPDX-License-Identifier: GPL-3.0-or-later
"""dotenv_set on real files in tmp_path, run in-process through the real
exit_json/fail_json (so Ansible's no_log masking is part of what is tested).

No mocks: every failure below is produced for real (an unwritable folder, with a real second user, is in
test_dotenv_set_owners.py).
"""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _dotenv
from ansible_collections.bluegreen.dbfix.plugins.modules import dotenv_set
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

SECRET = 's3cr3t-Pa55 "#x'
BASE = b'# settings\r\nexport A=1\r\nDB_PASSWORD="hunter2-very-secret" # keep\r\n#KEY=commented\r\n\r\nC=\'3\''


run = module_runner(dotenv_set, diff=True)


@pytest.fixture
def envfile(tmp_path):
    p = tmp_path / '.env'
    p.write_bytes(BASE)
    os.chmod(p, 0o600)
    return p


def test_four_steps_check_real_check_real(envfile):
    args = {'path': str(envfile), 'key': 'KEY', 'value': SECRET}
    r = run(args, check=True)
    assert r['changed'] and r['keys'] == ['KEY']
    assert envfile.read_bytes() == BASE                       # check mode wrote nothing
    r = run(args)
    assert r['changed'] and r['keys'] == ['KEY']
    data = envfile.read_bytes()
    assert data.startswith(BASE + b'\r\n')                     # everything before kept byte for byte
    assert _dotenv.parse(data.decode())['KEY'] == SECRET
    assert not data.endswith(b'\n')                            # the missing final newline stays missing
    r = run(args, check=True)
    assert not r['changed'] and r['keys'] == []
    r = run(args)
    assert not r['changed']
    assert envfile.read_bytes() == data


def test_secret_never_in_result_and_diff_masked(envfile):
    r = run({'path': str(envfile), 'values': {'KEY': SECRET, 'A': 'other-secret-value'}})
    blob = json.dumps(r)
    for secret in (SECRET, 'other-secret-value', 'hunter2-very-secret'):
        assert secret not in blob
    assert sorted(r['keys']) == ['A', 'KEY']
    assert '******** (changed)' in r['diff']['after']
    assert 'DB_PASSWORD=********' in r['diff']['before']


def test_show_values_opt_in_shows_them(envfile):
    r = run({'path': str(envfile), 'key': 'KEY', 'value': 'visible-value', 'show_values': True})
    assert 'KEY=visible-value' in r['diff']['after']
    assert 'hunter2-very-secret' in r['diff']['before']


def test_symlink_followed_link_kept_mode_kept_backup(tmp_path, envfile):
    link = tmp_path / 'app' / '.env'
    link.parent.mkdir()
    link.symlink_to(envfile)
    r = run({'path': str(link), 'key': 'A', 'value': 'two words', 'backup': True})
    assert r['changed'] and r['path'] == str(envfile)
    assert os.path.islink(link) and os.readlink(link) == str(envfile)
    assert os.stat(envfile).st_mode & 0o777 == 0o600
    assert envfile.read_bytes() == BASE.replace(b'export A=1', b"export A='two words'")
    assert open(r['backup_file'], 'rb').read() == BASE


def test_checksums_of_the_file_left_and_of_the_backup(tmp_path, envfile):
    """The rollback record takes both checksums from the result (no stat task): they are the sha256 of the bytes."""
    import hashlib
    link = tmp_path / 'app' / '.env'
    link.parent.mkdir()
    link.symlink_to(envfile)
    r = run({'path': str(link), 'key': 'A', 'value': 'origin-list', 'backup': True}, check=True)
    assert r['sha256'] == hashlib.sha256(BASE).hexdigest() and 'backup_sha256' not in r   # check mode: as it is now
    r = run({'path': str(link), 'key': 'A', 'value': 'origin-list', 'backup': True})
    assert r['sha256'] == hashlib.sha256(envfile.read_bytes()).hexdigest() != hashlib.sha256(BASE).hexdigest()
    assert r['backup_sha256'] == hashlib.sha256(open(r['backup_file'], 'rb').read()).hexdigest() == hashlib.sha256(BASE).hexdigest()
    again = run({'path': str(link), 'key': 'A', 'value': 'origin-list', 'backup': True})
    assert not again['changed'] and again['sha256'] == r['sha256'] and 'backup_sha256' not in again
    missing = run({'path': str(tmp_path / 'none.env'), 'key': 'A', 'value': 'origin-list', 'create': True}, check=True)
    assert missing['sha256'] == ''


def test_duplicates_one_definition_left(envfile):
    envfile.write_bytes(b'KEY=one\nOTHER=x\nKEY=two # effective\n')
    r = run({'path': str(envfile), 'key': 'KEY', 'value': 'three'})
    assert r['changed']
    assert envfile.read_bytes() == b'OTHER=x\nKEY=three # effective\n'


def test_absent_removes_and_is_idempotent(envfile):
    r = run({'path': str(envfile), 'key': 'DB_PASSWORD', 'state': 'absent'})
    assert r['changed'] and r['keys'] == ['DB_PASSWORD']
    assert envfile.read_bytes() == BASE.replace(b'DB_PASSWORD="hunter2-very-secret" # keep\r\n', b'')
    r = run({'path': str(envfile), 'key': 'DB_PASSWORD', 'state': 'absent'})
    assert not r['changed']


def test_refused_value_leaves_file_byte_identical(envfile):
    before = os.stat(envfile)
    r = run({'path': str(envfile), 'key': 'KEY', 'value': 'a\\nb\rc'})
    assert r['failed']
    assert str(envfile) in r['msg'] and 'KEY' in r['msg'] and 'left unchanged' in r['msg']
    assert envfile.read_bytes() == BASE
    assert os.stat(envfile).st_mtime_ns == before.st_mtime_ns
    assert os.listdir(envfile.parent) == ['.env']              # no temp file left behind


def test_one_bad_value_in_values_refuses_the_whole_write(envfile):
    r = run({'path': str(envfile), 'values': {'GOOD': 'fine', 'BAD': 'x\\r\r'}})
    assert r['failed'] and 'BAD' in r['msg']
    assert envfile.read_bytes() == BASE


def test_bad_key_refused(envfile):
    r = run({'path': str(envfile), 'key': 'NOT VALID', 'value': 'x'})
    assert r['failed'] and 'not a name dotenv can read' in r['msg']
    assert envfile.read_bytes() == BASE


def test_missing_file_without_create_fails(tmp_path):
    p = tmp_path / 'nope' / '.env'
    r = run({'path': str(p), 'key': 'K', 'value': 'some-value'})
    assert r['failed'] and str(p) in r['msg'] and 'create: true' in r['msg']
    assert not p.parent.exists()


def test_create_new_file_is_0600_and_check_mode_creates_nothing(tmp_path):
    p = tmp_path / '.env'
    r = run({'path': str(p), 'values': {'A': 1, 'B': True, 'C': None}, 'create': True}, check=True)
    assert r['changed'] and not p.exists()
    r = run({'path': str(p), 'values': {'A': 1, 'B': True, 'C': None}, 'create': True})
    assert r['changed']
    assert p.read_bytes() == b'A=1\nB=true\nC=\n'
    assert os.stat(p).st_mode & 0o777 == 0o600
    r = run({'path': str(p), 'values': {'A': 1, 'B': True, 'C': None}, 'create': True})
    assert not r['changed']


def test_mode_argument_applied_and_reported(envfile):
    r = run({'path': str(envfile), 'key': 'A', 'value': '1', 'mode': '0640'})
    assert r['changed'] and r['keys'] == []                    # bytes equal, only the mode changed
    assert os.stat(envfile).st_mode & 0o777 == 0o640
    assert envfile.read_bytes() == BASE


def test_directory_path_refused(tmp_path):
    r = run({'path': str(tmp_path), 'key': 'A', 'value': '1'})
    assert r['failed'] and 'not a regular file' in r['msg']


def test_value_required_for_present(envfile):
    r = run({'path': str(envfile), 'key': 'A'})
    assert r['failed'] and 'value is required' in r['msg']
    assert envfile.read_bytes() == BASE


def test_binary_file_refused_byte_identical(tmp_path):
    p = tmp_path / '.env'
    blob = b'SQLite format 3\x00' + bytes(range(256)) * 4   # e.g. the DB given as path by mistake
    p.write_bytes(blob)
    os.chmod(p, 0o600)
    st = os.stat(p)
    # a value that cannot occur in the message: no_log masks every occurrence of it
    r = run({'path': str(p), 'key': 'A', 'value': 'zz-unique-value'})
    assert r['failed']
    assert 'not a .env file' in r['msg'] and 'NUL byte at offset 15' in r['msg'] and str(p) in r['msg']
    assert p.read_bytes() == blob
    assert os.stat(p).st_mode == st.st_mode and os.stat(p).st_mtime_ns == st.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ['.env']                 # no temp or backup file left


@pytest.mark.parametrize('create', [False, True])
@pytest.mark.parametrize('elsewhere', [True, False])
def test_dangling_link_never_written_through(tmp_path, create, elsewhere):
    """A dangling .env link: creating its target would put a secret wherever the link points (another folder)."""
    app = tmp_path / 'app'
    other = tmp_path / 'other' if elsewhere else app
    app.mkdir()
    other.mkdir(exist_ok=True)
    link = app / '.env'
    target = other / ('.env.shared' if not elsewhere else '.env')
    link.symlink_to(target)
    before = tree(tmp_path, meta=True)
    for check in (True, False):
        r = run({'path': str(link), 'key': 'JWT_SECRET', 'value': 'zz-never-written', 'create': create}, check=check)
        assert r['failed'] and str(link) in r['msg'] and str(target) in r['msg'] and 'dangling' in r['msg'], r
        assert tree(tmp_path, meta=True) == before
    assert not os.path.lexists(target) and os.path.islink(link)


def test_diff_shows_only_dotenv_keys_of_a_followed_file(tmp_path):
    """A .env linked to a file that is not a .env at all (a shadow-like file): its lines never reach the diff."""
    shadow = tmp_path / 'etc' / 'shadow'
    shadow.parent.mkdir()
    lines = b'root:$6$saltsalt$Zhashhashhashhash:19700:0:99999:7:::\nappuser:$y$j9T$other.hash:19701:0:99999:7:::\n'
    shadow.write_bytes(lines + b'# old: DB_PASSWORD=commented-old-secret\nTOKEN=tok-secret-value\n')
    os.chmod(shadow, 0o640)
    link = tmp_path / '.env'
    link.symlink_to(shadow)
    for check in (True, False):
        r = run({'path': str(link), 'key': 'NEW_KEY', 'value': 'new-secret-value'}, check=check)
        assert r['changed'], r
        shown = r['diff']['before'] + r['diff']['after'] + json.dumps(r)
        for leaked in ('saltsalt', 'hashhash', 'appuser', 'other.hash', '99999', 'commented-old-secret',
                       'tok-secret-value', 'new-secret-value'):
            assert leaked not in shown, leaked
        assert r['diff']['before'] == 'TOKEN=********\n'
        assert r['diff']['after'] == 'TOKEN=********\nNEW_KEY=******** (changed)\n'
    assert os.stat(shadow).st_mode & 0o777 == 0o640


def test_diff_with_show_values_still_only_dotenv_keys(envfile):
    r = run({'path': str(envfile), 'key': 'A', 'value': 'visible', 'show_values': True})
    assert r['diff']['before'] == 'export A=1\nDB_PASSWORD="hunter2-very-secret"\nC=\'3\'\n'
    assert r['diff']['after'] == 'export A=visible\nDB_PASSWORD="hunter2-very-secret"\nC=\'3\'\n'
    assert 'settings' not in r['diff']['before'] and 'commented' not in r['diff']['before']


@pytest.mark.parametrize('key', ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf'])
@pytest.mark.parametrize('how', ['key', 'values'])
def test_keys_dotenv_drops_or_that_shadow_object_members_refused(envfile, key, how):
    args = {'path': str(envfile), 'key': key, 'value': 'x1'} if how == 'key' else \
        {'path': str(envfile), 'values': {'FINE': 'ok', key: 'x1'}}
    st = os.stat(envfile)
    r = run(args)
    assert r['failed'] and repr(key) in r['msg'] and 'refused' in r['msg'] and 'left unchanged' in r['msg'], r
    assert ('silently drop' if key == '__proto__' else 'JavaScript object') in r['msg']
    assert envfile.read_bytes() == BASE and os.stat(envfile).st_mtime_ns == st.st_mtime_ns


def test_a_dropped_key_can_still_be_removed(envfile):
    """dotenv never reads __proto__=...; removing such a line is allowed (it is the cleanup), and changes nothing
    dotenv reads."""
    envfile.write_bytes(b'A=1\n__proto__=polluted\nB=2\n')
    r = run({'path': str(envfile), 'key': '__proto__', 'state': 'absent'})
    assert r['changed'] and envfile.read_bytes() == b'A=1\nB=2\n'
