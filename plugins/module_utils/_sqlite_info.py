# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the sqlite_info module (plugins/modules/sqlite_info.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import math
import os
import sqlite3

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_compare as C

MAX_BUSY_TIMEOUT_MS = 2 ** 31 - 1  # SQLite's busy_timeout is a C int
MAX_TIMEOUT_S = 7 * 24 * 3600
_ENCODINGS = {1: 'UTF-8', 2: 'UTF-16le', 3: 'UTF-16be'}


def _encoding(path):
    try:
        with open(S.real_db_path(path), 'rb') as f:
            head = f.read(100)
        return _ENCODINGS.get(int.from_bytes(head[56:60], 'big'), 'unknown')
    except (OSError, ValueError):
        return 'unknown'


def _side_files(real):
    found = []
    for suffix in ('-wal', '-shm', '-journal'):
        try:
            found.append('%s (%d bytes)' % (os.path.basename(real + suffix), os.path.getsize(real + suffix)))
        except OSError:
            pass
    return ', '.join(found) or 'none'


def validate(module):
    """Refuse option values that SQLite or the OS would turn into a traceback."""
    p = module.params
    for opt in ('path', 'compare_with'):
        if p[opt] is not None and '\x00' in p[opt]:
            module.fail_json(msg='%s %r contains a NUL byte, which no file name can hold. Nothing was changed; give the path of '
                                 'the SQLite file without it.' % (opt, p[opt]))
    if not 0 <= p['busy_timeout'] <= MAX_BUSY_TIMEOUT_MS:
        module.fail_json(msg='busy_timeout=%s for %s is out of range: give milliseconds from 0 to %d. Nothing was changed.'
                             % (p['busy_timeout'], p['path'], MAX_BUSY_TIMEOUT_MS))
    for opt in ('query_timeout', 'read_timeout'):
        v = p[opt]
        try:
            if isinstance(v, bool):
                raise TypeError(v)
            v = p[opt] = float(v)
        except (TypeError, ValueError, OverflowError):
            module.fail_json(msg='%s=%.40r for %s is not a usable number of seconds (not a number, or too large). Nothing was changed; '
                                 'give a number such as 5 or 0.5.' % (opt, v, p['path']))
        if not (math.isfinite(v) and 0 < v <= MAX_TIMEOUT_S):
            module.fail_json(msg='%s=%s for %s is out of range: give seconds greater than 0 and at most %d (7 days). Nothing was changed.'
                                 % (opt, v, p['path'], MAX_TIMEOUT_S))


class _Reader:
    """One read of the database (and the one to compare with): every figure from one committed state."""

    def __init__(self, module, src, other):
        self.module = module
        self.p = module.params
        self.src = src
        self.other = other
        self.doing = 'opening it'

    def _error(self, e, which=None):
        """A DbfixError for an SQLite error ``e`` while ``self.doing``; ``which`` is the path it concerns."""
        p = self.p
        path = which or p['path']
        what = 'Database to compare with' if path == p['compare_with'] and path != p['path'] else 'Database'
        name = getattr(e, 'sqlite_errorname', '') or ''
        real = S.real_db_path(path)
        if S.is_locked_error(e):
            return S.DbfixError(S.locked_message(path, p['busy_timeout'], e))
        if name == 'SQLITE_READONLY_ROLLBACK':
            return S.DbfixError('%s %s has a hot rollback journal (%s): an app stopped in the middle of a write, and the journal '
                                'holds what is needed to undo it. sqlite_info only reads, so it cannot roll it back. It is not '
                                'corrupt; nothing was changed. Start the app (or open the file read-write once) so SQLite rolls the '
                                'journal back; never delete the journal.' % (what, path, _side_files(real)))
        if 'same text encoding' in str(e):
            return S.DbfixError('Cannot compare %s (%s) with %s (%s) row by row: SQLite only compares databases with the same text '
                                'encoding (it says "%s"). Nothing was changed. Convert one of them (.dump into a new database '
                                'created with the other encoding) and compare again.'
                                % (p['path'], _encoding(p['path']), p['compare_with'], _encoding(p['compare_with']), e))
        if name.startswith('SQLITE_CANTOPEN') or name.startswith('SQLITE_READONLY') or name.startswith('SQLITE_IOERR') \
                or name.startswith('SQLITE_PERM'):
            return S.DbfixError('%s %s cannot be opened for reading: SQLite says "%s" while %s (side files: %s). Nothing was changed. '
                                'Run as a user that can read the file, its folder and its -wal/-shm, or start the app once so '
                                'SQLite recovers its WAL.' % (what, path, e, self.doing, _side_files(real)))
        if 'no such module' in str(e) or 'no such collation' in str(e) or 'no such function' in str(e):
            return S.DbfixError('%s %s uses something this host\'s SQLite %s lacks: SQLite says "%s" while %s. Nothing was changed; '
                                'run sqlite_info where the app\'s SQLite (with that module/collation) is available.'
                                % (what, path, sqlite3.sqlite_version, e, self.doing))
        return S.DbfixError('%s %s cannot be read: SQLite says "%s" while %s (side files: %s). Nothing was changed. Check it with '
                            'integrity: full; if the check fails too, restore it from a backup.'
                            % (what, path, e, self.doing, _side_files(real)))

    def run(self):
        p = self.p
        res = {}
        try:
            conn = C.connect_ro(self.src, p['busy_timeout'])
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            deadline = C.Deadline(conn, p['read_timeout'], 'read_timeout')
            try:
                self._read(conn, deadline, res)
            except C.DeadlineExceeded as e:
                raise self._deadline(e) from e
            except sqlite3.Error as e:
                try:
                    deadline.check(e)
                except C.DeadlineExceeded as d:
                    raise self._deadline(d) from e
                raise self._error(e, getattr(e, 'dbfix_path', None)) from e
        finally:
            conn.close()  # before fail_json: no lock outlives the task
        return res

    def _deadline(self, e):
        p = self.p
        if e.what == 'query_timeout':
            return S.DbfixError('Query %r on %s did not finish within query_timeout=%s s (the limit for all named queries together); '
                                'SQLite interrupted it and its read lock was released. Nothing was changed. Make the query cheaper '
                                '(a LIMIT, an index, a recursive CTE that ends) or raise query_timeout.'
                                % (getattr(e, 'name', '?'), p['path'], p['query_timeout']))
        return S.DbfixError('Reading %s%s did not finish within read_timeout=%s s (stopped while %s); SQLite interrupted it and its '
                            'read lock was released. Nothing was changed. Raise read_timeout (an integrity check or a comparison of '
                            'a large database can take minutes) or run it when the host is quieter.'
                            % (p['path'], (' and comparing it with %s' % p['compare_with']) if p['compare_with'] else '',
                               p['read_timeout'], self.doing))

    def _read(self, conn, deadline, res):
        p = self.p
        path = p['path']
        if self.other is not None:
            self.doing = 'attaching it read-only'
            try:
                C.attach(conn, self.other)
            except sqlite3.Error as e:
                e.dbfix_path = p['compare_with']
                raise
        self.doing = 'reading the schema and row counts'
        C.stand_in_collations(conn)
        conn.execute('BEGIN')  # one read transaction: every figure below describes the same committed state
        jm = conn.execute('PRAGMA journal_mode').fetchone()[0]
        res['journal_mode'] = 'wal' if self.src.wal_header else jm  # an immutable read reports "delete"
        res['page_size'] = conn.execute('PRAGMA page_size').fetchone()[0]
        res['user_version'] = conn.execute('PRAGMA user_version').fetchone()[0]
        res['tables'] = C.tables_facts(conn)
        res['schema_sha256'] = C.schema_sha256(conn)
        res['sqlite_version'] = sqlite3.sqlite_version
        real = self.src.real
        res['size'] = os.path.getsize(real)
        res['wal_size'] = os.path.getsize(real + '-wal') if os.path.exists(real + '-wal') else 0
        missing = {}
        for t, cols in (p['expect_columns'] or {}).items():
            have = res['tables'].get(t, {}).get('columns', [])
            lack = [c for c in cols if c not in have]
            if lack:
                missing[t] = lack
        res['missing_columns'] = missing
        res['schema_ok'] = not missing
        self.doing = 'running the named queries'
        try:
            res['query_results'] = C.run_queries(conn, p['queries'], deadline, p['query_timeout'])
        except ValueError as e:
            name, reason = e.args
            raise S.DbfixError('Query %r on %s was refused: %s. Queries must only read (SELECT); nothing was changed.'
                               % (name, path, reason)) from e
        res['integrity_result'] = None
        if p['integrity'] != 'none':
            self.doing = 'running PRAGMA %s' % ('quick_check' if p['integrity'] == 'quick' else 'integrity_check')
            try:
                res['integrity_result'] = S.integrity(conn, p['integrity'])
            except sqlite3.DatabaseError as e:
                deadline.check(e)
                if S.is_locked_error(e):
                    raise
                res['integrity_result'] = [str(e)]
            if res['integrity_result'] != 'ok':
                check = 'quick_check' if p['integrity'] == 'quick' else 'integrity_check'
                raise S.DbfixError('Database %s failed PRAGMA %s: %s. It is damaged; nothing was changed. Keep the file (and any '
                                   '-wal/-journal beside it) and restore a verified backup.'
                                   % (path, check, S.summarize(res['integrity_result'])))
        if self.other is not None:
            self.doing = 'comparing it row by row with %s' % p['compare_with']
            try:
                res['comparison'] = C.compare(conn, p['compare_with'])
            except C.CountMismatch as e:
                side = {'here': path, 'there': p['compare_with']}.get(e.side, '%s and %s' % (path, p['compare_with']))
                raise S.DbfixError('Comparing %s with %s: the row counts of table %r do not add up (%s: count(*) says %s, a full read '
                                   'saw %s), so an index disagrees with its table. Nothing was changed; check both with integrity: '
                                   'full before trusting either.' % (path, p['compare_with'], e.table, side, e.counted, e.seen)) from e
            except sqlite3.Error as e:
                deadline.check(e)
                if S.is_locked_error(e):
                    # we hold our own database's read lock since BEGIN: what stayed locked is the other one
                    e.dbfix_path = p['compare_with']
                raise
        conn.execute('COMMIT')


def gather(module):
    p = module.params
    path = p['path']
    result = dict(changed=False)
    validate(module)
    try:
        # other local users must not control the files SQLite would read (a planted -wal injects rows); the
        # same check sqlite_backup/sqlite_migrate make through _sqlite (see _trust.py)
        S.check_trusted(path, action='read')
        header = S.check_db_file(path)
        if p['compare_with']:
            S.check_trusted(p['compare_with'], action='read')
        other_header = S.check_db_file(p['compare_with'], 'database to compare with') if p['compare_with'] else None
    except S.DbfixError as e:
        module.fail_json(msg=e.msg, **result)
    for name, sql in (p['queries'] or {}).items():
        if not isinstance(sql, str):
            module.fail_json(msg='queries.%s for %s must be one SQL statement (a string), got %r.' % (name, path, sql), **result)
    for t, cols in (p['expect_columns'] or {}).items():
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            module.fail_json(msg='expect_columns.%s for %s must be a list of column names, got %r.' % (t, path, cols), **result)
    # A read without locks (closed WAL database, see _sqlite_compare.Source) is only kept when the files did not
    # change meanwhile; otherwise the app opened them, and the next try reads with locks.
    for _attempt in range(3):
        src = C.Source(path, header)
        other = C.Source(p['compare_with'], other_header) if p['compare_with'] else None
        try:
            facts = _Reader(module, src, other).run()
        except S.DbfixError as e:
            module.fail_json(msg=e.msg, **result)
        finally:
            src.cleanup()
            if other is not None:
                other.cleanup()
        if src.unchanged() and (other is None or other.unchanged()):
            break
    else:
        module.fail_json(msg='%s%s kept changing while it was read without locks (an app opened it each time). Nothing was changed; '
                             'run again.' % (path, (' or %s' % p['compare_with']) if p['compare_with'] else ''), **result)
    result.update(facts)
    module.exit_json(**result)


MODULE_KWARGS = dict(
    argument_spec=dict(
        path=dict(type='path', required=True),
        queries=dict(type='dict'),
        expect_columns=dict(type='dict'),
        integrity=dict(type='str', choices=['none', 'quick', 'full'], default='none'),
        compare_with=dict(type='path'),
        busy_timeout=dict(type='int', default=5000),
        # raw, converted in validate(): a float option fed a 400-digit integer overflows inside AnsibleModule
        query_timeout=dict(type='raw', default=5.0),
        read_timeout=dict(type='raw', default=600.0),
    ),
    supports_check_mode=True,
)


def run(module):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS."""
    gather(module)
