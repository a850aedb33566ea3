# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_info under hostile input, with real SQLite files and real concurrent processes.

Every case ends in a result or a ``fail_json`` whose message names the path, what was found and what to do;
never a traceback, and every file is byte-identical afterwards (sha256 of every file, ``-shm`` included where
no app has the database open).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_info
from ansible_collections.bluegreen.dbfix.tests._fsfaults import remount_ro, tmpfs, tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_info)

RUNAWAY = 'WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) AS n FROM r'
RUNAWAY_ROWS = 'WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r'


def db(path, sql='CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, \'a\'), (2, \'b\');', mode='delete'):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.executescript(sql)
    c.close()
    return str(path)


def listing(d):
    """Every file below d with its sha256, -shm included (``tree`` skips -shm, a live app's shared memory)."""
    out = {}
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def no_traceback(r):
    assert 'Traceback' not in str(r) and 'exception' not in r, r


# ----------------------------------------------------------------------------- writes nothing


@pytest.mark.parametrize('check', [False, True])
def test_closed_wal_database_gets_no_side_files(tmp_path, check):
    a = db(tmp_path / 'a.db', mode='wal')
    b = db(tmp_path / 'b.db', mode='wal')
    assert sorted(os.listdir(tmp_path)) == ['a.db', 'b.db']
    before = listing(tmp_path)
    r = run({'path': a, 'compare_with': b, 'integrity': 'full', 'queries': {'n': 'SELECT count(*) AS n FROM t'},
             'expect_columns': {'t': ['id']}}, check=check)
    assert r.get('failed') is not True, r
    assert r['journal_mode'] == 'wal' and r['tables']['t']['rows'] == 2 and r['comparison']['identical'] is True
    assert r['query_results'] == {'n': [{'n': 2}]}
    assert sorted(os.listdir(tmp_path)) == ['a.db', 'b.db']
    assert listing(tmp_path) == before


def test_crashed_wal_database_is_read_from_a_private_copy(tmp_path):
    """Committed frames in the -wal, no -shm (the app was killed): every committed row is seen, nothing created."""
    live = db(tmp_path / 'live.db', mode='wal')
    c = sqlite3.connect(live, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO t VALUES (3, 'only in the wal')")
    crashed = tmp_path / 'crashed'
    crashed.mkdir()
    shutil.copyfile(live, crashed / 'app.db')
    shutil.copyfile(live + '-wal', crashed / 'app.db-wal')
    c.close()
    before = listing(crashed)
    tmp_before = set(os.listdir(os.environ.get('TMPDIR', '/tmp')))
    r = run({'path': str(crashed / 'app.db'), 'queries': {'v': 'SELECT v FROM t WHERE id = 3'}})
    assert r.get('failed') is not True, r
    assert r['tables']['t']['rows'] == 3 and r['query_results']['v'] == [{'v': 'only in the wal'}]
    assert r['wal_size'] > 0
    assert listing(crashed) == before
    leftovers = {n for n in set(os.listdir(os.environ.get('TMPDIR', '/tmp'))) - tmp_before if n.startswith('dbfix-info-')}
    assert not leftovers


def test_live_wal_database_is_read_with_locks_and_sees_wal_rows(tmp_path):
    p = db(tmp_path / 'a.db', mode='wal')
    c = sqlite3.connect(p, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO t VALUES (3, 'c')")
    try:
        r = run({'path': p, 'compare_with': p})
        assert r['tables']['t']['rows'] == 3 and r['comparison']['identical'] is True
    finally:
        c.close()


# ----------------------------------------------------------------------------- bounded


WRITER = r'''
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=float(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
t = time.monotonic()
try:
    c.execute("INSERT INTO t(v) VALUES ('written while sqlite_info ran')")
    print("ok %.2f" % (time.monotonic() - t), flush=True)
except sqlite3.Error as e:
    print("error %s %.2f" % (e, time.monotonic() - t), flush=True)
'''


@pytest.mark.parametrize('query', [RUNAWAY, RUNAWAY_ROWS])
def test_runaway_query_ends_at_query_timeout_and_app_writes_go_through(tmp_path, query):
    """A real writer process (rollback-journal DB, so our read lock blocks its commit) waits at most ~query_timeout."""
    p = db(tmp_path / 'a.db')
    before = tree(tmp_path)
    w = subprocess.Popen([sys.executable, '-c', WRITER, p, '6'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout.readline().strip() == 'ready'
        import threading
        timer = threading.Timer(0.5, lambda: (w.stdin.write('go\n'), w.stdin.flush()))
        timer.start()
        t0 = time.monotonic()
        r = run({'path': p, 'queries': {'forever': query}, 'query_timeout': 1.5})
        took = time.monotonic() - t0
        timer.join()
        out = w.stdout.readline().strip()
    finally:
        w.kill()
        w.wait()
    assert r['failed'] is True and "Query 'forever'" in r['msg'] and 'query_timeout=1.5' in r['msg'] and p in r['msg']
    no_traceback(r)
    assert took < 1.5 + 3, took
    assert out.startswith('ok '), out  # the app's write waited for us, then went through
    assert float(out.split()[1]) < 1.5 + 2
    after = tree(tmp_path)
    assert set(after) == set(before)  # the writer changed a.db; nothing else appeared


def test_read_timeout_bounds_the_comparison(tmp_path):
    sql = ('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'
           "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<200000) INSERT INTO t SELECT x, hex(randomblob(40)) FROM r;")
    a, b = db(tmp_path / 'a.db', sql), db(tmp_path / 'b.db', sql)
    before = tree(tmp_path)
    t0 = time.monotonic()
    r = run({'path': a, 'compare_with': b, 'read_timeout': 0.2})
    assert time.monotonic() - t0 < 5
    assert r['failed'] is True and 'read_timeout=0.2' in r['msg'] and a in r['msg'] and b in r['msg']
    no_traceback(r)
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- refused inputs


LOCKER = ('import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN EXCLUSIVE"); '
          'c.execute("DELETE FROM t"); print("ready", flush=True); time.sleep(60)')


def test_locked_compare_with(tmp_path):
    a, b = db(tmp_path / 'a.db'), db(tmp_path / 'b.db')
    before = tree(tmp_path)
    h = subprocess.Popen([sys.executable, '-c', LOCKER, b], stdout=subprocess.PIPE, text=True)
    try:
        assert h.stdout.readline().strip() == 'ready'
        r = run({'path': a, 'compare_with': b, 'busy_timeout': 300})
    finally:
        h.kill()
        h.wait()
    assert r['failed'] is True and b in r['msg'] and 'locked' in r['msg'] and 'pid %d' % h.pid in r['msg'] and 'busy_timeout' in r['msg']
    no_traceback(r)
    after = tree(tmp_path)
    after.pop('b.db-journal', None)  # the killed locker's hot journal, not ours
    before.pop('b.db-journal', None)
    assert after['a.db'] == before['a.db']


@pytest.mark.parametrize('mode', ['delete', 'wal'])
def test_read_only_compare_with_on_a_read_only_filesystem(tmp_path, mode):
    a = db(tmp_path / 'a.db')
    with tmpfs(tmp_path / 'ro') as ro:
        b = db(ro / 'b.db', mode=mode)
        os.chmod(b, 0o444)
        os.chmod(ro, 0o555)
        remount_ro(ro)
        before = listing(tmp_path)
        r = run({'path': a, 'compare_with': b, 'integrity': 'quick'})
        assert r.get('failed') is not True, r
        assert r['comparison']['rows_identical'] is True
        back = run({'path': b, 'compare_with': a})
        assert back.get('failed') is not True, back
        assert listing(tmp_path) == before


def test_read_only_wal_with_crash_leftovers_on_a_read_only_filesystem(tmp_path):
    """-wal and -shm present on a read-only filesystem: read (SQLite's read-only WAL), or refused with a message."""
    a = db(tmp_path / 'a.db')
    with tmpfs(tmp_path / 'ro', 'size=4m') as ro:
        b = db(ro / 'b.db', mode='wal')
        c = sqlite3.connect(b, isolation_level=None)
        c.execute('PRAGMA wal_autocheckpoint=0')
        c.execute("INSERT INTO t VALUES (3, 'c')")
        shutil.copyfile(b + '-shm', str(ro / 'b.shm.keep'))
        snap = {s: open(b + s, 'rb').read() for s in ('', '-wal', '-shm')}
        c.close()
        for s, data in snap.items():
            with open(b + s, 'wb') as f:
                f.write(data)
        remount_ro(ro)
        before = listing(tmp_path)
        r = run({'path': a, 'compare_with': b})
        no_traceback(r)
        if r.get('failed'):
            assert b in r['msg'] and 'Nothing was changed' in r['msg']
        else:
            assert r['comparison']['tables']['t']['only_there'] == 1
        assert listing(tmp_path) == before


@pytest.mark.parametrize('case', ['missing', 'directory', 'not_sqlite', 'empty', 'fifo', 'dangling', 'nul_path', 'nul_compare',
                                  'header_only', 'same_name_dir_compare'])
def test_bad_files(tmp_path, case):
    (tmp_path / 'good').mkdir()
    a = db(tmp_path / 'good' / 'a.db')
    bad = tmp_path / 'bad.db'
    expect = {'missing': 'does not exist', 'directory': 'is a directory', 'not_sqlite': 'is not an SQLite database',
              'empty': 'is empty', 'fifo': 'not a regular file', 'dangling': 'dangling', 'nul_path': 'NUL byte',
              'nul_compare': 'NUL byte', 'header_only': 'cannot be read', 'same_name_dir_compare': 'is a directory'}[case]
    args = {'path': a, 'compare_with': str(bad)}
    if case in {'directory', 'same_name_dir_compare'}:
        bad.mkdir()
    elif case == 'not_sqlite':
        bad.write_text('JWT_SECRET=abc\n')
    elif case == 'empty':
        bad.write_bytes(b'')
    elif case == 'fifo':
        os.mkfifo(bad)
    elif case == 'dangling':
        os.symlink(tmp_path / 'gone.db', bad)
    elif case == 'nul_path':
        args = {'path': a + '\x00.db'}
    elif case == 'nul_compare':
        args['compare_with'] = str(bad) + '\x00x'
    elif case == 'header_only':
        with open(a, 'rb') as f:
            bad.write_bytes(f.read(100) + b'\x00' * 3996)
    if case in ('directory',):
        args = {'path': str(bad)}
    before = tree(tmp_path / 'good'), sorted(os.listdir(tmp_path))
    r = run(args)
    assert r['failed'] is True, r
    assert expect in r['msg'], r['msg']
    assert ('bad.db' in r['msg']) or case.startswith('nul'), r['msg']
    no_traceback(r)
    assert (tree(tmp_path / 'good'), sorted(os.listdir(tmp_path))) == before  # (a FIFO cannot be hashed)


@pytest.mark.parametrize('opt,value', [
    ('busy_timeout', 10 ** 30), ('busy_timeout', -1), ('busy_timeout', 2 ** 31),
    ('query_timeout', 10 ** 30), ('query_timeout', 0), ('query_timeout', -5), ('query_timeout', 'inf'), ('query_timeout', 'nan'),
    ('read_timeout', 10 ** 400), ('read_timeout', 0),
])
def test_out_of_range_numbers(tmp_path, opt, value):
    a = db(tmp_path / 'a.db')
    before = tree(tmp_path)
    r = run({'path': a, opt: value})
    assert r['failed'] is True and opt in r['msg'], r
    no_traceback(r)
    assert tree(tmp_path) == before


@pytest.mark.parametrize('sql', ['SELECT 1\x00; DELETE FROM t', 'SELECT 99999999999999999999999999', 'SELECT 1e999 AS x',
                                 'SELECT zeroblob(10)', "SELECT 'a' COLLATE nosuch", 'SELECT * FROM pragma_nope'])
def test_odd_queries(tmp_path, sql):
    a = db(tmp_path / 'a.db')
    before = tree(tmp_path)
    r = run({'path': a, 'queries': {'q': sql}})
    no_traceback(r)
    if r.get('failed'):
        assert "Query 'q'" in r['msg'] and a in r['msg']
    else:
        assert 'q' in r['query_results']
    assert tree(tmp_path) == before


def test_hot_journal_is_not_called_corrupt(tmp_path):
    p = db(tmp_path / 'a.db')
    code = ("import sqlite3,os,sys; c=sqlite3.connect(sys.argv[1],isolation_level=None); c.execute('PRAGMA cache_size=1'); "
            "c.execute('BEGIN'); c.execute(\"INSERT INTO t(v) SELECT randomblob(3000) FROM (WITH RECURSIVE r(x) AS "
            "(SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<300) SELECT x FROM r)\"); os._exit(0)")
    subprocess.run([sys.executable, '-c', code, p], check=True)
    assert os.path.getsize(p + '-journal') > 0
    before = tree(tmp_path)
    r = run({'path': p})
    assert r['failed'] is True and 'hot rollback journal' in r['msg'] and 'never delete the journal' in r['msg'] and p in r['msg']
    assert 'It is not corrupt' in r['msg'] and 'restore' not in r['msg']
    no_traceback(r)
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- property-based


_sql = st.one_of(
    st.sampled_from(['SELECT * FROM t', 'SELECT count(*) FROM t', 'DELETE FROM t', 'PRAGMA user_version', RUNAWAY,
                     'SELECT v COLLATE NOCASE FROM t ORDER BY 1', 'SELECT randomblob(8)', 'ATTACH ? AS x', 'VACUUM', '']),
    st.text(max_size=40),
)
_path_kind = st.sampled_from(['db', 'wal_db', 'missing', 'dir', 'text', 'nul', 'empty', 'link'])
_numbers = st.one_of(st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.sampled_from([0, 1, 50, 5000]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.fixed_dictionaries({
    'path': _path_kind, 'other': st.one_of(st.none(), _path_kind),
    'queries': st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8), _sql, max_size=3)),
    'expect': st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=3), max_size=2)),
    'integrity': st.sampled_from(['none', 'quick', 'full']), 'busy': _numbers,
    'qt': st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.3, 1.0])),
    'check': st.booleans(),
}))
def test_property_result_or_message_and_files_unchanged(tmp_path_factory, case):
    """Any mix of arguments and inputs: a result or a fail_json message, never a traceback; files unchanged."""
    d = tmp_path_factory.mktemp('prop')
    made = {}

    def make(kind, name):
        p = d / name
        if kind == 'db':
            db(p)
        elif kind == 'wal_db':
            db(p, mode='wal')
        elif kind == 'dir':
            p.mkdir()
        elif kind == 'text':
            p.write_text('PORT=3000\n')
        elif kind == 'empty':
            p.write_bytes(b'')
        elif kind == 'link':
            db(d / (name + '.target'))
            os.symlink(name + '.target', p)
        elif kind == 'nul':
            return str(p) + '\x00'
        made[name] = p
        return str(p)

    args = {'path': make(case['path'], 'a.db'), 'integrity': case['integrity'], 'busy_timeout': case['busy'],
            'query_timeout': case['qt'], 'read_timeout': 5}
    if case['other'] is not None:
        args['compare_with'] = make(case['other'], 'b.db')
    if case['queries'] is not None:
        args['queries'] = case['queries']
    if case['expect'] is not None:
        args['expect_columns'] = case['expect']
    before = listing(d)
    r = run(args, check=case['check'])
    no_traceback(r)
    if r.get('failed'):
        assert isinstance(r.get('msg'), str) and len(r['msg']) > 20, r
    else:
        assert 'tables' in r and r['changed'] is False
    assert listing(d) == before
