#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: sqlite_info
short_description: Read-only facts about an SQLite database, and a row-level comparison with another
version_added: 0.1.0
description:
  - Opens the database read-only (C(mode=ro) URI, C(PRAGMA query_only)) and reads, inside one read transaction
    so that all figures describe one committed state, its size, WAL size, journal mode, page size,
    C(user_version), SQLite version, tables with columns and row counts, a normalised schema hash,
    named read-only O(queries), an expected-columns check and optionally an integrity check.
  - With O(compare_with) it compares the database with another one row by row inside SQLite (the other
    database is ATTACHed read-only), so phase 2 can choose a base and refuse to lose data.
  - The comparison is exact. Two rows are equal only when every value has the same storage class (C(typeof))
    and the same bytes (text and BLOBs byte for byte, integers digit for digit, REALs bit for bit, so C(1) is not
    C(1.0) and C(0.0) is not C(-0.0)), whatever the declared collation (C(COLLATE NOCASE), C(RTRIM), an app's own),
    affinity or key type. Rows are multisets (a duplicated row counts twice); NULL keys are values like any other.
    Each side's C(count(*)) is cross-checked with the rows the comparison read.
  - Tables with a primary key shared by both sides (an C(INTEGER PRIMARY KEY) rowid alias, a C(WITHOUT ROWID) key
    included) report rows that are unmatched on both sides with the same exact key as C(differ). Tables without
    one are compared as multisets of whole rows over their common columns (C(differ) is then always 0).
  - Differences of the tables' SQL, indexes, views, triggers, C(user_version) and C(application_id) are reported in
    RV(comparison.schema); RV(comparison.identical) needs both the rows and all of these to be the same.
    RV(comparison.superset) and RV(comparison.subset) are about rows only (what would be lost).
  - Databases with different text encodings (UTF-8 and UTF-16) cannot be ATTACHed to each other; the task fails
    and says so.
  - SQLite's internal tables (C(sqlite_%), for example C(sqlite_sequence)) are skipped. Migration tracking tables
    (C(schema_migrations), the app's own) are compared like any other table, so a missing migration makes
    RV(comparison.superset) false.
  - The database file is never written, not even by a checkpoint (the former C(checkpoint) option was removed, since an
    C(_info) module writes nothing, and on a live shared WAL database a checkpoint from the host's SQLite could take part
    in the WAL-reset race). Nothing else is created beside it either. A closed
    WAL database (no C(-wal)/C(-shm)) is read with C(immutable=1) and checked to be unchanged afterwards (read again
    with locks if an app opened it meanwhile); a closed WAL database with committed frames in its C(-wal) but no
    C(-shm) (a crashed app) is read from a private copy in the temporary folder, removed afterwards.
  - Everything is bounded in time. O(query_timeout) limits the named queries, O(read_timeout) the whole read (schema,
    counts, integrity check, comparison), O(busy_timeout) each wait for another process's lock. A statement past its
    limit is interrupted by SQLite and the task fails, so no read lock outlives it.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Everything is read-only and runs in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  path:
    description: The SQLite database file (a symlink is followed).
    type: path
    required: true
  queries:
    description:
      - Named read-only SQL queries, name to SQL. Each result is a list of row dicts in RV(query_results).
      - Queries run under an authorizer that only allows reading; a query that tries to write, attach, or change a setting fails
        the task. BLOB values are returned as hex strings.
    type: dict
  expect_columns:
    description:
      - Table name to the list of columns it must have. Missing ones are listed in RV(missing_columns) and make
        RV(schema_ok) false (the task does not fail).
    type: dict
  integrity:
    description:
      - C(quick) runs C(PRAGMA quick_check), C(full) runs C(PRAGMA integrity_check). If the check does not return
        C(ok) the task fails and names the check and its first messages.
    type: str
    choices: [none, quick, full]
    default: none
  compare_with:
    description: Another SQLite database to compare with, row by row. It is opened read-only.
    type: path
  busy_timeout:
    description: How long (milliseconds, 0 to 2147483647) to wait for a lock held by another process before failing.
    type: int
    default: 5000
  query_timeout:
    description:
      - Overall deadline in seconds for all O(queries) together (greater than 0, at most 604800). A query still running
        then is interrupted (its read lock released at once) and the task fails naming it.
      - A number (integer or float).
    type: raw
    default: 5.0
  read_timeout:
    description:
      - Overall deadline in seconds for the whole read, the integrity check and the comparison included (greater than 0,
        at most 604800). Raise it for very large databases.
      - A number (integer or float).
    type: raw
    default: 600.0
seealso:
  - module: bluegreen.dbfix.sqlite_backup
'''

EXAMPLES = r'''
- name: Does GREEN have the columns the app needs?
  bluegreen.dbfix.sqlite_info:
    path: /home/ubuntu/TimeTracking-Clean/server/database.db
    expect_columns:
      users: [id, email, position]
    integrity: quick
    queries:
      active_users: SELECT count(*) AS n FROM users WHERE active = 1
  register: green_db

- name: Compare BLUE with GREEN before choosing a base
  bluegreen.dbfix.sqlite_info:
    path: /home/ubuntu/TimeTracking-Clean/server/database.db
    compare_with: /home/ubuntu/TimeTracking-BLUE/server/database.db
  register: cmp

- name: Refuse to lose BLUE's rows
  ansible.builtin.assert:
    that: cmp.comparison.superset
    fail_msg: GREEN does not hold every row of BLUE
'''

RETURN = r'''
size:
  description: Size of the database file in bytes.
  returned: always
  type: int
  sample: 126976
wal_size:
  description: Size of the C(-wal) file in bytes (0 if there is none).
  returned: always
  type: int
  sample: 0
journal_mode:
  description: The journal mode (C(wal), C(delete), ...).
  returned: always
  type: str
  sample: wal
page_size:
  description: Page size in bytes.
  returned: always
  type: int
  sample: 4096
user_version:
  description: C(PRAGMA user_version).
  returned: always
  type: int
  sample: 3
sqlite_version:
  description: Version of the SQLite library used on the managed host.
  returned: always
  type: str
  sample: 3.40.1
tables:
  description: Every table (except SQLite's internal ones) with its columns and row count.
  returned: always
  type: dict
  sample: {users: {columns: [id, email, position], rows: 12}}
query_results:
  description: Name of each of O(queries) to its rows (list of dicts).
  returned: always
  type: dict
  sample: {active_users: [{n: 7}]}
missing_columns:
  description: For each table in O(expect_columns) that lacks columns, the missing ones (all of them if the table is missing).
  returned: always
  type: dict
  sample: {users: [position]}
schema_ok:
  description: True when nothing in O(expect_columns) is missing.
  returned: always
  type: bool
  sample: true
integrity_result:
  description: C(ok), or the messages of the check; null when O(integrity=none).
  returned: always
  type: raw
  sample: ok
schema_sha256:
  description: sha256 of the normalised schema (whitespace-insensitive, order-independent, internal tables excluded).
  returned: always
  type: str
  sample: 0b6d4c3e...
comparison:
  description: Row-level comparison with O(compare_with).
  returned: when O(compare_with) is set
  type: dict
  contains:
    other:
      description: The other database.
      type: str
    tables:
      description: >-
        Per table present on both sides - C(primary_key) (empty when compared as multisets), C(rows_here), C(rows_there),
        C(only_here) (rows here without an exact copy there; a row held twice here and once there counts once),
        C(only_there), C(differ) (rows unmatched on both sides that share an exact primary key).
      type: dict
    tables_only_here:
      description: Tables only in O(path).
      type: list
      elements: str
    tables_only_there:
      description: Tables only in O(compare_with).
      type: list
      elements: str
    columns_only_here:
      description: Table to columns only in O(path).
      type: dict
    columns_only_there:
      description: Table to columns only in O(compare_with).
      type: dict
    schema:
      description:
        - Schema differences, per kind (C(tables) for their SQL, C(indexes), C(views), C(triggers)) the names
          C(only_here), C(only_there) and C(differ) (same name, different SQL once comments, whitespace and ASCII
          case outside quotes are ignored); C(settings) holds C(user_version) / C(application_id) when they differ
          (C({here, there})).
      type: dict
      sample: {indexes: {only_here: [users_email], only_there: [], differ: []}, views: {only_here: [], only_there: [], differ: []},
               triggers: {only_here: [], only_there: [], differ: []}, tables: {only_here: [], only_there: [], differ: [users]},
               settings: {user_version: {here: 3, there: 2}}}
    superset:
      description: This database holds every row of the other (no table, column or row only there, no differing row). Rows only.
      type: bool
    subset:
      description: The other database holds every row of this one. Rows only.
      type: bool
    rows_identical:
      description: Both of the above; the rows are exactly the same (the schema may still differ).
      type: bool
    schema_identical:
      description: Tables' SQL, indexes, views, triggers, C(user_version) and C(application_id) are the same.
      type: bool
    identical:
      description: RV(comparison.rows_identical) and RV(comparison.schema_identical).
      type: bool
'''

import math
import os
import sqlite3

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
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
    gather(module)


if __name__ == '__main__':
    main()
