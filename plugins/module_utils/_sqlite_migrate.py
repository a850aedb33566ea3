# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Migration files, statement splitting and the tracking table for sqlite_migrate."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3

NAME_RE = re.compile(r'^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$')
NO_TX_RE = re.compile(r'^\s*--\s*dbfix:\s*no-transaction\s*$', re.MULTILINE | re.IGNORECASE)
TRACKING_COLUMNS = ('version', 'name', 'sha256', 'applied_at', 'execution_ms')
_TX_CONTROL = re.compile(r'^(BEGIN|COMMIT|END|ROLLBACK(?!\s+TO\b))\b', re.IGNORECASE)


class MigrationError(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


def scan(migrations_dir):
    """Return [(version, filename, abspath, sha256, text)] sorted by version; raise MigrationError on bad input."""
    if not os.path.exists(migrations_dir):
        raise MigrationError('Migrations folder %s does not exist. Check migrations_dir.' % migrations_dir)
    if not os.path.isdir(migrations_dir):
        raise MigrationError('migrations_dir %s is not a folder. Point it at the folder holding NNN_name.sql files.' % migrations_dir)
    found, bad = {}, []
    for fn in sorted(os.listdir(migrations_dir)):
        full = os.path.join(migrations_dir, fn)
        if fn.startswith('.') or not os.path.isfile(full) or not fn.lower().endswith('.sql'):
            continue
        m = NAME_RE.match(fn)
        if not m:
            bad.append(fn)
            continue
        version = int(m.group(1))
        with open(full, 'rb') as f:
            raw = f.read()
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise MigrationError('Migration %s is not UTF-8 text (%s). Save it as UTF-8.' % (full, e)) from e
        found.setdefault(version, []).append((version, fn, full, hashlib.sha256(raw).hexdigest(), text))
    if bad:
        raise MigrationError('Migrations folder %s holds files whose names do not follow NNN_name.sql: %s. Rename them '
                             '(for example 003_add_index.sql) or move them out; nothing was applied.' % (migrations_dir, ', '.join(bad)))
    dups = {v: [x[1] for x in lst] for v, lst in found.items() if len(lst) > 1}
    if dups:
        raise MigrationError('Migrations folder %s has more than one file for one version: %s. Give each its own number; nothing was applied.'
                             % (migrations_dir, '; '.join('%d: %s' % (v, ', '.join(n)) for v, n in sorted(dups.items()))))
    return [found[v][0] for v in sorted(found)]


def split_statements(text):
    """Split SQL into complete statements with sqlite3.complete_statement (triggers' BEGIN...END stay whole)."""
    out, buf = [], ''
    start = 0
    for i, ch in enumerate(text):
        if ch != ';':
            continue
        buf = text[start:i + 1]
        if sqlite3.complete_statement(buf):
            if _has_code(buf):
                out.append(buf.strip())
            start = i + 1
    rest = text[start:]
    if _has_code(rest):
        out.append(rest.strip())
    return out


def _strip_comments(sql):
    # good enough to tell "only comments/whitespace" and to find the first keyword; string literals are kept
    sql = re.sub(r'/\*.*?\*/', ' ', sql, flags=re.DOTALL)
    return re.sub(r'--[^\n]*', ' ', sql).strip()


def _has_code(sql):
    return bool(_strip_comments(sql).strip().strip(';').strip())


def is_tx_control(stmt):
    return bool(_TX_CONTROL.match(_strip_comments(stmt)))


def no_transaction(text):
    return bool(NO_TX_RE.search(text))


def ensure_table(conn, table, create):
    """Check (and create when ``create``) the tracking table. Return True if it exists (or was created)."""
    cols = [r[1] for r in conn.execute('PRAGMA main.table_info("%s")' % table.replace('"', '""')).fetchall()]
    if cols:
        missing = [c for c in TRACKING_COLUMNS if c not in cols]
        if missing:
            raise MigrationError('Table %s already exists but is not a sqlite_migrate tracking table (it has columns %s, lacks %s). '
                                 'Choose another name with the table option.' % (table, ', '.join(cols), ', '.join(missing)))
        return True
    if create:
        conn.execute('CREATE TABLE IF NOT EXISTS "%s" (version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, '
                     'applied_at TEXT NOT NULL, execution_ms INTEGER NOT NULL)' % table.replace('"', '""'))
        return True
    return False


def applied_rows(conn, table):
    q = 'SELECT version, name, sha256 FROM "%s" ORDER BY version' % table.replace('"', '""')
    return {r[0]: {'name': r[1], 'sha256': r[2]} for r in conn.execute(q).fetchall()}


def record(conn, table, *, version, name, sha, ms):
    conn.execute("INSERT INTO \"%s\" (version, name, sha256, applied_at, execution_ms) VALUES (?, ?, ?, "
                 "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), ?)" % table.replace('"', '""'), (version, name, sha, ms))
