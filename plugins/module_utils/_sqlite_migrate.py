# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Migration files, statement splitting and the tracking table for sqlite_migrate."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import sqlite3
import stat
import tempfile

NAME_RE = re.compile(r'^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$')
NO_TX_RE = re.compile(r'^\s*--\s*dbfix:\s*no-transaction\s*$', re.MULTILINE | re.IGNORECASE)
TRACKING_COLUMNS = ('version', 'name', 'sha256', 'applied_at', 'execution_ms')
_TX_CONTROL = re.compile(r'^(BEGIN|COMMIT|END|ROLLBACK(?!\s+TO\b))\b', re.IGNORECASE)
_FK_PRAGMA = re.compile(r'^PRAGMA\s+(?:"?main"?\s*\.\s*)?"?foreign_keys"?\s*(?:=|\()', re.IGNORECASE)
# SQLite's INTEGER is a signed 64-bit number: a larger version could be sorted but never recorded
MAX_VERSION = 2 ** 63 - 1
# how much of a statement an error message may show (file contents are not echoed beyond this)
STATEMENT_SHOWN = 80


class MigrationError(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


def _kind(mode):
    for test, name in ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISSOCK, 'a socket'),
                       (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device')):
        if test(mode):
            return name
    return 'not a regular file'


def _inside(real, realdir):
    return real == realdir or real.startswith(realdir.rstrip(os.sep) + os.sep)


def _read_regular(full):
    """The bytes of a regular file, opened without blocking (a FIFO swapped in after the scan cannot hang us)."""
    fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MigrationError('Migration file %s is %s, not a regular file. Replace it with the .sql file itself; nothing was applied.'
                                 % (full, _kind(st.st_mode)))
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b''.join(chunks)
    finally:
        os.close(fd)


def scan(migrations_dir):
    """Return [(version, filename, abspath, sha256, text)] sorted by version; raise MigrationError on bad input.

    A migration is read only when its real path is inside the real ``migrations_dir``: a symlink that leads out of
    the folder is refused, naming the link and its target, and its content is never read (so it cannot end up in a
    message). Files that are not regular files (directories, FIFOs, dangling links) are refused instead of skipped.
    """
    if '\x00' in migrations_dir:
        raise MigrationError('migrations_dir %r contains a NUL byte. Give the path of the folder holding NNN_name.sql files.'
                             % migrations_dir)
    if not os.path.exists(migrations_dir):
        raise MigrationError('Migrations folder %s does not exist. Check migrations_dir.' % migrations_dir)
    if not os.path.isdir(migrations_dir):
        raise MigrationError('migrations_dir %s is not a folder. Point it at the folder holding NNN_name.sql files.' % migrations_dir)
    realdir = os.path.realpath(migrations_dir)
    try:
        names = sorted(os.listdir(migrations_dir))
    except OSError as e:
        raise MigrationError('Cannot list the migrations folder %s: %s. Run as a user that can read it; nothing was applied.'
                             % (migrations_dir, e.strerror or e)) from e
    found, bad, problems = {}, [], []
    for fn in names:
        full = os.path.join(migrations_dir, fn)
        if fn.startswith('.') or not fn.lower().endswith('.sql'):
            continue
        m = NAME_RE.match(fn)
        if not m:
            bad.append(fn)
            continue
        try:
            lst = os.lstat(full)
        except OSError:
            continue  # removed while we listed the folder
        if stat.S_ISLNK(lst.st_mode):
            target = os.readlink(full)
            real = os.path.realpath(full)
            if not _inside(real, realdir):
                problems.append('%s is a symlink to %s, outside the migrations folder %s (it resolves to %s). sqlite_migrate only runs '
                                'files inside migrations_dir and did not read it; copy the file into the folder, or point '
                                'migrations_dir at the folder that holds it' % (full, target, realdir, real))
                continue
            if not os.path.exists(full):
                problems.append('%s is a symlink to %s, which does not exist (dangling link). Fix or remove the link' % (full, target))
                continue
        try:
            st = os.stat(full)
        except OSError as e:
            problems.append('%s cannot be read: %s' % (full, e.strerror or e))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append('%s is %s, not a migration file. Remove it or rename it so it does not end in .sql' % (full, _kind(st.st_mode)))
            continue
        version = int(m.group(1))
        if version > MAX_VERSION:
            problems.append('%s has version %s, larger than the largest integer SQLite can record (%d). Renumber it'
                            % (full, m.group(1), MAX_VERSION))
            continue
        try:
            raw = _read_regular(full)
        except MigrationError as e:
            problems.append(e.msg.rstrip('.'))
            continue
        except OSError as e:
            problems.append('%s cannot be read: %s. Run as a user that can read it' % (full, e.strerror or e))
            continue
        nul = raw.find(b'\x00')
        if nul >= 0:
            problems.append('%s contains a NUL byte (offset %d); SQL text cannot hold one. Save the file as plain UTF-8 text' % (full, nul))
            continue
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            problems.append('%s is not UTF-8 text (byte 0x%02x at offset %d is invalid). Save it as UTF-8' % (full, raw[e.start], e.start))
            continue
        found.setdefault(version, []).append((version, fn, full, hashlib.sha256(raw).hexdigest(), text))
    if bad:
        raise MigrationError('Migrations folder %s holds files whose names do not follow NNN_name.sql: %s. Rename them '
                             '(for example 003_add_index.sql) or move them out; nothing was applied.' % (migrations_dir, ', '.join(bad)))
    if problems:
        raise MigrationError('Migrations folder %s cannot be used: %s. Nothing was applied.' % (migrations_dir, '; '.join(problems)))
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


def is_fk_pragma(stmt):
    """``PRAGMA foreign_keys`` (which SQLite silently ignores inside a transaction)."""
    return bool(_FK_PRAGMA.match(_strip_comments(stmt)))


def shorten(stmt, n=STATEMENT_SHOWN):
    """The start of a statement for a message: whitespace folded, at most ``n`` characters."""
    s = ' '.join(stmt.split())
    return s if len(s) <= n else s[:n] + ' ...'


_QUOTED = re.compile(r'"([^"]*)"')


def sql_error(e, limit=200):
    """SQLite's message for ``e`` without long echoes of the SQL (``unrecognized token: "...rest of the file"``)."""
    s = _QUOTED.sub(lambda m: '"%s"' % (m.group(1) if len(m.group(1)) <= 40 else m.group(1)[:40] + ' ...'), str(e))
    s = ' '.join(s.split())
    return s if len(s) <= limit else s[:limit] + ' ...'


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
    rows = conn.execute(q).fetchall()
    odd = [r[0] for r in rows if not isinstance(r[0], int)]
    if odd:
        raise MigrationError('Tracking table %s holds versions that are not integers (%s). It was not written by sqlite_migrate; '
                             'choose another name with the table option.' % (table, ', '.join(repr(v)[:40] for v in odd[:5])))
    return {r[0]: {'name': r[1], 'sha256': r[2]} for r in rows}


def record(conn, table, *, version, name, sha, ms):
    conn.execute("INSERT INTO \"%s\" (version, name, sha256, applied_at, execution_ms) VALUES (?, ?, ?, "
                 "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), ?)" % table.replace('"', '""'), (version, name, sha, ms))


# --------------------------------------------------------------------------- foreign keys


def fk_violations(conn):
    """``PRAGMA foreign_key_check`` as a list of (table, rowid, parent, fkid)."""
    return [tuple(r) for r in conn.execute('PRAGMA main.foreign_key_check').fetchall()]


def new_violations(before, after):
    """Violations in ``after`` that were not there in ``before``.

    Counted per (child table, parent table): a table rebuild that renumbers the rowids of rows which already broke a
    foreign key before is not new, one more broken row is. Of a grown pair the rows not seen before are named.
    """
    def count(rows):
        c = {}
        for t, _rowid, parent, _fk in rows:
            c[(t, parent)] = c.get((t, parent), 0) + 1
        return c
    cb, ca = count(before), count(after)
    grown = {k for k, n in ca.items() if n > cb.get(k, 0)}
    seen = {(t, rowid, parent) for t, rowid, parent, _fk in before}
    out = [r for r in after if (r[0], r[2]) in grown and (r[0], r[1], r[2]) not in seen]
    if not out:
        out = [r for r in after if (r[0], r[2]) in grown]
    return out


def describe_violations(conn, rows, limit=5):
    """``orders(customer_id) rowid 7 -> customers`` for the first ``limit`` rows (no values from the rows)."""
    cols = {}
    parts = []
    for t, rowid, parent, fkid in rows[:limit]:
        if t not in cols:
            try:
                fks = conn.execute('PRAGMA main.foreign_key_list("%s")' % str(t).replace('"', '""')).fetchall()
            except sqlite3.Error:
                fks = []
            per = {}
            for fk in fks:
                per.setdefault(fk[0], []).append(fk[3])
            cols[t] = per
        fcols = cols[t].get(fkid)
        named = '(%s)' % ', '.join(fcols) if fcols else ''
        row = rowid if rowid is not None else '(WITHOUT ROWID)'
        parts.append('table %s%s rowid %s -> parent table %s' % (t, named, row, parent))
    more = len(rows) - limit
    return '; '.join(parts) + ('; and %d more' % more if more > 0 else '')


# --------------------------------------------------------------------------- private copy (check mode)


def private_copy(snapshot):
    """A private, consistent copy of a database in a new 0700 temp folder; returns (folder, copy path).

    ``snapshot(dest, folder)`` writes the copy (``_snapshot.snapshot_copy``, which reads without creating anything
    beside the database and recovers what a crashed writer left in a private copy inside ``folder``, as SQLite
    would recover the original). The caller removes the folder.
    """
    tmp = tempfile.mkdtemp(prefix='dbfix-migrate-check-')
    try:
        dest = os.path.join(tmp, 'database.db')
        snapshot(dest, tmp)
        return tmp, dest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- backups that never overwrite


def link_no_replace(src, dest_dir, base, limit=1000):
    """Give the finished file ``src`` the first free name of ``base``, ``base.1``, ``base.2`` ... in ``dest_dir``.

    ``os.link`` fails with EEXIST instead of replacing (the O_EXCL of a rename), so an existing file of the name is
    never overwritten, whatever runs in parallel. Where hard links are not supported the name is claimed with
    ``O_CREAT | O_EXCL`` first and the finished file renamed onto that claim. Returns the name taken.
    """
    for n in range(limit):
        dest = os.path.join(dest_dir, base if n == 0 else '%s.%d' % (base, n))
        try:
            os.link(src, dest)
            os.unlink(src)
            return dest
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS, errno.EXDEV):
                raise
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        os.replace(src, dest)
        return dest
    raise FileExistsError(errno.EEXIST, 'no free name among %s .. %s.%d' % (base, base, limit - 1))


def staging_name(dest_dir, base):
    """A hidden, unused name in ``dest_dir`` for a backup being written."""
    while True:
        p = os.path.join(dest_dir, '.%s.%s.partial' % (base, secrets.token_hex(6)))
        if not os.path.lexists(p):
            return p
