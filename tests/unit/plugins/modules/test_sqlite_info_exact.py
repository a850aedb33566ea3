# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_info compare_with is exact: real SQLite files that differ only in ways SQLite's own ``=`` hides.

Phase 2 trusts ``comparison.superset`` / ``subset`` to refuse data loss, so every case here is a pair of
databases whose rows are NOT the same (or the same rows with a different schema) and the test asserts the
comparison says so, in both directions.
"""
from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_info
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_info)


def db(path, sql, params=(), mode='delete', collations=None):
    c = sqlite3.connect(str(path), isolation_level=None)
    for name, fn in (collations or {}).items():
        c.create_collation(name, fn)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.executescript(sql)
    for stmt, args in params:
        c.execute(stmt, args)
    c.close()
    return str(path)


def compare(tmp_path, schema_a, rows_a, schema_b=None, rows_b=None, *, collations=None):
    a = db(tmp_path / 'a.db', schema_a, rows_a, collations=collations)
    b = db(tmp_path / 'b.db', schema_b if schema_b is not None else schema_a, rows_b or [], collations=collations)
    before = tree(tmp_path)
    r = run({'path': a, 'compare_with': b})
    assert tree(tmp_path) == before
    assert 'failed' not in r, r
    return r['comparison']


def _ins(table, *rows):
    return [('INSERT INTO %s VALUES (%s)' % (table, ', '.join('?' * len(r))), r) for r in rows]


# each case: (schema, rows here, rows there); the rows differ in exactly one way SQLite's "=" (or a collation) hides
CASES = {
    'nocase_column': ('CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE);',
                      _ins('t', (1, 'Ann@x')), _ins('t', (1, 'ann@x'))),
    'nocase_primary_key': ('CREATE TABLE t(email TEXT COLLATE NOCASE PRIMARY KEY, n INT);',
                           _ins('t', ('Ann@x', 1)), _ins('t', ('ann@x', 1))),
    'rtrim_column': ('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT COLLATE RTRIM);',
                     _ins('t', (1, 'bob')), _ins('t', (1, 'bob  '))),
    'rtrim_without_rowid_key': ('CREATE TABLE t(k TEXT COLLATE RTRIM PRIMARY KEY, v) WITHOUT ROWID;',
                                _ins('t', ('k', 1)), _ins('t', ('k ', 1))),
    'integer_vs_real': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);', _ins('t', (1, 1)), _ins('t', (1, 1.0))),
    'text_vs_integer_no_affinity': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);', _ins('t', (1, '1')), _ins('t', (1, 1))),
    'text_vs_blob': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);', _ins('t', (1, 'ab')), _ins('t', (1, b'ab'))),
    'negative_zero': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);', _ins('t', (1, 0.0)), _ins('t', (1, -0.0))),
    'last_bit_of_a_real': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v REAL);',
                           _ins('t', (1, 0.1 + 0.2)), _ins('t', (1, 0.30000000000000004 + 2 ** -54))),
    'blob_bytes': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);', _ins('t', (1, b'\x00\x01')), _ins('t', (1, b'\x00\x02'))),
    'blob_trailing_nul': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);', _ins('t', (1, b'ab')), _ins('t', (1, b'ab\x00'))),
    'text_with_nul_tail': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);', _ins('t', (1, 'ab')), _ins('t', (1, 'ab\x00z'))),
    'unicode_normal_forms': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);', _ins('t', (1, 'caf\u00e9')), _ins('t', (1, 'cafe\u0301'))),
    'null_vs_empty_text': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);', _ins('t', (1, None)), _ins('t', (1, ''))),
    'null_text_primary_key_counts': ('CREATE TABLE t(k TEXT PRIMARY KEY, v);',
                                     _ins('t', (None, 1), (None, 1)), _ins('t', (None, 1))),
    'null_text_primary_key_values': ('CREATE TABLE t(k TEXT PRIMARY KEY, v);',
                                     _ins('t', (None, 1), ('a', 1)), _ins('t', (None, 2), ('a', 1))),
    'duplicate_rows_no_key': ('CREATE TABLE t(a, b);', _ins('t', ('x', 1), ('x', 1)), _ins('t', ('x', 1))),
    'duplicate_rows_nocase_no_key': ('CREATE TABLE t(a TEXT COLLATE NOCASE, b);',
                                     _ins('t', ('x', 1), ('X', 1)), _ins('t', ('x', 1), ('x', 1))),
    'text_affinity_key_vs_int_key': ('CREATE TABLE t(k TEXT PRIMARY KEY, v);', _ins('t', ('01', 1)), _ins('t', ('1', 1))),
    'huge_integers': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);',
                      _ins('t', (1, 9223372036854775807)), _ins('t', (1, 9223372036854775806))),
    'integer_vs_real_past_2_53': ('CREATE TABLE t(id INTEGER PRIMARY KEY, v);',
                                  _ins('t', (1, 2 ** 53 + 1)), _ins('t', (1, float(2 ** 53)))),
    'rowid_table_without_key_long_text': ('CREATE TABLE t(v TEXT COLLATE NOCASE);',
                                          _ins('t', ('A' * 5000,)), _ins('t', ('a' * 5000,))),
}


# cases where "here" holds every row of "there" plus one more copy
HERE_HOLDS_ALL = {'null_text_primary_key_counts', 'duplicate_rows_no_key'}


@pytest.mark.parametrize('case', sorted(CASES))
def test_rows_that_sqlite_calls_equal_are_different(tmp_path, case):
    schema, here, there = CASES[case]
    cmp = compare(tmp_path, schema, here, schema, there)
    t = cmp['tables']['t']
    assert cmp['identical'] is False and cmp['rows_identical'] is False, (case, cmp)
    assert cmp['subset'] is False, (case, cmp)  # here holds a row that is not there
    assert cmp['superset'] is (case in HERE_HOLDS_ALL), (case, cmp)
    assert t['only_here'] + t['differ'] >= 1, (case, t)
    assert t['rows_here'] == len(here) and t['rows_there'] == len(there)
    # and the same pair the other way round
    back = run({'path': str(tmp_path / 'b.db'), 'compare_with': str(tmp_path / 'a.db')})['comparison']
    assert back['identical'] is False and back['tables']['t']['only_there'] + back['tables']['t']['differ'] >= 1


@pytest.mark.parametrize('case', sorted(CASES))
def test_the_same_rows_are_identical(tmp_path, case):
    schema, here, _there = CASES[case]
    cmp = compare(tmp_path, schema, here, schema, here)
    assert cmp['identical'] is True and cmp['rows_identical'] is True and cmp['schema_identical'] is True, (case, cmp)
    t = cmp['tables']['t']
    assert (t['only_here'], t['only_there'], t['differ']) == (0, 0, 0)


def test_custom_collation_is_ignored(tmp_path):
    """An app's own collation that calls everything equal: the module cannot even load it, and still compares exactly."""
    schema = 'CREATE TABLE t(k TEXT COLLATE anything PRIMARY KEY, v) WITHOUT ROWID;'
    same = {'anything': lambda a, b: 0}
    cmp = compare(tmp_path, schema, _ins('t', ('a', 1)), schema, _ins('t', ('b', 1)), collations=same)
    assert cmp['superset'] is False and cmp['subset'] is False
    assert cmp['tables']['t']['only_here'] == 1 and cmp['tables']['t']['only_there'] == 1


def test_null_keys_with_different_counts_are_not_identical(tmp_path):
    """The reported case: TEXT PRIMARY KEY with NULL keys and a different number of rows."""
    schema = 'CREATE TABLE s(token TEXT PRIMARY KEY, user_id INT);'
    cmp = compare(tmp_path, schema, _ins('s', (None, 1), (None, 2), ('t', 3)), schema, _ins('s', (None, 1), ('t', 3)))
    s = cmp['tables']['s']
    assert s['rows_here'] == 3 and s['rows_there'] == 2
    assert cmp['superset'] is True and cmp['subset'] is False and cmp['identical'] is False
    assert s['only_here'] + s['differ'] == 1 and s['only_there'] == 0


def test_differ_counts_rows_with_the_same_exact_key(tmp_path):
    schema = 'CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE, n INT);'
    here = _ins('u', (1, 'a@x', 1), (2, 'b@x', 1), (3, 'c@x', 1))
    there = _ins('u', (1, 'A@x', 1), (2, 'b@x', 1), (4, 'd@x', 1))
    t = compare(tmp_path, schema, here, schema, there)['tables']['u']
    assert t == {'primary_key': ['id'], 'rows_here': 3, 'rows_there': 3, 'only_here': 1, 'only_there': 1, 'differ': 1}


def test_many_rows_multiset(tmp_path):
    """Counts are exact on a table with many duplicates (multiset, not set)."""
    a = db(tmp_path / 'a.db', 'CREATE TABLE t(v);'
           'WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<3000) INSERT INTO t SELECT x % 7 FROM r;')
    b = db(tmp_path / 'b.db', 'CREATE TABLE t(v);'
           'WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x<3000) INSERT INTO t SELECT x % 7 FROM r;'
           'DELETE FROM t WHERE rowid IN (SELECT rowid FROM t WHERE v = 3 LIMIT 5); INSERT INTO t VALUES (3.0), (3.0);')
    t = run({'path': a, 'compare_with': b})['comparison']['tables']['t']
    assert t['only_here'] == 5 and t['only_there'] == 2 and t['differ'] == 0
    assert t['rows_here'] == 3000 and t['rows_there'] == 2997


@pytest.mark.parametrize('extra,kind', [
    ('CREATE INDEX i_v ON t(v);', 'indexes'),
    ('CREATE VIEW w AS SELECT v FROM t;', 'views'),
    ('CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;', 'triggers'),
])
def test_index_view_trigger_only_on_one_side(tmp_path, extra, kind):
    schema = 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'
    cmp = compare(tmp_path, schema + extra, _ins('t', (1, 'a')), schema, _ins('t', (1, 'a')))
    assert cmp['rows_identical'] is True and cmp['superset'] is True and cmp['subset'] is True
    assert cmp['schema_identical'] is False and cmp['identical'] is False
    assert len(cmp['schema'][kind]['only_here']) == 1 and cmp['schema'][kind]['only_there'] == []


@pytest.mark.parametrize('a_sql,b_sql,kind', [
    ('CREATE INDEX i ON t(v);', 'CREATE INDEX i ON t(v DESC);', 'indexes'),
    ('CREATE INDEX i ON t(v);', 'CREATE UNIQUE INDEX i ON t(v);', 'indexes'),
    ("CREATE VIEW w AS SELECT v FROM t WHERE v = 'a';", "CREATE VIEW w AS SELECT v FROM t WHERE v = 'A';", 'views'),
    ('CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;', 'CREATE TRIGGER tr BEFORE INSERT ON t BEGIN SELECT 1; END;', 'triggers'),
])
def test_index_view_trigger_sql_differs(tmp_path, a_sql, b_sql, kind):
    schema = 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'
    cmp = compare(tmp_path, schema + a_sql, _ins('t', (1, 'a')), schema + b_sql, _ins('t', (1, 'a')))
    assert cmp['rows_identical'] is True and cmp['identical'] is False
    assert cmp['schema'][kind]['differ'] and not cmp['schema'][kind]['only_here']


def test_table_sql_collation_difference_is_a_schema_difference(tmp_path):
    cmp = compare(tmp_path, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT COLLATE NOCASE);', _ins('t', (1, 'a')),
                  'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);', _ins('t', (1, 'a')))
    assert cmp['rows_identical'] is True and cmp['schema']['tables']['differ'] == ['t'] and cmp['identical'] is False


def test_formatting_and_comments_are_not_a_difference_but_literals_are(tmp_path):
    cmp = compare(tmp_path, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT DEFAULT 'a  b');\nCREATE INDEX i ON t(v);", [],
                  "create table t (\n  id integer primary key, -- the key\n  v text default 'a  b'\n);\nCREATE INDEX i ON t ( v );", [])
    assert cmp['identical'] is True, cmp['schema']
    (tmp_path / 'again').mkdir()
    cmp = compare(tmp_path / 'again', "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT DEFAULT 'a  b');", [],
                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT DEFAULT 'a b');", [])
    assert cmp['schema']['tables']['differ'] == ['t'] and cmp['identical'] is False


def test_user_version_difference(tmp_path):
    cmp = compare(tmp_path, 'CREATE TABLE t(x); PRAGMA user_version=3;', [], 'CREATE TABLE t(x); PRAGMA user_version=2;', [])
    assert cmp['rows_identical'] is True and cmp['identical'] is False
    assert cmp['schema']['settings'] == {'user_version': {'here': 3, 'there': 2}}


def test_different_text_encodings_are_refused_clearly(tmp_path):
    a = db(tmp_path / 'a.db', "CREATE TABLE t(v); INSERT INTO t VALUES ('x');")
    b = db(tmp_path / 'b.db', "PRAGMA encoding='UTF-16le'; CREATE TABLE t(v); INSERT INTO t VALUES ('x');")
    before = tree(tmp_path)
    r = run({'path': a, 'compare_with': b})
    assert r['failed'] is True and 'UTF-8' in r['msg'] and 'UTF-16le' in r['msg'] and a in r['msg'] and b in r['msg']
    assert 'Traceback' not in str(r) and 'exception' not in r
    assert tree(tmp_path) == before
