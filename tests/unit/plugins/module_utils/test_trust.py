# SPDX-License-Identifier: GPL-3.0-or-later
"""_trust on real files with a real second local user (useradd in the test, userdel in teardown).

Every case also proves the check itself changed nothing: names, bytes, owners and modes (lstat) are identical.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _trust as T
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user


@pytest.fixture(scope='module')
def other():
    with local_user('dbfixtr') as pw:
        yield pw


def state(d):
    """name -> (sha256 or link target, uid, gid, mode, nlink) of every entry in ``d`` (and ``d`` itself)."""
    out = {'.': (os.lstat(d).st_uid, os.lstat(d).st_gid, os.lstat(d).st_mode)}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.lstat(p)
        if os.path.islink(p):
            body = 'link:' + os.readlink(p)
        elif os.path.isfile(p):
            with open(p, 'rb') as f:
                body = hashlib.sha256(f.read()).hexdigest()
        else:
            body = 'dir'
        out[n] = (body, st.st_uid, st.st_gid, st.st_mode, st.st_nlink)
    return out


def make_db(path):
    c = sqlite3.connect(path)
    c.execute('CREATE TABLE t(x)')
    c.execute('INSERT INTO t VALUES (1)')
    c.commit()
    c.close()
    return path


@pytest.fixture
def db(tmp_path):
    d = tmp_path / 'app'
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return make_db(str(d / 'database.db'))


def reasons(path):
    before = state(os.path.dirname(path))
    out = T.untrusted_reasons(path)
    assert state(os.path.dirname(path)) == before
    return out


def test_own_database_is_trusted(db):
    assert reasons(db) == []
    assert T.untrusted_message(db) is None
    T.check_trusted(db)


def test_database_owned_by_the_app_user_is_trusted_for_root(db, other):
    """Running as root (become), the DB's owner is the app user: its folder and side files may be theirs."""
    os.chown(db, other.pw_uid, other.pw_gid)
    os.chown(os.path.dirname(db), other.pw_uid, other.pw_gid)
    with open(db + '-journal', 'wb'):
        pass
    os.chown(db + '-journal', other.pw_uid, other.pw_gid)
    assert reasons(db) == []


@pytest.mark.parametrize('suffix', ['-wal', '-shm', '-journal'])
def test_side_file_planted_by_another_user(db, other, suffix):
    side = db + suffix
    with open(side, 'wb') as f:
        f.write(b'\0' * 32)
    os.chown(side, other.pw_uid, other.pw_gid)
    got = reasons(db)
    assert len(got) == 1, got
    assert side in got[0] and other.pw_name in got[0] and str(other.pw_uid) in got[0] and 'planted' in got[0]
    assert 'mode 0644' in got[0] or 'mode 0' in got[0]
    with pytest.raises(S.DbfixError) as e:
        T.check_trusted(db)
    assert 'Refusing to open %s' % db in e.value.msg and 'Nothing was opened or changed' in e.value.msg


def test_side_file_that_is_a_symlink(db, tmp_path):
    target = tmp_path / 'elsewhere'
    target.write_bytes(b'x')
    os.symlink(str(target), db + '-shm')
    got = reasons(db)
    assert any(db + '-shm' in r and 'symlink' in r and str(target) in r for r in got), got


def test_hard_linked_side_file(db, tmp_path):
    with open(db + '-wal', 'wb') as f:
        f.write(b'\0' * 32)
    os.link(db + '-wal', str(tmp_path / 'other-name'))
    got = reasons(db)
    assert any(db + '-wal' in r and '2 hard links' in r for r in got), got


def test_world_writable_folder_without_sticky_bit(db):
    folder = os.path.dirname(db)
    os.chmod(folder, 0o777)
    got = reasons(db)
    assert any(folder in r and 'every local user' in r and '0777' in r and 'chmod o-w' in r for r in got), got
    os.chmod(folder, 0o1777)  # like /tmp: others cannot replace what is ours
    assert reasons(db) == []


def test_group_writable_folder_with_another_member(db, other):
    folder = os.path.dirname(db)
    os.chown(folder, 0, other.pw_gid)  # the second user's own group: it is a member
    os.chmod(folder, 0o775)
    got = reasons(db)
    assert any(folder in r and 'writable by group' in r and other.pw_name in r for r in got), got
    os.chmod(folder, 0o755)
    assert reasons(db) == []


def test_group_writable_folder_of_a_group_without_others_is_fine(db):
    folder = os.path.dirname(db)
    os.chown(folder, 0, 0)
    os.chmod(folder, 0o775)
    assert reasons(db) == []


def test_folder_owned_by_another_user_with_a_root_database(db, other):
    folder = os.path.dirname(db)
    os.chown(folder, other.pw_uid, other.pw_gid)
    got = reasons(db)
    assert any(folder in r and 'owned by user' in r and other.pw_name in r for r in got), got


def test_parent_folder_writable_by_others(tmp_path):
    top = tmp_path / 'top'
    (top / 'app').mkdir(parents=True)
    os.chmod(top, 0o777)
    db = make_db(str(top / 'app' / 'database.db'))
    got = reasons(db)
    assert any(str(top) + ' ' in r and 'every local user' in r for r in got), got


def test_symlinked_database_checks_the_target_and_the_link_folder(tmp_path, other):
    shared = tmp_path / 'shared'
    shared.mkdir()
    target = make_db(str(shared / 'database-shared.db'))
    app = tmp_path / 'app'
    app.mkdir()
    link = str(app / 'database.db')
    os.symlink(target, link)
    assert reasons(link) == []
    with open(target + '-wal', 'wb') as f:
        f.write(b'\0' * 32)
    os.chown(target + '-wal', other.pw_uid, other.pw_gid)
    got = T.untrusted_reasons(link)
    assert any(target + '-wal' in r for r in got), got
    os.unlink(target + '-wal')
    os.chmod(app, 0o777)  # others can re-point the link
    got = T.untrusted_reasons(link)
    assert any(str(app) in r and 'every local user' in r for r in got), got


def test_missing_database_checks_its_folder(tmp_path):
    d = tmp_path / 'new'
    d.mkdir()
    assert T.untrusted_reasons(str(d / 'db.sqlite')) == []
    os.chmod(d, 0o777)
    assert T.untrusted_reasons(str(d / 'db.sqlite'))


def test_world_writable_database_file(db):
    os.chmod(db, 0o666)
    got = reasons(db)
    assert any(db in r and 'every local user' in r and '0666' in r for r in got), got
