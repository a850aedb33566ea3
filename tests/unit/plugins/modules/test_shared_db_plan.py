# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_plan on real SQLite files: the decision, the refusal, the shared-folder proof, queries, an
existing unused shared DB, and that no file changes (sha256 of every file before/after)."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest
from _modrun import module_runner

from ansible_collections.bluegreen.dbfix.plugins.modules import shared_db_plan

run = module_runner(shared_db_plan)


def make(path, rows, extra_sql=()):
    with sqlite3.connect(path) as c:
        c.execute('CREATE TABLE entries (id INTEGER PRIMARY KEY, note TEXT)')
        c.execute('CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, at TEXT)')
        c.executemany('INSERT INTO entries VALUES (?, ?)', rows)
        c.execute("INSERT INTO schema_migrations VALUES ('001', ?)", (str(path),))  # differs on purpose: ignored
        for sql in extra_sql:
            c.execute(sql)
    c.close()
    return str(path)


def sha(p):
    return hashlib.sha256(open(p, 'rb').read()).hexdigest()


def tree(folder):
    return {p.name: sha(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def pair(tmp_path):
    blue = make(tmp_path / 'blue.bak', [(1, 'a'), (2, 'b')])
    green = make(tmp_path / 'green.bak', [(1, 'a')])
    return tmp_path, blue, green


def args(blue, green, **kw):
    return dict({'blue': {'path': blue, 'sha256': sha(blue)}, 'green': {'path': green, 'sha256': sha(green)},
                 'ignore_tables': ['schema_migrations']}, **kw)


def test_blue_holds_all_is_chosen_and_nothing_changes(pair):
    folder, blue, green = pair
    before = tree(folder)
    r = run(args(blue, green, shared_db=str(folder / 'shared.db')))
    assert not r.get('failed'), r
    assert r['plan']['base'] == 'blue' and r['plan']['lossless'] and r['plan']['why'] == 'blue holds every row of green'
    assert r['blue']['tables'] == {'entries': 2, 'schema_migrations': 1} and r['green']['tables']['entries'] == 1
    assert r['blue']['integrity'] == 'ok' and r['shared']['exists'] is False and r['changed'] is False
    assert tree(folder) == before


def test_diverged_is_refused_with_counts_and_the_plan(pair):
    folder, blue, green = pair
    with sqlite3.connect(green) as c:
        c.execute("INSERT INTO entries VALUES (3, 'green-only')")
    c.close()
    before = tree(folder)
    r = run(args(blue, green))
    assert r['failed'] and r['plan']['refused'] and r['plan']['base'] == 'blue'
    assert 'would lose data' in r['msg'] and 'entries: 2/2; 1/1/0.' in r['msg'] and 'Nothing was changed' in r['msg']
    assert 'allow_data_loss=true' not in r['plan']['why']
    assert tree(folder) == before
    ok = run(args(blue, green, allow_data_loss=True))
    assert not ok.get('failed') and 'dbfix_phase2_allow_data_loss=true' in ok['plan']['why']


def test_a_copy_this_host_cannot_read_as_written_means_no_shared_folder(pair):
    folder, blue, green = pair
    r = run(dict(args(blue, green), green={'path': green, 'sha256': '0' * 64}))
    assert r['failed'] and 'do not see the same folder' in r['msg']
    r = run(dict(args(blue, green), green={'path': str(folder / 'absent.bak')}))
    assert r['failed'] and 'do not share' in r['msg'] and 'dbfix_phase2_backup_dir' in r['msg']


def test_failing_query_names_the_variable(pair):
    _folder, blue, green = pair
    r = run(args(blue, green, queries={'active': 'SELECT count(*) FROM users WHERE active = 1'}))
    assert r['failed'] and 'dbfix_phase2_queries' in r['msg'] and "'active'" in r['msg']
    r = run(args(blue, green, queries={'wipe': 'DELETE FROM entries'}))
    assert r['failed'] and 'dbfix_phase2_queries' in r['msg'] and 'read' in r['msg']
    r = run(args(blue, green, queries={'n': 'SELECT count(*) AS n FROM entries'}))
    assert r['blue']['query_results'] == {'n': [{'n': 2}]}


def test_missing_shared_folder_is_refused(pair):
    folder, blue, green = pair
    r = run(args(blue, green, shared_db=str(folder / 'nope' / 'shared.db')))
    assert r['failed'] and 'does not exist' in r['msg'] and str(folder / 'nope') in r['msg']


def test_refused_fstype_is_refused(pair):
    folder, blue, green = pair
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _fsinfo
    fstype = _fsinfo.fs_info(str(folder))['fstype']
    r = run(args(blue, green, shared_db=str(folder / 'shared.db'), refuse_fstypes=[fstype]))
    assert r['failed'] and ('on a %s filesystem' % fstype) in r['msg']


def test_existing_unused_shared_db(pair):
    folder, blue, green = pair
    shared = folder / 'shared.db'
    make(shared, [(1, 'a')])
    r = run(args(blue, green, shared_db=str(shared)))
    assert not r.get('failed') and r['shared']['aside'] is True and r['shared']['lost_tables'] == []
    assert run(args(blue, green, shared_db=str(shared), shared_in_use=True))['shared']['aside'] is False
    with sqlite3.connect(shared) as c:
        c.execute("INSERT INTO entries VALUES (9, 'only in the old shared DB')")
    c.close()
    before = tree(folder)
    r = run(args(blue, green, shared_db=str(shared)))
    assert r['failed'] and 'already exists' in r['msg'] and 'entries' in r['msg']
    assert tree(folder) == before


def test_corrupt_copy_fails_cleanly(pair):
    folder, blue, green = pair
    (folder / 'bad.bak').write_bytes(b'not a database at all' * 10)
    r = run(dict(args(blue, green), green={'path': str(folder / 'bad.bak')}))
    assert r['failed'] and 'not an SQLite database' in r['msg']
