#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: dbfix_check
short_description: Run the monitor's health checks of one color of a blue/green pair on demand
version_added: 1.1.0
description:
  - Runs, once, the checks the C(bluegreen.dbfix.monitor) role schedules on each host, for one color (one inventory
    host) of a pair, and returns one row per check (C(pair), C(color), C(check), C(state), C(detail)).
  - C(schema) the tables and columns of O(expect_columns) exist; C(migrations) every migration recorded in
    O(migrations_table) still has its file in O(migrations_dir) with the same sha256, and every file is applied;
    C(quick_check) C(PRAGMA quick_check); C(shared_link) O(path) is a link to O(shared_db); C(process) the color's
    app process runs (pm2 or O(pid_file)); C(open_files) that process holds no SQLite file other than the shared DB
    open, and no process holds the C(.OLD) copy; C(sqlite_library) the SQLite library each app process has mapped
    (a C(libsqlite3) or an addon such as better-sqlite3 with SQLite linked in) is free of the WAL-reset bug
    (3.7.0 to 3.51.2; fixed in 3.51.3, 3.50.7, 3.44.6); C(wal_size) the C(-wal) file is at most O(wal_max_bytes);
    C(disk_free) the backup folder has room for one more backup.
  - A failed check does not fail the task; RV(problems) counts them. Only a bad option fails the task.
  - Databases are opened read-only (C(mode=ro), C(query_only)), so the checks never write, never checkpoint, and take
    no part in the WAL-reset race they report on.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: The checks only read, so they run in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  pair:
    description: Name of the pair (a label in the rows and metrics).
    type: str
    required: true
  color:
    description: Name of the color (a label in the rows and metrics).
    type: str
    required: true
  path:
    description: The color's database path (usually a symlink to O(shared_db) after phase 2).
    type: path
    required: true
  shared_db:
    description: The pair's shared database. Required when O(expect_shared=true).
    type: path
  expect_shared:
    description: Whether O(path) must be a link to O(shared_db) (after phase 2). When false C(shared_link) is skipped.
    type: bool
    default: true
  expect_columns:
    description: Table name to the list of columns it must have. Empty skips the C(schema) check.
    type: dict
    default: {}
  migrations_dir:
    description: Folder of C(NNN_name.sql) migrations applied by P(bluegreen.dbfix.sqlite_migrate#module). Empty skips C(migrations).
    type: path
  migrations_table:
    description: The tracking table P(bluegreen.dbfix.sqlite_migrate#module) records applied migrations and their sha256 in.
    type: str
    default: schema_migrations
  pm2_name:
    description: The color's pm2 process name (used unless O(pid_file) is set).
    type: str
  pm2_home:
    description: The PM2_HOME of the color's pm2 daemon (default C($PM2_HOME) or C(~/.pm2)).
    type: path
  pm2_executable:
    description: The pm2 CLI. Run as the owner of O(pm2_home) when the task runs as root.
    type: str
    default: pm2
  pid_file:
    description: A file holding the app's pid, for apps not run by pm2.
    type: path
  wal_max_bytes:
    description: The largest C(-wal) file that is still healthy.
    type: int
    default: 67108864
  backup_dir:
    description: Where backups go (default the database's folder); it needs room for the database and its WAL.
    type: path
  disk_reserve_bytes:
    description: Bytes that must stay free on top of one backup.
    type: int
    default: 0
  busy_timeout:
    description: Milliseconds to wait for a lock while reading.
    type: int
    default: 2000
seealso:
  - module: bluegreen.dbfix.sqlite_info
  - name: The monitor role and check.yml
    description: docs/monitor.md in the collection.
    link: https://sqlite.org/wal.html#walresetbug
'''

EXAMPLES = r'''
- name: Check the green color of the pair
  bluegreen.dbfix.dbfix_check:
    pair: timetracking
    color: green
    path: /home/ubuntu/TimeTracking-Clean/server/database.db
    shared_db: /home/ubuntu/database-shared.db
    expect_columns:
      users: [id, email, position]
    pm2_name: timetracking-green
  register: health

- name: Fail when a check failed
  ansible.builtin.assert:
    that: health.problems == 0
    fail_msg: "{{ health.rows | selectattr('state', 'equalto', 'fail') | list }}"
'''

RETURN = r'''
rows:
  description: One row per check, in a fixed order.
  returned: always
  type: list
  elements: dict
  contains:
    pair:
      description: The pair.
      type: str
    color:
      description: The color.
      type: str
    check:
      description: One of C(schema), C(migrations), C(quick_check), C(shared_link), C(process), C(open_files), C(sqlite_library),
        C(wal_size), C(disk_free).
      type: str
    state:
      description: C(ok), C(fail), or C(skip) (not configured, or nothing to look at).
      type: str
    detail:
      description: What was found (paths, pids, versions; never a command line or an environment).
      type: str
  sample:
    - {pair: timetracking, color: green, check: schema, state: fail, detail: table users lacks column position}
problems:
  description: Number of rows with state C(fail).
  returned: always
  type: int
  sample: 1
host_sqlite:
  description: The SQLite version of the Python running the checks, and whether it has the WAL-reset bug.
  returned: always
  type: dict
  sample: {version: 3.40.1, affected: true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _monitor as MON
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pair=dict(type='str', required=True),
            color=dict(type='str', required=True),
            path=dict(type='path', required=True),
            shared_db=dict(type='path'),
            expect_shared=dict(type='bool', default=True),
            expect_columns=dict(type='dict', default={}),
            migrations_dir=dict(type='path'),
            migrations_table=dict(type='str', default='schema_migrations'),
            pm2_name=dict(type='str'),
            pm2_home=dict(type='path'),
            pm2_executable=dict(type='str', default='pm2'),
            pid_file=dict(type='path'),
            wal_max_bytes=dict(type='int', default=64 * 1024 * 1024),
            backup_dir=dict(type='path'),
            disk_reserve_bytes=dict(type='int', default=0),
            busy_timeout=dict(type='int', default=2000),
        ),
        supports_check_mode=True,
    )
    p = module.params
    raw = {k: p[k] for k in ('pair', 'color', 'shared_db', 'expect_shared', 'expect_columns', 'migrations_dir', 'migrations_table',
                             'pm2_name', 'pm2_home', 'pm2_executable', 'pid_file', 'wal_max_bytes', 'backup_dir', 'disk_reserve_bytes')}
    raw['db_path'] = p['path']
    raw['busy_timeout_ms'] = p['busy_timeout']
    try:
        target = MON.normalize_target(raw, 'dbfix_check (%s/%s)' % (p['pair'], p['color']))
    except MON.ConfigError as e:
        module.fail_json(msg='%s. Fix the option; nothing was checked.' % e)
    rows = MON.run_checks([target])
    host = V.host_version()
    module.exit_json(changed=False, rows=rows, problems=len(MON.problems_of(rows)),
                     host_sqlite={'version': host, 'affected': bool(V.affected(host))})


if __name__ == '__main__':
    main()
