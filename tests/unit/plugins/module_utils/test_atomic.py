# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared small rooms: _atomic (the one atomic-write helper), _sharedfile (files around a shared database),
_sqlite.checkpoint (the one WAL checkpoint) and _errors (the one error class). Real files, real SQLite, real
owners (uid/gid 65534, nobody/nogroup, as root); no mocks."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic as A
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sharedfile as SF
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils._dotenv import DotenvError
from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError

OTHER = 65534


def _need_root():
    assert os.geteuid() == 0, 'these tests give files to another owner: run them as root (as make test does)'


def test_atomic_file_has_its_final_mode_and_owner_before_any_byte_is_written(tmp_path):
    _need_root()
    final = tmp_path / 'state.json'
    out = A.AtomicFile(str(final), 0o640, OTHER, OTHER)
    st = os.stat(out.tmp)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size) == (0o640, OTHER, OTHER, 0)
    assert os.path.dirname(out.tmp) == str(tmp_path) and not final.exists()
    out.write(b'{"a": 1}\n')
    out.commit()
    st = os.stat(final)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, OTHER, OTHER)
    assert final.read_bytes() == b'{"a": 1}\n' and os.listdir(tmp_path) == ['state.json']


def test_atomic_file_abort_leaves_nothing_and_the_old_file_as_it_was(tmp_path):
    final = tmp_path / 'f'
    final.write_bytes(b'old')
    out = A.AtomicFile(str(final))
    out.write(b'x' * 100000)
    out.abort()
    assert final.read_bytes() == b'old' and os.listdir(tmp_path) == ['f']


def test_atomic_file_without_replace_never_overwrites(tmp_path):
    final = tmp_path / 'b'
    out = A.AtomicFile(str(final))
    out.write(b'new')
    final.write_bytes(b'old')  # another run took the name meanwhile
    with pytest.raises(FileExistsError):
        out.commit(replace=False)
    assert final.read_bytes() == b'old' and os.listdir(tmp_path) == ['b']


def test_write_file_failing_rename_removes_its_temp_file(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'keep').write_bytes(b'k')
    with pytest.raises(OSError):
        A.write_file(str(tmp_path / 'd'), b'data')  # a folder cannot be replaced by a file
    assert sorted(os.listdir(tmp_path)) == ['d'] and os.listdir(tmp_path / 'd') == ['keep']


def test_write_file_replaces_content_and_keeps_the_given_mode(tmp_path):
    final = tmp_path / '.env'
    final.write_bytes(b'A=1\n')
    os.chmod(final, 0o600)
    A.write_file(str(final), b'A=2\n', 0o600)
    assert final.read_bytes() == b'A=2\n' and stat.S_IMODE(os.stat(final).st_mode) == 0o600


def test_create_exclusive_never_follows_a_symlink(tmp_path):
    target = tmp_path / 'target'
    target.write_bytes(b'secret')
    os.symlink(target, tmp_path / 'link')
    with pytest.raises(FileExistsError):
        A.create_exclusive(str(tmp_path / 'link'), 0o644)
    assert target.read_bytes() == b'secret' and os.path.islink(tmp_path / 'link')


def test_fsync_dir_strict_or_not(tmp_path):
    A.fsync_dir(str(tmp_path))
    A.fsync_dir(str(tmp_path / 'missing'), strict=False)
    with pytest.raises(OSError):
        A.fsync_dir(str(tmp_path / 'missing'))


def test_copy_exclusive_keeps_mode_owner_and_times_and_never_overwrites(tmp_path):
    _need_root()
    src = tmp_path / 'db'
    src.write_bytes(b'SQLite format 3\x00' + b'\x01' * 5000)
    os.chown(src, OTHER, OTHER)
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_500_000_000_000_000_000))
    dst = tmp_path / 'db.OLD'
    SF.copy_exclusive(str(src), str(dst))
    s, d = os.stat(src), os.stat(dst)
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid, d.st_mtime_ns) == (0o640, OTHER, OTHER, s.st_mtime_ns)
    assert dst.read_bytes() == src.read_bytes()
    with pytest.raises(FileExistsError):
        SF.copy_exclusive(str(src), str(dst))


def test_replace_with_symlink_is_one_rename(tmp_path):
    path = tmp_path / 'database.db'
    path.write_bytes(b'x')
    SF.replace_with_symlink(str(path), '/srv/shared/shared.db')
    assert os.readlink(path) == '/srv/shared/shared.db' and os.listdir(tmp_path) == ['database.db']


def test_can_access_uses_one_class_like_the_kernel(tmp_path):
    f = tmp_path / 'f'
    f.write_bytes(b'')
    os.chown(f, 1000, 2000)
    os.chmod(f, 0o067)  # the owner may do nothing even though group and others may
    st = os.stat(f)
    assert not SF.can_access(1000, {2000}, st, 4)
    assert SF.can_access(1001, {2000}, st, 4 | 2)
    assert SF.can_access(1001, {3000}, st, 4 | 2 | 1)
    assert SF.can_access(0, set(), st, 4 | 2)


def _wal_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute('PRAGMA journal_mode=wal')
    conn.execute('PRAGMA wal_autocheckpoint=0')
    conn.execute('CREATE TABLE t(x)')
    conn.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(100)])
    return conn


def test_checkpoint_merges_the_wal_into_the_database(tmp_path):
    db = str(tmp_path / 'app.db')
    conn = _wal_db(db)  # stays open (idle), so its WAL is not merged on close
    assert os.path.getsize(db + '-wal') > 0
    assert S.checkpoint(db) == 0
    assert os.path.getsize(db + '-wal') == 0
    conn.close()
    ro = sqlite3.connect('file:%s?mode=ro&immutable=1' % db, uri=True)
    assert ro.execute('SELECT count(*) FROM t').fetchone()[0] == 100
    ro.close()


def test_checkpoint_says_busy_while_a_reader_holds_the_wal(tmp_path):
    db = str(tmp_path / 'app.db')
    conn = _wal_db(db)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute('BEGIN')
    reader.execute('SELECT count(*) FROM t').fetchone()
    conn.execute('INSERT INTO t VALUES (1)')
    assert S.checkpoint(db, timeout=0.1) == 1
    reader.execute('COMMIT')
    reader.close()
    conn.close()


def test_one_error_class():
    e = DbfixError('path /x: found y; do z', holders=[1])
    assert (e.msg, str(e), e.details) == ('path /x: found y; do z', 'path /x: found y; do z', {'holders': [1]})
    assert issubclass(DotenvError, DbfixError) and S.DbfixError is DbfixError
