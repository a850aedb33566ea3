# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only facts about an SQLite database and row-level comparison of two.

Everything runs inside SQLite (ATTACH ... read-only, NOT EXISTS / JOIN / GROUP BY
queries) so comparing two large databases does not pull rows into Python.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3

from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite import uri_for

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


def qi(name):
    """Quote an identifier."""
    return '"%s"' % name.replace('"', '""')


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
    return v


def run_queries(conn, queries):
    """Run named read-only queries; raise ValueError(name, reason) on a write attempt or error."""
    results = {}
    for name, sql in (queries or {}).items():
        denied = []
        conn.set_authorizer(read_only_authorizer(denied))
        try:
            cur = conn.execute(sql)
            cols = [d[0] for d in cur.description or []]
            results[name] = [dict(zip(cols, [_jsonable(v) for v in row], strict=True)) for row in cur.fetchall()]
        except (sqlite3.Error, sqlite3.Warning) as e:
            if denied:
                raise ValueError(name, 'it tries to do something other than read (%s denied; %s)' % (', '.join(denied), e)) from e
            raise ValueError(name, 'SQLite says "%s"' % e) from e
        finally:
            conn.set_authorizer(None)
    return results


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


def attach(conn, path, alias='other'):
    conn.execute('ATTACH DATABASE ? AS %s' % alias, (uri_for(path, 'ro'),))


def _eq(a, b, cols):
    return ' AND '.join('%s.%s IS %s.%s' % (a, qi(c), b, qi(c)) for c in cols) or '1'


def _ne(a, b, cols):
    return ' OR '.join('%s.%s IS NOT %s.%s' % (a, qi(c), b, qi(c)) for c in cols) or '0'


def compare(conn, other_path, alias='other'):
    """Compare main with the ATTACHed ``alias`` (see module docs for the shape)."""
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
        if entry['primary_key']:
            pk = entry['primary_key']
            rest = [c for c in common if c not in pk]
            entry['only_here'] = conn.execute(
                'SELECT count(*) FROM main.%s a WHERE NOT EXISTS (SELECT 1 FROM %s.%s b WHERE %s)' % (q, alias, q, _eq('a', 'b', pk))).fetchone()[0]
            entry['only_there'] = conn.execute(
                'SELECT count(*) FROM %s.%s b WHERE NOT EXISTS (SELECT 1 FROM main.%s a WHERE %s)' % (alias, q, q, _eq('a', 'b', pk))).fetchone()[0]
            entry['differ'] = conn.execute(
                'SELECT count(*) FROM main.%s a JOIN %s.%s b ON %s WHERE %s' % (q, alias, q, _eq('a', 'b', pk), _ne('a', 'b', rest))).fetchone()[0]
        elif common:
            # no (shared) primary key: compare as multisets of whole rows over the common columns
            cl = ', '.join(qi(c) for c in common)
            h = 'SELECT %s, count(*) AS n__ FROM main.%s GROUP BY %s' % (cl, q, cl)
            o = 'SELECT %s, count(*) AS n__ FROM %s.%s GROUP BY %s' % (cl, alias, q, cl)
            entry['only_here'] = conn.execute(
                'SELECT coalesce(sum(h.n__ - coalesce(o.n__, 0)), 0) FROM (%s) h LEFT JOIN (%s) o ON %s WHERE h.n__ > coalesce(o.n__, 0)'
                % (h, o, _eq('h', 'o', common))).fetchone()[0]
            entry['only_there'] = conn.execute(
                'SELECT coalesce(sum(o.n__ - coalesce(h.n__, 0)), 0) FROM (%s) o LEFT JOIN (%s) h ON %s WHERE o.n__ > coalesce(h.n__, 0)'
                % (o, h, _eq('h', 'o', common))).fetchone()[0]
            entry['differ'] = 0
        else:
            entry['only_here'], entry['only_there'], entry['differ'] = entry['rows_here'], entry['rows_there'], 0
        if entry['only_there'] or entry['differ']:
            superset = False
        if entry['only_here'] or entry['differ']:
            subset = False
        res['tables'][t] = entry
    res['superset'] = superset
    res['subset'] = subset
    res['identical'] = superset and subset
    return res
