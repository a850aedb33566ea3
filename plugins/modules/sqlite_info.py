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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite_info import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
