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
  - Tables with a primary key shared by both sides (an C(INTEGER PRIMARY KEY) rowid alias included) are compared
    by key (rows only here, only there, rows whose other common columns differ). Tables without one are compared
    as multisets of whole rows over their common columns (C(differ) is then always 0).
  - SQLite's internal tables (C(sqlite_%), for example C(sqlite_sequence)) are skipped. Migration tracking tables
    (C(schema_migrations), the app's own) are compared like any other table, so a missing migration makes
    RV(comparison.superset) false.
  - The database file is never written unless O(checkpoint=true). Reading a WAL-mode database may create empty
    C(-wal)/C(-shm) files beside it, as every SQLite reader does.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Everything except O(checkpoint) is read-only and runs in check mode too; the checkpoint is skipped.
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
  checkpoint:
    description:
      - Run C(PRAGMA wal_checkpoint(TRUNCATE)) first, so the database file alone holds every committed row. The only
        option that writes; reported as a change when the WAL was not empty.
    type: bool
    default: false
  busy_timeout:
    description: How long (milliseconds) to wait for a lock held by another process before failing.
    type: int
    default: 5000
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
        C(only_here), C(only_there), C(differ).
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
    superset:
      description: This database holds every row of the other (no table, column or row only there, no differing row).
      type: bool
    subset:
      description: The other database holds every row of this one.
      type: bool
    identical:
      description: Both of the above.
      type: bool
checkpointed:
  description: Whether a checkpoint ran (or would run, in check mode).
  returned: always
  type: bool
  sample: false
'''

import os
import sqlite3
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_compare as C


def gather(module):
    p = module.params
    path = p['path']
    result = dict(changed=False, checkpointed=False)
    try:
        S.check_db_file(path)
        if p['compare_with']:
            S.check_db_file(p['compare_with'], 'database to compare with')
    except S.DbfixError as e:
        module.fail_json(msg=e.msg, **result)
    for name, sql in (p['queries'] or {}).items():
        if not isinstance(sql, str):
            module.fail_json(msg='queries.%s for %s must be one SQL statement (a string), got %r.' % (name, path, sql), **result)
    for t, cols in (p['expect_columns'] or {}).items():
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            module.fail_json(msg='expect_columns.%s for %s must be a list of column names, got %r.' % (t, path, cols), **result)
    real = S.real_db_path(path)
    wal = real + '-wal'
    if p['checkpoint'] and os.path.exists(wal) and os.path.getsize(wal) > 0:
        result['changed'] = result['checkpointed'] = True
        if not module.check_mode:
            try:
                conn = S.connect(real, p['busy_timeout'])
                try:
                    busy = conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0]
                finally:
                    conn.close()
            except sqlite3.Error as e:
                if S.is_locked_error(e):
                    module.fail_json(msg=S.locked_message(path, p['busy_timeout'], e), **result)
                module.fail_json(msg='Checkpoint of %s failed: SQLite says "%s". Nothing was changed.' % (path, e), **result)
            if busy:
                module.fail_json(msg='Checkpoint of %s could not finish within busy_timeout=%d ms: readers or a writer kept the WAL busy. '
                                     'Retry later or raise busy_timeout.' % (path, p['busy_timeout']), **result)
    try:
        conn = S.connect(real, p['busy_timeout'], mode='ro')
    except sqlite3.Error as e:
        module.fail_json(msg='Cannot open %s read-only: SQLite says "%s".' % (path, e), **result)
    try:
        conn.execute('PRAGMA query_only=1')
        if p['compare_with']:
            C.attach(conn, S.real_db_path(p['compare_with']))
        conn.execute('BEGIN')  # one read transaction: every figure below describes the same committed state
        try:
            result['journal_mode'] = conn.execute('PRAGMA journal_mode').fetchone()[0]
            result['page_size'] = conn.execute('PRAGMA page_size').fetchone()[0]
            result['user_version'] = conn.execute('PRAGMA user_version').fetchone()[0]
            result['tables'] = C.tables_facts(conn)
            result['schema_sha256'] = C.schema_sha256(conn)
        except sqlite3.DatabaseError as e:
            if S.is_locked_error(e):
                module.fail_json(msg=S.locked_message(path, p['busy_timeout'], e), **result)
            module.fail_json(msg='Database %s cannot be read: SQLite says "%s" while reading the schema and row counts, so the file is '
                                 'corrupt. Nothing was changed; restore it from a backup.' % (path, e), **result)
        result['sqlite_version'] = sqlite3.sqlite_version
        result['size'] = os.path.getsize(real)
        result['wal_size'] = os.path.getsize(wal) if os.path.exists(wal) else 0
        missing = {}
        for t, cols in (p['expect_columns'] or {}).items():
            have = result['tables'].get(t, {}).get('columns', [])
            lack = [c for c in cols if c not in have]
            if lack:
                missing[t] = lack
        result['missing_columns'] = missing
        result['schema_ok'] = not missing
        try:
            result['query_results'] = C.run_queries(conn, p['queries'])
        except ValueError as e:
            name, reason = e.args
            module.fail_json(msg='Query %r on %s was refused: %s. Queries must only read (SELECT); nothing was changed.'
                                 % (name, path, reason), **result)
        result['integrity_result'] = None
        if p['integrity'] != 'none':
            try:
                result['integrity_result'] = S.integrity(conn, p['integrity'])
            except sqlite3.DatabaseError as e:
                result['integrity_result'] = [str(e)]
            if result['integrity_result'] != 'ok':
                check = 'quick_check' if p['integrity'] == 'quick' else 'integrity_check'
                module.fail_json(msg='Database %s failed PRAGMA %s: %s. It is corrupt; restore it from a backup (nothing was changed).'
                                     % (path, check, S.summarize(result['integrity_result'])), **result)
        if p['compare_with']:
            try:
                result['comparison'] = C.compare(conn, p['compare_with'])
            except sqlite3.DatabaseError as e:
                module.fail_json(msg='Comparing %s with %s failed: SQLite says "%s". Check both with integrity: quick.'
                                     % (path, p['compare_with'], e), exception=traceback.format_exc(), **result)
        conn.execute('COMMIT')
    finally:
        conn.close()
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            queries=dict(type='dict'),
            expect_columns=dict(type='dict'),
            integrity=dict(type='str', choices=['none', 'quick', 'full'], default='none'),
            compare_with=dict(type='path'),
            checkpoint=dict(type='bool', default=False),
            busy_timeout=dict(type='int', default=5000),
        ),
        supports_check_mode=True,
    )
    gather(module)


if __name__ == '__main__':
    main()
