# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_info with real second users (``useradd``, removed afterwards): read-only files and folders of the app user,
and a ``-wal`` planted by another user beside ``compare_with``."""
from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_info
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user, run_module_as, shared_tmpdir
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules.test_sqlite_info_hostile import db, listing

run = module_runner(sqlite_info)


@pytest.mark.parametrize('mode', ['delete', 'wal'])
def test_read_only_file_and_folder_as_their_owner(mode):
    """The app user's 0444 database in its 0555 folder, read (and compared) as that user: a result, nothing written."""
    with local_user('dbfixh1a') as user, shared_tmpdir('dbfix-h1a-') as top:
        ro = os.path.join(top, 'ro')
        os.mkdir(ro)
        a, b = db(os.path.join(ro, 'a.db'), mode=mode), db(os.path.join(ro, 'b.db'), mode=mode)
        for p in (a, b, ro):
            os.chown(p, user.uid, user.gid)
        os.chmod(a, 0o444)
        os.chmod(b, 0o444)
        os.chmod(ro, 0o555)
        before = listing(ro)
        work = os.path.join(top, 'work')
        os.mkdir(work)
        os.chmod(work, 0o777)
        r = run_module_as(user, 'sqlite_info', {'path': a, 'compare_with': b, 'integrity': 'quick',
                                                'queries': {'n': 'SELECT count(*) AS n FROM t'}}, work)
        assert r.get('failed') is not True, r
        assert r['comparison']['identical'] is True and r['query_results'] == {'n': [{'n': 2}]}
        assert listing(ro) == before and sorted(os.listdir(ro)) == ['a.db', 'b.db']


def test_wal_planted_by_another_user_beside_compare_with_is_refused(tmp_path):
    """Another user's -wal beside the database would be read as part of it (rows injected): refused before opening."""
    with local_user('dbfixh1a') as other:
        a = db(tmp_path / 'a.db', mode='wal')
        live = db(tmp_path / 'src.db', mode='wal')
        c = sqlite3.connect(live, isolation_level=None)
        c.execute('PRAGMA wal_autocheckpoint=0')
        c.execute("INSERT INTO t VALUES (99, 'injected')")
        b = str(tmp_path / 'b.db')
        shutil.copyfile(live, b)
        shutil.copyfile(live + '-wal', b + '-wal')
        c.close()
        os.chown(b + '-wal', other.uid, other.gid)
        before = listing(tmp_path)
        r = run({'path': a, 'compare_with': b})
        assert r['failed'] is True and b in r['msg'] and 'Refusing' in r['msg'], r
        assert 'Traceback' not in str(r)
        assert listing(tmp_path) == before
