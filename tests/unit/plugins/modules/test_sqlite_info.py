# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_info on real SQLite files: facts, read-only queries, expected columns, integrity, comparison."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_info
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_info)


def db(path, sql, mode='delete'):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.executescript(sql)
    c.close()
    return str(path)


BASE = '''
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, active INT DEFAULT 1);
CREATE TABLE entries(id INTEGER PRIMARY KEY, user_id INT, minutes INT, note BLOB);
CREATE TABLE tags(name TEXT, color TEXT);
CREATE TABLE membership(user_id INT, team TEXT, role TEXT, PRIMARY KEY (user_id, team)) WITHOUT ROWID;
INSERT INTO users VALUES (1, 'a@x', 1), (2, 'b@x', 1), (3, 'c@x', 0);
INSERT INTO entries VALUES (1, 1, 30, x'00ff'), (2, 2, 45, NULL), (3, 1, 15, NULL);
INSERT INTO tags VALUES ('red', 'f00'), ('red', 'f00'), ('blue', '00f');
INSERT INTO membership VALUES (1, 'core', 'lead'), (2, 'core', 'dev');
PRAGMA user_version = 7;
'''


def test_facts(tmp_path):
    p = db(tmp_path / 'a.db', BASE, 'wal')
    c = sqlite3.connect(p, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO users VALUES (4, 'd@x', 1)")  # only in the WAL
    r = run({'path': p, 'queries': {'active': 'SELECT count(*) AS n FROM users WHERE active = 1', 'blob': 'SELECT note FROM entries WHERE id = 1'},
             'expect_columns': {'users': ['id', 'email', 'position'], 'teams': ['id']}, 'integrity': 'full'})
    c.close()
    assert r['changed'] is False
    assert r['journal_mode'] == 'wal' and r['page_size'] == 4096 and r['user_version'] == 7
    assert r['sqlite_version'] == sqlite3.sqlite_version
    assert r['size'] == os.path.getsize(p) and r['wal_size'] > 0
    assert r['tables']['users'] == {'columns': ['id', 'email', 'active'], 'rows': 4}
    assert set(r['tables']) == {'users', 'entries', 'tags', 'membership'}
    assert r['query_results'] == {'active': [{'n': 3}], 'blob': [{'note': '00ff'}]}
    assert r['missing_columns'] == {'users': ['position'], 'teams': ['id']}
    assert r['schema_ok'] is False
    assert r['integrity_result'] == 'ok'
    assert len(r['schema_sha256']) == 64
    ok = run({'path': p, 'expect_columns': {'users': ['id', 'email']}})
    assert ok['schema_ok'] is True and ok['missing_columns'] == {} and ok['integrity_result'] is None


def test_schema_sha256_ignores_whitespace_and_order_but_not_columns(tmp_path):
    a = db(tmp_path / 'a.db', 'CREATE TABLE t(a INT, b TEXT); CREATE INDEX i ON t(a);')
    b = db(tmp_path / 'b.db', 'CREATE TABLE t (\n  a INT,\n  b TEXT\n);\nCREATE INDEX i ON t ( a );')
    c = db(tmp_path / 'c.db', 'CREATE TABLE t(a INT, b TEXT, c INT); CREATE INDEX i ON t(a);')
    ha, hb, hc = (run({'path': p})['schema_sha256'] for p in (a, b, c))
    assert ha == hb != hc


def test_never_writes_the_database(tmp_path):
    p = db(tmp_path / 'a.db', BASE)
    before = tree(tmp_path)
    run({'path': p, 'integrity': 'quick', 'queries': {'x': 'SELECT * FROM users'}, 'compare_with': db(tmp_path / 'b.db', BASE)})
    before['b.db'] = tree(tmp_path)['b.db']
    assert tree(tmp_path) == before


@pytest.mark.parametrize('sql', [
    'DELETE FROM users',
    "INSERT INTO tags VALUES ('x', 'y')",
    'UPDATE users SET active = 0',
    'DROP TABLE tags',
    'CREATE TABLE evil(x)',
    'PRAGMA user_version = 1',
    'PRAGMA journal_mode = DELETE',
    "ATTACH DATABASE 'other.db' AS o",
    'WITH x AS (SELECT 1) INSERT INTO tags SELECT 1, 2 FROM x',
    'SELECT 1; DELETE FROM users',
    'VACUUM',
    'BEGIN IMMEDIATE',
    'REINDEX',
])
def test_queries_that_try_to_write_are_refused(tmp_path, sql):
    p = db(tmp_path / 'a.db', BASE)
    before = tree(tmp_path)
    r = run({'path': p, 'queries': {'sneaky': sql}})
    assert r['failed'] is True
    assert "Query 'sneaky'" in r['msg'] and p in r['msg'] and 'only read' in r['msg']
    assert tree(tmp_path) == before


def test_read_only_pragmas_and_table_functions_are_allowed(tmp_path):
    p = db(tmp_path / 'a.db', BASE)
    r = run({'path': p, 'queries': {'cols': "SELECT name FROM pragma_table_info('users')", 'uv': 'PRAGMA user_version'}})
    assert r['query_results'] == {'cols': [{'name': 'id'}, {'name': 'email'}, {'name': 'active'}], 'uv': [{'user_version': 7}]}


def test_query_with_sql_error(tmp_path):
    p = db(tmp_path / 'a.db', BASE)
    r = run({'path': p, 'queries': {'typo': 'SELEC 1'}})
    assert r['failed'] and "Query 'typo'" in r['msg'] and 'syntax error' in r['msg']


@pytest.mark.parametrize('case,expect', [
    ('missing', 'does not exist'), ('not_sqlite', 'is not an SQLite database'), ('directory', 'is a directory'),
    ('corrupt', 'failed PRAGMA quick_check'), ('truncated', 'cannot be read'), ('compare_missing', 'does not exist'),
])
def test_bad_inputs(tmp_path, case, expect):
    p = str(tmp_path / 'x.db')
    args = {'path': p, 'integrity': 'quick'}
    if case == 'not_sqlite':
        (tmp_path / 'x.db').write_text('PORT=3000\nJWT_SECRET=abc\n')
    elif case == 'directory':
        os.mkdir(p)
    elif case in ('corrupt', 'truncated', 'compare_missing'):
        db(p, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);' + ''.join("INSERT INTO t(v) VALUES ('%s');" % ('x' * 300) for _i in range(400)))
        with open(p, 'r+b') as f:
            if case == 'corrupt':
                f.seek(4096 * 4 + 50)
                f.write(b'\xff' * 2000)
            elif case == 'truncated':
                f.seek(0)
                head = f.read(4096)
                f.seek(0)
                f.truncate()
                f.write(head[:100] + b'\x00' * 3996)
        if case == 'compare_missing':
            args['compare_with'] = str(tmp_path / 'gone.db')
    before = tree(tmp_path)
    r = run(args)
    assert r['failed'] is True, r
    assert expect in r['msg']
    assert (p if case != 'compare_missing' else str(tmp_path / 'gone.db')) in r['msg']
    assert tree(tmp_path) == before


def test_locked_past_busy_timeout(tmp_path):
    p = db(tmp_path / 'a.db', BASE)
    code = ('import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN EXCLUSIVE"); '
            'c.execute("DELETE FROM tags"); print("ready", flush=True); time.sleep(30)')
    h = subprocess.Popen([sys.executable, '-c', code, p], stdout=subprocess.PIPE, text=True)
    try:
        assert h.stdout.readline().strip() == 'ready'
        r = run({'path': p, 'busy_timeout': 200})
        assert r['failed'] and 'locked longer than busy_timeout=200 ms' in r['msg'] and 'pid %d' % h.pid in r['msg']
    finally:
        h.kill()
        h.wait()


def test_writes_nothing_and_has_no_checkpoint_option(tmp_path):
    """Issue 12 point 3: an _info module writes nothing. Committed frames in the -wal stay there, byte for byte."""
    p = db(tmp_path / 'a.db', BASE, 'wal')
    c = sqlite3.connect(p, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO users VALUES (9, 'z@x', 1)")
    before = tree(tmp_path)
    r = run({'path': p})
    assert r['changed'] is False and r['wal_size'] > 0 and r['tables']['users']['rows'] == 4 and 'checkpointed' not in r
    assert tree(tmp_path) == before
    r = run({'path': p, 'checkpoint': True})
    assert r['failed'] and 'checkpoint' in r['msg']
    assert tree(tmp_path) == before
    c.close()


# ----------------------------------------------------------------------------- comparison


def test_identical_copies(tmp_path):
    a = db(tmp_path / 'a.db', BASE)
    b = db(tmp_path / 'b.db', BASE)
    cmp = run({'path': a, 'compare_with': b})['comparison']
    assert cmp['identical'] and cmp['superset'] and cmp['subset']
    assert cmp['other'] == b
    assert cmp['tables']['users'] == {'primary_key': ['id'], 'rows_here': 3, 'rows_there': 3, 'only_here': 0, 'only_there': 0, 'differ': 0}
    assert cmp['tables']['membership']['primary_key'] == ['user_id', 'team']
    assert cmp['tables']['tags']['primary_key'] == []


def test_rows_only_here_only_there_and_differing(tmp_path):
    a = db(tmp_path / 'green.db', BASE + '''
        INSERT INTO users VALUES (10, 'green-only@x', 1);
        UPDATE users SET active = 1 WHERE id = 3;
        INSERT INTO membership VALUES (3, 'ops', 'dev');
        UPDATE membership SET role = 'boss' WHERE user_id = 1;''')
    b = db(tmp_path / 'blue.db', BASE + '''
        INSERT INTO users VALUES (20, 'blue-only@x', 1), (21, 'blue-only2@x', 1);
        INSERT INTO tags VALUES ('red', 'f00');
        DELETE FROM entries WHERE id = 3;''')
    r = run({'path': a, 'compare_with': b})
    cmp = r['comparison']
    assert cmp['tables']['users'] == {'primary_key': ['id'], 'rows_here': 4, 'rows_there': 5, 'only_here': 1, 'only_there': 2, 'differ': 1}
    assert cmp['tables']['entries']['only_here'] == 1 and cmp['tables']['entries']['only_there'] == 0
    # no primary key: multiset of whole rows ('red','f00') x2 here, x3 there
    assert cmp['tables']['tags'] == {'primary_key': [], 'rows_here': 3, 'rows_there': 4, 'only_here': 0, 'only_there': 1, 'differ': 0}
    assert cmp['tables']['membership'] == {'primary_key': ['user_id', 'team'], 'rows_here': 3, 'rows_there': 2,
                                           'only_here': 1, 'only_there': 0, 'differ': 1}
    assert cmp['superset'] is False and cmp['subset'] is False and cmp['identical'] is False
    back = run({'path': b, 'compare_with': a})['comparison']
    assert back['tables']['users']['only_here'] == 2 and back['tables']['users']['only_there'] == 1


def test_superset_and_subset(tmp_path):
    small = db(tmp_path / 'small.db', BASE)
    big = db(tmp_path / 'big.db', BASE + "INSERT INTO users VALUES (50, 'new@x', 1); INSERT INTO tags VALUES ('green', '0f0');")
    cmp = run({'path': big, 'compare_with': small})['comparison']
    assert cmp['superset'] is True and cmp['subset'] is False
    cmp = run({'path': small, 'compare_with': big})['comparison']
    assert cmp['superset'] is False and cmp['subset'] is True


def test_tables_and_columns_only_on_one_side(tmp_path):
    green = db(tmp_path / 'green.db', BASE + 'ALTER TABLE users ADD COLUMN position TEXT; CREATE TABLE audit(id INTEGER PRIMARY KEY);')
    blue = db(tmp_path / 'blue.db', BASE + 'CREATE TABLE legacy(x);')
    cmp = run({'path': green, 'compare_with': blue})['comparison']
    assert cmp['tables_only_here'] == ['audit'] and cmp['tables_only_there'] == ['legacy']
    assert cmp['columns_only_here'] == {'users': ['position']} and cmp['columns_only_there'] == {}
    assert cmp['tables']['users']['differ'] == 0  # compared over the common columns
    assert cmp['superset'] is False  # legacy is only there
    blue2 = db(tmp_path / 'blue2.db', BASE)
    cmp = run({'path': green, 'compare_with': blue2})['comparison']
    assert cmp['superset'] is True and cmp['subset'] is False  # an extra column/table here loses nothing of the other


def test_sqlite_internal_tables_are_skipped_tracking_tables_compared(tmp_path):
    a = db(tmp_path / 'a.db', 'CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO t(v) VALUES (1);'
           'CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, name TEXT); INSERT INTO schema_migrations VALUES (1, "001_a.sql");')
    b = db(tmp_path / 'b.db', 'CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO t(v) VALUES (1); INSERT INTO t(v) VALUES (2);'
           'DELETE FROM t WHERE id = 2;'
           'CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, name TEXT);')
    cmp = run({'path': a, 'compare_with': b})['comparison']
    assert 'sqlite_sequence' not in cmp['tables']  # differs (1 vs 2) but is SQLite's bookkeeping
    assert cmp['tables']['t']['only_here'] == 0 and cmp['tables']['t']['only_there'] == 0
    assert cmp['tables']['schema_migrations']['only_here'] == 1
    assert cmp['superset'] is True and cmp['subset'] is False


def test_compare_is_done_in_sqlite_on_a_big_db(tmp_path):
    rows = ''.join([])
    a = db(tmp_path / 'a.db', 'CREATE TABLE e(id INTEGER PRIMARY KEY, u INT, note TEXT); CREATE TABLE n(u INT, note TEXT);')
    c = sqlite3.connect(a)
    c.execute("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<200000) INSERT INTO e SELECT x, x % 97, 'n' || x FROM r")
    c.execute("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<50000) INSERT INTO n SELECT x % 97, 'n' || x FROM r")
    c.commit()
    c.close()
    b = str(tmp_path / 'b.db')
    with open(a, 'rb') as src, open(b, 'wb') as dst:
        dst.write(src.read())
    c = sqlite3.connect(b)
    c.execute("UPDATE e SET note = 'changed' WHERE id % 1000 = 0")
    c.execute('DELETE FROM e WHERE id > 199990')
    c.execute("INSERT INTO n VALUES (1, 'extra')")
    c.commit()
    c.close()
    assert rows == ''
    cmp = run({'path': a, 'compare_with': b})['comparison']
    assert cmp['tables']['e'] == {'primary_key': ['id'], 'rows_here': 200000, 'rows_there': 199990, 'only_here': 10, 'only_there': 0, 'differ': 199}
    assert cmp['tables']['n']['only_there'] == 1 and cmp['tables']['n']['only_here'] == 0
