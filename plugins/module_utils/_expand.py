# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The expand/contract guard (issue 13): what a migration really does to the schema and the rows.

While both colors run on one shared database, a migration may only expand: add tables, nullable or defaulted
columns, indexes, views, triggers, rows. The verdict is taken from the effect of each statement, run on a private
copy: the schema (sqlite_master, table_info, foreign_key_list) and row counts before and after it, and SQLite's
change counter; never from the statement's text alone. Stdlib only.
"""

from __future__ import annotations

import sqlite3


def _q(name):
    return '"%s"' % str(name).replace('"', '""')


def snapshot(conn):
    """{'objects': {(type, name): sql}, 'columns': {table: {col: (type, notnull, dflt, pk)}}, 'fks': {table: set}, 'rows': {table: n}}."""
    objects, columns, fks, rows = {}, {}, {}, {}
    for typ, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall():
        objects[(typ, name)] = sql
        if typ == 'table':
            columns[name] = {r[1]: (str(r[2] or '').upper(), r[3], r[4], r[5]) for r in conn.execute('PRAGMA table_xinfo(%s)' % _q(name))}
            fks[name] = {tuple(r[2:5]) for r in conn.execute('PRAGMA foreign_key_list(%s)' % _q(name))}
            rows[name] = conn.execute('SELECT count(*) FROM %s' % _q(name)).fetchone()[0]
    return {'objects': objects, 'columns': columns, 'fks': fks, 'rows': rows}


class Writes:
    """An SQLite authorizer that records which tables a statement (and the triggers it fires) updates or deletes from."""

    def __init__(self):
        self.tables = set()

    def __call__(self, action, arg1, arg2, dbname, source):
        if action in (sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE) and arg1 and not str(arg1).startswith('sqlite_'):
            self.tables.add(str(arg1))
        return sqlite3.SQLITE_OK


def problems(before, after, changes, ignore=(), written=None):
    """What a statement did that is not an expansion: a list of strings.

    ``changes``: rows it changed (total_changes delta); ``written``: tables it updates or deletes from (``Writes``),
    None when unknown. ``ignore``: the tracking table and tables this migration created (no old row, no old code).
    """
    out = []
    ignore = set(ignore)
    bo, ao = before['objects'], after['objects']
    new_tables = [n for (t, n) in ao if t == 'table' and (t, n) not in bo]
    for (typ, name), sql in bo.items():
        if name in ignore:
            continue
        if (typ, name) not in ao:
            if typ == 'table':
                same = [n for n in new_tables if set(after['columns'][n]) == set(before['columns'][name])]
                out.append('renames table %s (to %s)' % (name, same[0]) if same else 'drops table %s' % name)
            else:
                out.append('drops %s %s' % (typ, name))
        elif typ != 'table' and ao[(typ, name)] != sql:
            out.append('changes %s %s' % (typ, name))
    for table, cols in before['columns'].items():
        if table in ignore or table not in after['columns']:
            continue
        now = after['columns'][table]
        for col, spec in cols.items():
            if col not in now:
                added = [c for c in now if c not in cols]
                out.append('renames column %s.%s (to %s)' % (table, col, added[0]) if len(added) == 1 else 'drops column %s.%s' % (table, col))
            elif now[col] != spec:
                out.append('changes the type or a constraint of column %s.%s (%s -> %s)' % (table, col, _spec(spec), _spec(now[col])))
        for col, spec in now.items():
            if col not in cols and spec[1] and spec[2] is None:
                out.append('adds column %s.%s NOT NULL without a default' % (table, col))
        if before['fks'].get(table) != after['fks'].get(table):
            out.append('changes the foreign keys of table %s' % table)
        if after['rows'].get(table, 0) < before['rows'].get(table, 0):
            out.append('deletes rows of table %s (%d -> %d)' % (table, before['rows'][table], after['rows'][table]))
    inserted = sum(max(0, after['rows'].get(t, 0) - before['rows'].get(t, 0)) for t in after['rows'] if t not in ignore)
    touched_ignored = sum(abs(after['rows'].get(t, 0) - before['rows'].get(t, 0)) for t in ignore)
    old_written = None if written is None else set(written) - ignore
    if changes > inserted + touched_ignored and old_written != set() and not any(p.startswith('deletes rows') for p in out):
        out.append('changes existing rows (%d row(s) changed, %d added)' % (changes, inserted))
    return out


def _spec(spec):
    typ, notnull, dflt, pk = spec[:4]
    return '%s%s%s%s' % (typ or 'untyped', ' NOT NULL' if notnull else '', ' DEFAULT %s' % dflt if dflt is not None else '',
                         ' PRIMARY KEY' if pk else '')


def missing_columns(conn, expect):
    """{table: [columns]} of ``expect`` that the database lacks (a missing table lists all its columns)."""
    missing = {}
    for table, cols in (expect or {}).items():
        have = {r[1] for r in conn.execute('PRAGMA table_xinfo(%s)' % _q(table))}
        lack = [c for c in cols if c not in have]
        if lack:
            missing[table] = lack
    return missing
