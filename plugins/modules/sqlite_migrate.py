#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: sqlite_migrate
short_description: Apply ordered SQL migrations to an SQLite database with a tracking table, or run the app's own migrator
version_added: 0.1.0
description:
  - Applies the files C(NNN_name.sql) of O(migrations_dir) in version order and records each in a tracking table
    (version, name, sha256 of the file, applied_at in UTC, execution_ms).
  - Each migration and its tracking row commit together or not at all (explicit C(BEGIN IMMEDIATE)/C(COMMIT) on an
    autocommit connection; statements are split with C(sqlite3.complete_statement), so trigger bodies stay whole).
    A failure names the file, the statement and SQLite's error; earlier migrations stay applied.
  - >-
    A migration that cannot run inside a transaction (for example C(VACUUM)) declares it with a line
    C(-- dbfix: no-transaction); its statements then run one by one and the tracking row is written after them.
    A migration must not contain its own C(BEGIN)/C(COMMIT).
  - An applied migration whose file changed since (sha256) fails the task, naming it, unless O(repair=true)
    re-records the checksums.
  - Alternatively O(command) runs the app's own migrator; output matching O(uptodate_regex) means nothing changed.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: partial
    details:
      - With O(migrations_dir), check mode lists pending migrations and runs them inside one transaction that is rolled back,
        so a broken migration fails C(--check). Migrations marked C(no-transaction) are listed but not tried.
      - With O(command), the command is not run in check mode; the task reports no change and warns.
  diff_mode:
    support: partial
    details:
      - With O(migrations_dir), the applied migrations recorded in O(table), one C(<file> <sha256>) line each, before and
        after the run (in check mode, with the pending ones appended). Never shows rows of the database.
      - With O(command), no diff is returned, since what the app's own migrator changes is not known.
  idempotent:
    support: full
options:
  path:
    description: The SQLite database file (must exist; a symlink is followed).
    type: path
    required: true
  migrations_dir:
    description:
      - Folder of migration files named C(NNN_name.sql) (C(NNN) any number of digits). Other C(.sql) names fail the task;
        files not ending in C(.sql) and hidden files are ignored. Mutually exclusive with O(command).
    type: path
  table:
    description: Tracking table.
    type: str
    default: schema_migrations
  target:
    description: Apply migrations only up to and including this version.
    type: int
  baseline:
    description:
      - Record every migration with version <= O(baseline) that is not yet recorded as applied, without running it
        (for databases the app's own tool already migrated).
    type: int
  repair:
    description: Re-record the checksum of applied migrations whose files changed, instead of failing.
    type: bool
    default: false
  command:
    description:
      - The app's own migrator, run instead of O(migrations_dir) (a string is split like a shell would, without a shell).
    type: raw
  chdir:
    description: Working directory for O(command).
    type: path
  environment:
    description: Extra environment variables for O(command). Their values are treated as secrets (never logged or returned).
    type: dict
  uptodate_regex:
    description: When the output of O(command) matches this regular expression nothing changed.
    type: str
    default: No pending migrations
  backup:
    description:
      - Take a consistent backup (as M(bluegreen.dbfix.sqlite_backup) does, beside the database) before changing anything,
        and return its file. With O(command) the backup is removed again when the migrator reports nothing to do.
    type: bool
    default: false
  busy_timeout:
    description: How long (milliseconds) to wait for a lock held by another process before failing.
    type: int
    default: 5000
seealso:
  - module: bluegreen.dbfix.sqlite_backup
  - module: bluegreen.dbfix.sqlite_info
'''

EXAMPLES = r'''
- name: Apply the collection's migrations with a backup first
  bluegreen.dbfix.sqlite_migrate:
    path: /home/ubuntu/TimeTracking-Clean/server/database.db
    migrations_dir: /opt/timetracking/migrations
    backup: true

- name: The app's tool already migrated up to 2; record that, then apply the rest
  bluegreen.dbfix.sqlite_migrate:
    path: "{{ dbfix_db_path }}"
    migrations_dir: "{{ dbfix_app_dir }}/migrations"
    baseline: 2

- name: Run the app's own migrator
  bluegreen.dbfix.sqlite_migrate:
    path: "{{ dbfix_db_path }}"
    command: npm run migrate
    chdir: "{{ dbfix_app_dir }}/server"
    environment:
      NODE_ENV: production
'''

RETURN = r'''
applied:
  description: Migration files applied by this run (recorded by O(baseline) not included). In check mode, the ones that would be.
  returned: always
  type: list
  elements: str
  sample: [003_add_users_position.sql]
pending:
  description: Migration files not applied after this run (beyond O(target), or all pending ones in check mode).
  returned: always
  type: list
  elements: str
  sample: []
baselined:
  description: Migration files recorded as applied without running them because of O(baseline).
  returned: always
  type: list
  elements: str
  sample: []
repaired:
  description: Applied migrations whose checksum was re-recorded because of O(repair).
  returned: always
  type: list
  elements: str
  sample: []
current_version:
  description: Highest version recorded as applied after this run (before it, in check mode); null if none or with O(command).
  returned: always
  type: int
  sample: 3
backup_file:
  description: The backup taken because of O(backup), or null.
  returned: always
  type: str
  sample: /home/ubuntu/TimeTracking-Clean/server/database.db.backup.20260101_120000
stdout:
  description: Output of O(command).
  returned: when O(command) ran
  type: str
stderr:
  description: Error output of O(command).
  returned: when O(command) ran
  type: str
rc:
  description: Exit code of O(command).
  returned: when O(command) ran
  type: int
'''

import os
import re
import shlex
import sqlite3
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_migrate as M


def _backup(module, path):
    ts = time.strftime('%Y%m%d_%H%M%S')
    dest_dir = os.path.dirname(os.path.abspath(path))
    dest = os.path.join(dest_dir, S.backup_name(path, ts))
    n = 1
    while os.path.exists(dest):  # two runs within one second: never overwrite a backup
        time.sleep(1.0)
        ts = time.strftime('%Y%m%d_%H%M%S')
        dest = os.path.join(dest_dir, S.backup_name(path, ts))
        n += 1
        if n > 3:
            break
    real = S.real_db_path(path)
    st = os.stat(real)
    try:
        S.check_dest_dir(dest_dir)
        S.snapshot_copy(path, dest, module.params['busy_timeout'], mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid, verify='quick')
    except S.DbfixError as e:
        module.fail_json(msg='Backup before migrating failed, nothing was migrated: %s' % e.msg)
    return dest


def _short(stmt, n=300):
    s = ' '.join(stmt.split())
    return s if len(s) <= n else s[:n] + ' ...'


def _start(module):
    """The result every exit of the module returns, once the database is known to be there."""
    result = dict(changed=False, applied=[], pending=[], baselined=[], repaired=[], current_version=None, backup_file=None)
    try:
        S.check_db_file(module.params['path'])
    except S.DbfixError as e:
        module.fail_json(msg=e.msg, **result)
    return result


def run_files(module):
    p = module.params
    path = p['path']
    result = _start(module)
    try:
        files = M.scan(p['migrations_dir'])
    except M.MigrationError as e:
        module.fail_json(msg=e.msg, **result)
    real = S.real_db_path(path)
    try:
        conn = S.connect(real, p['busy_timeout'])
    except sqlite3.Error as e:
        module.fail_json(msg='Cannot open %s: SQLite says "%s".' % (path, e), **result)
    try:
        _migrate(module, conn, files, result)
    finally:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
        conn.close()


def _tracking_text(recorded):
    """One ``<file> <sha256>`` line per recorded migration (``{version: (file, sha256)}``), in version order."""
    return ''.join('%s %s\n' % recorded[v] for v in sorted(recorded))


def _fail_sql(module, path, e, result, what):
    if S.is_locked_error(e):
        module.fail_json(msg=S.locked_message(path, module.params['busy_timeout'], e), **result)
    module.fail_json(msg='%s on %s failed: SQLite says "%s". Nothing was changed by this step.' % (what, path, e), **result)


def _migrate(module, conn, files, result):
    p = module.params
    path, table = p['path'], p['table']
    check = module.check_mode
    try:
        exists = M.ensure_table(conn, table, create=False)
        applied = M.applied_rows(conn, table) if exists else {}
    except M.MigrationError as e:
        module.fail_json(msg='%s: %s' % (path, e.msg), **result)
    except sqlite3.DatabaseError as e:
        _fail_sql(module, path, e, result, 'Reading the tracking table %s' % table)
    by_version = {v: (fn, sha, text) for v, fn, dummy, sha, text in files}
    drift = [(v, by_version[v][0], row['sha256'], by_version[v][1]) for v, row in applied.items()
             if v in by_version and row['sha256'] != by_version[v][1]]
    missing = [row['name'] for v, row in applied.items() if v not in by_version]
    if missing:
        module.warn('Applied migrations of %s have no file in %s any more: %s' % (path, p['migrations_dir'], ', '.join(missing)))
    if drift and not p['repair']:
        module.fail_json(msg='Applied migrations of %s were edited after they ran: %s. Restore the original files, or add the change as a '
                             'new migration; pass repair=true only if the edit is known to be harmless (it re-records checksums).'
                             % (path, '; '.join('%s (recorded sha256 %s, file now %s)' % (fn, old[:12], new[:12]) for v, fn, old, new in drift)),
                         **result)
    todo_baseline = [v for v in by_version if p['baseline'] is not None and v <= p['baseline'] and v not in applied]
    pending = [v for v in sorted(by_version) if v not in applied and v not in todo_baseline and (p['target'] is None or v <= p['target'])]
    beyond = [by_version[v][0] for v in sorted(by_version) if v not in applied and v not in todo_baseline and v not in pending]
    result['current_version'] = max(applied) if applied else None
    result['repaired'] = [fn for v, fn, old, new in drift]
    result['baselined'] = [by_version[v][0] for v in sorted(todo_baseline)]

    def diff(ran):
        """The tracking table as recorded before, and after the repair, baseline and the migrations in ``ran``."""
        if not module._diff:
            return
        before = dict((v, (row['name'], row['sha256'])) for v, row in applied.items())
        after = dict(before)
        for v, _fn, _old, new in drift:
            after[v] = (before[v][0], new)
        for v in [*todo_baseline, *ran]:
            after[v] = by_version[v][:2]
        header = '%s (table %s)' % (path, table)
        result['diff'] = dict(before=_tracking_text(before), after=_tracking_text(after), before_header=header, after_header=header)

    if not (drift or todo_baseline or pending):
        result['pending'] = beyond
        diff([])
        module.exit_json(**result)
    result['changed'] = True
    if check:
        result['applied'] = [by_version[v][0] for v in pending]
        result['pending'] = [by_version[v][0] for v in pending] + beyond
        _dry_run(module, conn, pending, by_version, result)
        diff(pending)
        module.exit_json(**result)
    if p['backup']:
        result['backup_file'] = _backup(module, path)
    try:
        if drift or todo_baseline:
            conn.execute('BEGIN IMMEDIATE')
            M.ensure_table(conn, table, create=True)
        for v, _fn, _old, new in drift:
            conn.execute('UPDATE "%s" SET sha256=? WHERE version=?' % table.replace('"', '""'), (new, v))
        for v in sorted(todo_baseline):
            M.record(conn, table, version=v, name=by_version[v][0], sha=by_version[v][1], ms=0)
        if conn.in_transaction:
            conn.execute('COMMIT')
    except sqlite3.DatabaseError as e:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
        _fail_sql(module, path, e, result, 'Recording baseline/repair in %s' % table)
    if todo_baseline:
        result['current_version'] = max([result['current_version'] or 0, *todo_baseline])
    remaining = [by_version[v][0] for v in pending]
    for v in pending:
        fn, sha, text = by_version[v]
        result['pending'] = remaining + beyond
        _apply_one(module, conn, (v, fn, sha, text), result)
        result['applied'].append(fn)
        remaining.remove(fn)
        result['current_version'] = v if result['current_version'] is None else max(result['current_version'], v)
    result['pending'] = beyond
    diff(pending)
    module.exit_json(**result)


def _statements(module, fn, text, result, *, in_tx):
    path = module.params['path']
    stmts = M.split_statements(text)
    if in_tx:
        ctl = [s for s in stmts if M.is_tx_control(s)]
        if ctl:
            module.fail_json(msg='Migration %s for %s contains its own transaction control (%s). sqlite_migrate wraps each migration in a '
                                 'transaction; remove it, or mark the file with "-- dbfix: no-transaction". Nothing of it was applied.'
                                 % (fn, path, _short(ctl[0], 80)), **result)
    return stmts


def _apply_one(module, conn, migration, result):
    path, table = module.params['path'], module.params['table']
    v, fn, sha, text = migration
    in_tx = not M.no_transaction(text)
    stmts = _statements(module, fn, text, result, in_tx=in_tx)
    t0 = time.time()
    stmt = None
    try:
        if in_tx:
            conn.execute('BEGIN IMMEDIATE')
            # the tracking table is created in the first migration's transaction: a failure leaves the file as it was
            M.ensure_table(conn, table, create=True)
        for stmt in stmts:
            conn.execute(stmt)
        stmt = None
        if not in_tx:
            conn.execute('BEGIN IMMEDIATE')
            M.ensure_table(conn, table, create=True)
        M.record(conn, table, version=v, name=fn, sha=sha, ms=int((time.time() - t0) * 1000))
        conn.execute('COMMIT')
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
        if S.is_locked_error(e):
            module.fail_json(msg='Migration %s: %s' % (fn, S.locked_message(path, module.params['busy_timeout'], e)), **result)
        where = ('statement: %s' % _short(stmt)) if stmt else 'recording it in %s' % table
        # SQLITE_FULL is not the migration's fault: say where space is missing instead of "fix the file"
        todo = ('free space on the filesystem holding %s and rerun' % os.path.dirname(os.path.abspath(path))
                if getattr(e, 'sqlite_errorname', '') == 'SQLITE_FULL' or 'database or disk is full' in str(e)
                else 'fix the file and rerun')
        module.fail_json(msg='Migration %s failed on %s at %s -- SQLite says "%s". %s Earlier migrations stay applied; %s.'
                             % (fn, path, where, e, 'It was rolled back.' if in_tx else
                                'It is marked no-transaction, so statements before this one stay applied.', todo), **result)


def _dry_run(module, conn, pending, by_version, result):
    path, table = module.params['path'], module.params['table']
    """Run pending migrations inside one transaction and roll it back (check mode)."""
    skipped = []
    try:
        conn.execute('BEGIN IMMEDIATE')
    except sqlite3.Error as e:
        _fail_sql(module, path, e, result, 'Check-mode dry run')
    try:
        M.ensure_table(conn, table, create=True)
        for v in pending:
            fn, sha, text = by_version[v]
            if M.no_transaction(text):
                skipped.append(fn)
                continue
            stmt = None
            try:
                for stmt in _statements(module, fn, text, result, in_tx=True):
                    conn.execute(stmt)
                stmt = None
                M.record(conn, table, version=v, name=fn, sha=sha, ms=0)
            except sqlite3.Error as e:
                module.fail_json(msg='Migration %s would fail on %s at %s -- SQLite says "%s" (check mode: everything was rolled back).'
                                     % (fn, path, ('statement: %s' % _short(stmt)) if stmt else 'recording it', e), **result)
    finally:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
    if skipped:
        module.warn('Check mode did not try migrations marked no-transaction: %s' % ', '.join(skipped))


def run_command(module):
    p = module.params
    path = p['path']
    result = _start(module)
    env = {}
    for k, v in (p['environment'] or {}).items():
        env[str(k)] = str(v)
        if str(v):
            module.no_log_values.add(str(v))
    cmd = p['command']
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    elif isinstance(cmd, list):
        cmd = [str(c) for c in cmd]
    else:
        module.fail_json(msg='command for %s must be a string or a list, got %r.' % (path, type(cmd).__name__), **result)
    if p['chdir'] and not os.path.isdir(p['chdir']):
        module.fail_json(msg='chdir %s for the migrator of %s is not an existing folder.' % (p['chdir'], path), **result)
    try:
        rx = re.compile(p['uptodate_regex'])
    except re.error as e:
        module.fail_json(msg='uptodate_regex %r is not a valid regular expression: %s.' % (p['uptodate_regex'], e), **result)
    if module.check_mode:
        module.warn('sqlite_migrate does not run the command %s in check mode; pending migrations are unknown.' % ' '.join(cmd))
        module.exit_json(**result)
    if p['backup']:
        result['backup_file'] = _backup(module, path)
    rc, out, err = module.run_command(cmd, cwd=p['chdir'], environ_update=env)
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        module.fail_json(msg='The migrator %s for %s failed with exit code %d: %s. The backup (if any) is %s.'
                             % (' '.join(cmd), path, rc, (err or out).strip()[-2000:], result['backup_file']), **result)
    if rx.search(out) or rx.search(err):
        if result['backup_file']:
            os.unlink(result['backup_file'])
            result['backup_file'] = None
        module.exit_json(**result)
    result['changed'] = True
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            migrations_dir=dict(type='path'),
            table=dict(type='str', default='schema_migrations'),
            target=dict(type='int'),
            baseline=dict(type='int'),
            repair=dict(type='bool', default=False),
            command=dict(type='raw'),
            chdir=dict(type='path'),
            environment=dict(type='dict', no_log=True),
            uptodate_regex=dict(type='str', default='No pending migrations'),
            backup=dict(type='bool', default=False),
            busy_timeout=dict(type='int', default=5000),
        ),
        mutually_exclusive=[('migrations_dir', 'command')],
        required_one_of=[('migrations_dir', 'command')],
        supports_check_mode=True,
    )
    if module.params['command'] is not None:
        run_command(module)
    else:
        run_files(module)


if __name__ == '__main__':
    main()
