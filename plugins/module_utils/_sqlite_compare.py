# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only facts about an SQLite database and an exact row-level comparison of two.

Everything runs inside SQLite (ATTACH ... read-only, GROUP BY / JOIN queries) so comparing two large databases
does not pull rows into Python.

Exactness: rows are compared on a key built from every value's storage class (``typeof``) and its bytes
(``hex`` of the text/blob/integer text; the IEEE-754 bits of a REAL), never with ``=`` on the columns
themselves, so neither a declared collation (NOCASE, RTRIM, an app's own), nor affinity, nor ``1 = 1.0``,
nor ``0.0 = -0.0`` can make two different rows look equal. Rows are multisets (a duplicated row counts twice)
and NULL keys are values like any other.

Reading without writing: a closed WAL database (no ``-wal``/``-shm`` beside it) is read with ``immutable=1`` so
SQLite creates no side files, and the file is checked to be unchanged afterwards (see :class:`Source`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite import DbfixError, real_db_path, uri_for

# statements a read-only query may contain (sqlite3 authorizer action codes)
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, 'SQLITE_RECURSIVE', 33)}
_READ_PRAGMAS = {
    'table_info', 'table_xinfo', 'index_list', 'index_info', 'index_xinfo', 'foreign_key_list', 'user_version',
    'schema_version', 'page_size', 'page_count', 'freelist_count', 'journal_mode', 'encoding', 'application_id',
    'database_list', 'compile_options', 'data_version', 'collation_list', 'function_list', 'table_list',
}
_ACTIONS = ('CREATE_INDEX', 'CREATE_TABLE', 'CREATE_TEMP_INDEX', 'CREATE_TEMP_TABLE', 'CREATE_TEMP_TRIGGER', 'CREATE_TEMP_VIEW',
            'CREATE_TRIGGER', 'CREATE_VIEW', 'DELETE', 'DROP_INDEX', 'DROP_TABLE', 'DROP_TEMP_INDEX', 'DROP_TEMP_TABLE',
            'DROP_TEMP_TRIGGER', 'DROP_TEMP_VIEW', 'DROP_TRIGGER', 'DROP_VIEW', 'INSERT', 'PRAGMA', 'READ', 'SELECT',
            'TRANSACTION', 'UPDATE', 'ATTACH', 'DETACH', 'ALTER_TABLE', 'REINDEX', 'ANALYZE', 'CREATE_VTABLE', 'DROP_VTABLE',
            'FUNCTION', 'SAVEPOINT', 'RECURSIVE')
_ACTION_NAMES = {getattr(sqlite3, 'SQLITE_' + n): n for n in _ACTIONS if hasattr(sqlite3, 'SQLITE_' + n)}
# how often (SQLite VM steps) the deadline is checked; ~1 ms of work between checks
PROGRESS_STEPS = 1000


def qi(name):
    """Quote an identifier."""
    return '"%s"' % name.replace('"', '""')


# --------------------------------------------------------------------------- deadlines


class DeadlineExceeded(Exception):
    """A statement was interrupted because its deadline passed."""

    def __init__(self, what, seconds):
        super().__init__(what)
        self.what = what
        self.seconds = seconds


class Deadline:
    """An overall deadline for everything a connection runs, enforced by SQLite's progress handler.

    ``phase(what, seconds)`` narrows it for one part (the named queries); the overall one always applies.
    A statement past the deadline is interrupted by SQLite (it returns "interrupted"), so no lock is held
    longer than that; :meth:`check` turns that into :class:`DeadlineExceeded`.
    """

    def __init__(self, conn, seconds, what):
        self.conn = conn
        self.overall = time.monotonic() + seconds
        self.overall_what = (what, seconds)
        self.until = self.overall
        self.what = self.overall_what
        self.hit = None
        conn.set_progress_handler(self._tick, PROGRESS_STEPS)

    def _tick(self):
        if time.monotonic() > self.until:
            self.hit = self.what
            return 1
        return 0

    def phase(self, what, seconds):
        end = time.monotonic() + seconds
        if end < self.overall:
            self.until, self.what = end, (what, seconds)
        else:
            self.until, self.what = self.overall, self.overall_what

    def end_phase(self):
        self.until, self.what = self.overall, self.overall_what

    def check(self, exc=None):
        """Raise DeadlineExceeded if the deadline interrupted a statement (or has passed)."""
        if self.hit is None and time.monotonic() > self.until:
            self.hit = self.what
        if self.hit is not None:
            raise DeadlineExceeded(*self.hit) from exc


# --------------------------------------------------------------------------- opening without writing


def _stat(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Source:
    """How one database file is opened without writing anything beside it.

    * rollback-journal mode, or a WAL database with both ``-wal`` and ``-shm`` (in use): ``mode=ro``; SQLite
      creates nothing new.
    * a closed WAL database whose ``-wal`` is missing or empty: the file alone holds every committed row, so it is
      read with ``immutable=1`` (no locks, no ``-wal``/``-shm`` created); :meth:`unchanged` afterwards proves
      nobody opened or wrote it meanwhile (else the caller reads again).
    * a closed WAL database with committed frames in its ``-wal`` but no ``-shm`` (an app that crashed or was
      killed): SQLite would create the ``-shm`` to read it, so the two files are copied into a private
      temporary folder (mode 0700, removed afterwards) and read there; :meth:`unchanged` proves the copy is
      of one state.
    """

    def __init__(self, path, header):
        self.path = path
        self.real = real_db_path(path)
        self.wal_header = bool(header.get('wal'))
        self.tmpdir = None
        wal, shm = self.real + '-wal', self.real + '-shm'
        self.before = (_stat(self.real), _stat(wal), _stat(shm))
        wal_st, shm_st = self.before[1], self.before[2]
        if not self.wal_header or (wal_st is not None and shm_st is not None):
            self.how = 'ro'
        elif wal_st is None or wal_st[1] == 0:
            self.how = 'immutable'
        else:
            self.how = 'copy'

    def uri(self):
        if self.how == 'immutable':
            return uri_for(self.real, 'ro', immutable=True)
        if self.how == 'copy':
            self.tmpdir = tempfile.mkdtemp(prefix='dbfix-info-')  # 0700: the copy may hold secrets
            dst = os.path.join(self.tmpdir, 'db')
            try:
                for suffix in ('', '-wal'):
                    fd = os.open(dst + suffix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, 'wb') as out, open(self.real + suffix, 'rb') as src:
                        shutil.copyfileobj(src, out)
            except OSError as e:
                self.cleanup()
                raise DbfixError('Reading %s needs a private copy of it and its -wal (it has committed frames in its -wal but no '
                                 '-shm: the app that wrote it crashed or was killed, and SQLite would create the -shm beside '
                                 'it). Copying to %s failed: %s. Nothing was changed; free space in the temporary folder '
                                 '(TMPDIR) or start the app once so SQLite recovers the WAL.'
                                 % (self.path, tempfile.gettempdir(), e)) from e
            return uri_for(dst, 'ro')
        return uri_for(self.real, 'ro')

    def unchanged(self):
        """True when the file (and side files) are as they were when the plan was made (for immutable/copy reads)."""
        if self.how == 'ro':
            return True
        now = (_stat(self.real), _stat(self.real + '-wal'), _stat(self.real + '-shm'))
        return now == self.before

    def cleanup(self):
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def connect_ro(source, busy_timeout_ms):
    conn = sqlite3.connect(source.uri(), uri=True, timeout=busy_timeout_ms / 1000.0, isolation_level=None, check_same_thread=False)
    conn.execute('PRAGMA busy_timeout=%d' % busy_timeout_ms)
    conn.execute('PRAGMA query_only=1')
    return conn


def attach(conn, source, alias='other'):
    uri = source.uri()
    _with_stand_ins(conn, lambda: conn.execute('ATTACH DATABASE ? AS %s' % alias, (uri,)))
    stand_in_collations(conn, alias)


_COLLATE = re.compile(r'''\bCOLLATE\s+("(?:[^"]|"")+"|'(?:[^']|'')+'|`(?:[^`]|``)+`|\[[^\]]+\]|[A-Za-z_0-9$\x80-\U0010ffff]+)''', re.I)
_MISSING_COLLATION = re.compile(r'no such collation sequence: (.+)$')
_BUILTIN_COLLATIONS = {'binary', 'nocase', 'rtrim'}


def _binary(a, b):
    return (a > b) - (a < b)


def _with_stand_ins(conn, action, tries=100):
    """Run ``action``; each time SQLite misses a collation while loading a schema, add a stand-in and retry."""
    for _attempt in range(tries):
        try:
            return action()
        except sqlite3.OperationalError as e:
            m = _MISSING_COLLATION.search(str(e))
            if not m:
                raise
            conn.create_collation(m.group(1), _binary)
    return action()


def stand_in_collations(conn, schema='main'):
    """Register a binary stand-in for every collation the schema names that this SQLite lacks (an app's own).

    SQLite refuses to load a schema (a WITHOUT ROWID key) or read a table declared with an unknown collation.
    The comparison never uses a collation (it compares bytes), so the stand-in changes nothing there; in named
    queries it orders and compares such columns as BINARY.
    """
    rows = _with_stand_ins(conn, lambda: conn.execute('SELECT sql FROM %s.sqlite_master WHERE sql IS NOT NULL' % schema).fetchall())
    names = set()
    for (sql,) in rows:
        for m in _COLLATE.findall(sql):
            name = m[1:-1].replace(m[0] * 2, m[0]) if m[0] in '"\'`' else (m[1:-1] if m[0] == '[' else m)
            names.add(name)
    # a fresh connection knows only SQLite's built-in collations (PRAGMA collation_list also lists names a schema
    # merely mentions, so it cannot tell which ones exist)
    for name in sorted(names):
        if name.lower() not in _BUILTIN_COLLATIONS:
            conn.create_collation(name, _binary)


# --------------------------------------------------------------------------- named queries


def read_only_authorizer(denied):
    def auth(action, arg1, arg2, dbname, source):
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        # table-valued pragma functions (pragma_table_info(...)) report an UPDATE of sqlite_master while they set up;
        # that is no write: the connection is also mode=ro and query_only, which refuse any real write.
        if action == sqlite3.SQLITE_UPDATE and arg1 == 'sqlite_master' and source is None and dbname == 'main':
            return sqlite3.SQLITE_OK
        name = (arg1 or '').lower()
        if action == sqlite3.SQLITE_PRAGMA and name in _READ_PRAGMAS and (arg2 is None or name.startswith(('table_', 'index_', 'foreign_'))):
            return sqlite3.SQLITE_OK
        denied.append('%s %s' % (_ACTION_NAMES.get(action, action), arg1 or ''))
        return sqlite3.SQLITE_DENY
    return auth


def _jsonable(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)  # 'inf' / '-inf': JSON has no literal for them (SQLite turns NaN into NULL)
    return v


def run_queries(conn, queries, deadline=None, timeout=None):
    """Run named read-only queries; raise ValueError(name, reason) on a write attempt or error.

    With ``deadline``, all queries together must finish within ``timeout`` seconds (DeadlineExceeded).
    """
    results = {}
    if deadline is not None and queries:
        deadline.phase('query_timeout', timeout)
    try:
        for name, sql in (queries or {}).items():
            denied = []
            conn.set_authorizer(read_only_authorizer(denied))
            try:
                cur = conn.execute(sql)
                cols = [d[0] for d in cur.description or []]
                rows = []
                while True:
                    batch = cur.fetchmany(500)
                    if not batch:
                        break
                    rows.extend(dict(zip(cols, [_jsonable(v) for v in row], strict=True)) for row in batch)
                    if deadline is not None:
                        deadline.check()
                results[name] = rows
            except DeadlineExceeded as e:
                e.name = name
                raise
            except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as e:
                if deadline is not None:
                    try:
                        deadline.check(e)
                    except DeadlineExceeded as d:
                        d.name = name
                        raise
                if denied:
                    raise ValueError(name, 'it tries to do something other than read (%s denied; %s)' % (', '.join(denied), e)) from e
                if isinstance(e, ValueError) and '\x00' in sql:
                    raise ValueError(name, 'it contains a NUL byte') from e
                raise ValueError(name, 'SQLite says "%s"' % e) from e
            finally:
                conn.set_authorizer(None)
    finally:
        if deadline is not None:
            deadline.end_phase()
    return results


# --------------------------------------------------------------------------- facts


def table_names(conn, schema='main'):
    rows = conn.execute("SELECT name FROM %s.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' ORDER BY name"
                        % schema).fetchall()
    return [r[0] for r in rows]


def table_info(conn, table, schema='main'):
    """[(name, pk_index)] in column order."""
    return [(r[1], r[5]) for r in conn.execute('PRAGMA %s.table_info(%s)' % (schema, qi(table))).fetchall()]


def tables_facts(conn):
    out = {}
    for t in table_names(conn):
        cols = [c for c, dummy in table_info(conn, t)]
        rows = conn.execute('SELECT count(*) FROM main.%s' % qi(t)).fetchone()[0]
        out[t] = {'columns': cols, 'rows': rows}
    return out


def schema_sha256(conn):
    """sha256 of the schema with whitespace and identifier-case noise removed, order-independent."""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                        "AND sql IS NOT NULL").fetchall()
    norm = sorted([t, n.lower(), tb.lower(), re.sub(r'\s+', ' ', re.sub(r'\s*([(),])\s*', r'\1', s.strip()))] for t, n, tb, s in rows)
    return hashlib.sha256(json.dumps(norm).encode('utf-8')).hexdigest()


# --------------------------------------------------------------------------- comparison

_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|$)|\s+|[A-Za-z_0-9$\x80-\U0010ffff]+|.""",
                    re.S)
_ASCII_LOWER = str.maketrans('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')


def normalize_sql(sql):
    """SQL text with formatting noise removed: comments, whitespace runs, ASCII case outside quotes.

    Quoted strings and identifiers are kept byte for byte (``DEFAULT 'a  b'`` differs from ``DEFAULT 'a b'``).
    """
    if sql is None:
        return None
    out = []
    for tok in _TOKEN.findall(sql):
        if tok[0] in '\'"`[':
            out.append(tok)
        elif tok.isspace() or tok.startswith(('--', '/*')):
            if out and out[-1] != ' ':
                out.append(' ')
        else:
            out.append(tok.translate(_ASCII_LOWER))
    text = ''.join(out).strip()
    # spaces next to punctuation carry no meaning; quoted text was never split into such tokens
    parts = _TOKEN.findall(text)
    res = []
    for i, tok in enumerate(parts):
        if tok == ' ':
            prev = parts[i - 1] if i else ''
            nxt = parts[i + 1] if i + 1 < len(parts) else ''
            if prev in ('(', ')', ',', ';', '=') or nxt in ('(', ')', ',', ';', '='):
                continue
        res.append(tok)
    return ''.join(res)


def _f64(v):
    """The exact bits of a REAL (SQLite's own text form of 0.0 and -0.0 is the same)."""
    if isinstance(v, float):
        return struct.pack('>d', v).hex()
    return None


def register_functions(conn):
    conn.create_function('dbfix_f64', 1, _f64, deterministic=True)


def _value_key(col):
    """Two SQL expressions that are equal (GROUP BY) for two values only when they have the same storage class and bytes.

    TEXT becomes a BLOB of its bytes and BLOBs stay BLOBs (compared with memcmp: no collation applies to a BLOB),
    INTEGERs compare as integers, REALs as their IEEE-754 bits (text, from a function: BINARY), NULL is NULL
    (GROUP BY puts NULLs together). The storage class comes first, so values of different classes never meet.
    """
    c = qi(col)
    return ['typeof(%s)' % c, "CASE typeof(%s) WHEN 'text' THEN CAST(%s AS BLOB) WHEN 'real' THEN dbfix_f64(%s) ELSE %s END" % (c, c, c, c)]


def _compare_rows(conn, table, common, pk, alias):
    """Exact multiset comparison of one table; return (rows seen here, rows seen there, only_here, only_there, differ).

    A row is "only here" when the other side has fewer exact copies of it. With a primary key, an unmatched row
    here and an unmatched row there with the same (exact) key are one "differing" row instead.
    """
    q = qi(table)
    exprs, names, key_names = [], [], []
    for i, col in enumerate(common):
        for j, e in enumerate(_value_key(col)):
            exprs.append('%s AS k%d_%d' % (e, i, j))
            names.append('k%d_%d' % (i, j))
            if col in pk:
                key_names.append('k%d_%d' % (i, j))
    sel, allk = ', '.join(exprs), ', '.join(names)
    # Sorting (GROUP BY) instead of joining: two sorts over all rows, O(n log n), whatever the indexes.
    # x: one line per distinct exact row with its number of copies on each side; g: per exact primary key (per
    # exact row for a table without one, so nothing pairs up as differing), the copies each side has more.
    sql = (
        'WITH u AS (SELECT %(sel)s, 1 AS h__, 0 AS t__ FROM main.%(q)s UNION ALL SELECT %(sel)s, 0, 1 FROM %(alias)s.%(q)s), '
        'x AS (SELECT %(allk)s, sum(h__) AS h__, sum(t__) AS t__ FROM u GROUP BY %(allk)s), '
        'g AS (SELECT sum(h__) AS sh, sum(t__) AS st, sum(max(h__ - t__, 0)) AS xh, sum(max(t__ - h__, 0)) AS xt FROM x GROUP BY %(g)s) '
        'SELECT coalesce(sum(sh), 0), coalesce(sum(st), 0), coalesce(sum(xh), 0), coalesce(sum(xt), 0), '
        'coalesce(sum(min(xh, xt)), 0) FROM g'
    ) % {'sel': sel, 'allk': allk, 'q': q, 'alias': alias, 'g': ', '.join(key_names) if pk else allk}
    seen_h, seen_t, xh, xt, differ = conn.execute(sql).fetchone()
    return seen_h, seen_t, xh - differ, xt - differ, differ


def _schema_objects(conn, schema):
    rows = conn.execute("SELECT type, name, sql FROM %s.sqlite_master WHERE name NOT LIKE 'sqlite\\_%%' ESCAPE '\\'" % schema).fetchall()
    return {(t, n): normalize_sql(s) for t, n, s in rows}


def compare_schema(conn, alias='other'):
    """Differences of tables' SQL, indexes, views, triggers and the settings an app's migrator reads."""
    here, there = _schema_objects(conn, 'main'), _schema_objects(conn, alias)
    out = {}
    for kind, label in (('table', 'tables'), ('index', 'indexes'), ('view', 'views'), ('trigger', 'triggers')):
        h = {n: s for (t, n), s in here.items() if t == kind}
        o = {n: s for (t, n), s in there.items() if t == kind}
        out[label] = {
            'only_here': sorted(set(h) - set(o)),
            'only_there': sorted(set(o) - set(h)),
            'differ': sorted(n for n in set(h) & set(o) if h[n] != o[n]),
        }
    settings = {}
    for pragma in ('user_version', 'application_id'):
        a = conn.execute('PRAGMA main.%s' % pragma).fetchone()[0]
        b = conn.execute('PRAGMA %s.%s' % (alias, pragma)).fetchone()[0]
        if a != b:
            settings[pragma] = {'here': a, 'there': b}
    out['settings'] = settings
    return out


class CountMismatch(Exception):
    def __init__(self, table, side, counted, seen):
        super().__init__(table)
        self.table, self.side, self.counted, self.seen = table, side, counted, seen


def compare(conn, other_path, alias='other'):
    """Compare main with the ATTACHed ``alias`` (see the module's RETURN for the shape)."""
    register_functions(conn)
    here = table_names(conn, 'main')
    there = table_names(conn, alias)
    res = {
        'other': other_path, 'tables': {},
        'tables_only_here': sorted(set(here) - set(there)),
        'tables_only_there': sorted(set(there) - set(here)),
        'columns_only_here': {}, 'columns_only_there': {},
    }
    superset = not res['tables_only_there']
    subset = not res['tables_only_here']
    for t in [x for x in here if x in there]:
        hi, ti = table_info(conn, t, 'main'), table_info(conn, t, alias)
        hcols, tcols = [c for c, dummy in hi], [c for c, dummy in ti]
        common = [c for c in hcols if c in tcols]
        only_h = [c for c in hcols if c not in tcols]
        only_t = [c for c in tcols if c not in hcols]
        if only_h:
            res['columns_only_here'][t] = only_h
            subset = False
        if only_t:
            res['columns_only_there'][t] = only_t
            superset = False
        hpk = [c for c, k in sorted(hi, key=lambda x: x[1]) if k]
        tpk = [c for c, k in sorted(ti, key=lambda x: x[1]) if k]
        q = qi(t)
        entry = {
            'primary_key': hpk if hpk and hpk == tpk else [],
            'rows_here': conn.execute('SELECT count(*) FROM main.%s' % q).fetchone()[0],
            'rows_there': conn.execute('SELECT count(*) FROM %s.%s' % (alias, q)).fetchone()[0],
        }
        if common:
            seen_h, seen_t, entry['only_here'], entry['only_there'], entry['differ'] = _compare_rows(
                conn, t, common, entry['primary_key'], alias)
            # count(*) may be answered from an index; the comparison read every row: both must agree
            if seen_h != entry['rows_here']:
                raise CountMismatch(t, 'here', entry['rows_here'], seen_h)
            if seen_t != entry['rows_there']:
                raise CountMismatch(t, 'there', entry['rows_there'], seen_t)
        else:
            entry['only_here'], entry['only_there'], entry['differ'] = entry['rows_here'], entry['rows_there'], 0
        if entry['rows_here'] - entry['only_here'] != entry['rows_there'] - entry['only_there']:
            raise CountMismatch(t, 'both', entry['rows_here'] - entry['only_here'], entry['rows_there'] - entry['only_there'])
        if entry['only_there'] or entry['differ']:
            superset = False
        if entry['only_here'] or entry['differ']:
            subset = False
        res['tables'][t] = entry
    schema = compare_schema(conn, alias)
    res['schema'] = schema
    res['superset'] = superset
    res['subset'] = subset
    res['rows_identical'] = superset and subset
    res['schema_identical'] = not schema['settings'] and not any(
        v['only_here'] or v['only_there'] or v['differ'] for k, v in schema.items() if k != 'settings')
    res['identical'] = res['rows_identical'] and res['schema_identical']
    return res
