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
    A migration that cannot run inside a transaction (for example C(VACUUM), or SQLite's 12-step C(ALTER TABLE) with
    foreign keys off) declares it with a line C(-- dbfix: no-transaction); its statements then run one by one (its
    own C(BEGIN)/C(COMMIT) and C(PRAGMA foreign_keys=OFF) are allowed there) and the tracking row is written after
    them. A migration without the marker must not contain C(BEGIN)/C(COMMIT) or C(PRAGMA foreign_keys) (SQLite
    ignores the latter inside a transaction); both are refused before anything of it runs.
  - >-
    Foreign keys are enforced as the app enforces them (O(foreign_keys=enforce), the default): the connection runs
    with C(PRAGMA foreign_keys=ON), violations are deferred to the end of each migration and C(PRAGMA
    foreign_key_check) runs before its commit. A migration that leaves a row whose foreign key points at no parent
    row is rolled back and the task fails naming the file, the child table and column, the rowid and the parent
    table. After a no-transaction migration foreign keys are switched back on and the same check runs before its
    tracking row is written (its statements stay applied if it fails). Rows that already broke a foreign key before
    the run are reported as a warning and left alone. With foreign keys on, a C(DROP TABLE) inside a transactional
    migration runs the parent's C(ON DELETE) actions, as it would in the app; rebuild tables the 12-step way in a
    no-transaction migration.
  - >-
    Only files whose real path is inside O(migrations_dir) are read: a symlink that leads out of the folder is
    refused (naming the link and its target, without reading it); links inside the folder and a symlinked folder are
    fine. Entries named C(*.sql) that are not regular files (directories, FIFOs, dangling links), files with NUL bytes
    or not in UTF-8, and versions beyond SQLite's 64-bit integers are refused before anything runs. Messages show at
    most the first 80 characters of the failing statement, never more of a migration file.
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
      - >-
        With O(migrations_dir), check mode takes a consistent private copy of the database (0600, in a new 0700 folder
        under C(TMPDIR), removed afterwards) and runs exactly the steps of a real run on it, no-transaction migrations
        and foreign-key checks included, so its verdict is the real run's. Nothing is written beside the database, not
        even C(-wal)/C(-shm). It needs free space the size of the database in C(TMPDIR).
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
  foreign_keys:
    description:
      - V(enforce) runs every migration with foreign keys on and refuses (rolls back) a migration that leaves rows
        breaking a foreign key, as the app's own migrator would.
      - V(off) runs migrations with foreign keys off and without C(foreign_key_check) (what this module did at first); use
        it only for an app that itself runs with foreign keys off.
    type: str
    choices: [enforce, 'off']
    default: enforce
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
      - The backup is named C(<db>.backup.YYYYMMDD_HHMMSS), or C(<db>.backup.YYYYMMDD_HHMMSS.N) when that name is taken;
        an existing file is never overwritten, however often a run is retried (the finished copy is hard-linked to the
        first free name, which fails instead of replacing).
    type: bool
    default: false
  busy_timeout:
    description: How long (milliseconds, 0 to 2147483647) to wait for a lock held by another process before failing.
    type: int
    default: 5000
  quiesce:
    description:
      - >-
        Names of the pm2 apps that own this database (with O(migrations_dir)). Our writes run on the host Python's SQLite; when
        that SQLite has the WAL-reset bug (3.7.0 to 3.51.2 without the 3.44.6/3.50.7 backports; Debian 12 ships 3.40.1),
        the database is in WAL mode, another process holds it open for writing and there is something to write, a
        commit or checkpoint of ours racing the app's can corrupt the database (U(https://sqlite.org/wal.html#walresetbug)).
        Then the module stops these apps (C(pm2 stop)) before writing, waits up to O(quiesce_timeout) seconds until no
        other process holds the file for writing (read from C(/proc)), and refuses, naming the path, the holder pids, the
        SQLite version and what to upgrade, when one still does (the stopped apps are started again then).
      - Apps it stopped stay stopped after a successful run (result RV(live_write.stopped)); start or restart them
        afterwards (the C(phase1) role restarts the app whose database changed).
      - Without O(quiesce) such a write is refused. Processes holding the file read-only (C(mode=ro) readers) do not count.
        With an unaffected host SQLite, or a database not in WAL mode, nothing is stopped.
    type: list
    elements: str
    default: []
  pm2_home:
    description: C(PM2_HOME) of the daemon running the O(quiesce) apps; empty means C($PM2_HOME) or C(~/.pm2).
    type: str
    default: ''
  pm2_executable:
    description: The pm2 executable (a name on PATH or an absolute path) for O(quiesce).
    type: str
    default: pm2
  policy:
    description:
      - >-
        The expand/contract guard for a database both colors use (with O(migrations_dir)). V(any) (default): every
        migration may run (a database only one app uses). V(expand): while both colors run on the shared database,
        pending migrations are first run on a private copy (removed afterwards), one statement at a time, and the schema
        (C(sqlite_master), C(table_xinfo), C(foreign_key_list)) and row counts before and after each statement and
        SQLite's change counter decide; anything but adding tables, nullable or defaulted columns, indexes, views,
        triggers or rows is refused before anything is written, naming the migration file, the statement and what it
        does (drops, renames, type or constraint changes, C(NOT NULL) without default, deleted or changed rows). Then
        O(expect_columns) and O(queries) (the other color's needs) are checked against the result.
        V(contract): the explicit later step, after every color runs the new release; nothing is refused.
    type: str
    choices: [any, expand, contract]
    default: any
  expect_columns:
    description: With O(policy=expand), columns the other color still needs after the migrations, a list of column names per table.
    type: dict
    default: {}
  queries:
    description: With O(policy=expand), named read-only queries the other color runs (name to SQL); each must still run after the migrations.
    type: dict
    default: {}
  quiesce_timeout:
    description: Seconds to wait after stopping the O(quiesce) apps until no other process holds the database for writing.
    type: int
    default: 30
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

- name: Rebuild a table with foreign keys off (SQLite's 12-step ALTER TABLE) in a no-transaction migration
  # 004_users_email_not_null.sql:
  #   -- dbfix: no-transaction
  #   PRAGMA foreign_keys=OFF;
  #   BEGIN;
  #   CREATE TABLE new_users(id INTEGER PRIMARY KEY, email TEXT NOT NULL);
  #   INSERT INTO new_users SELECT id, coalesce(email, '') FROM users;
  #   DROP TABLE users;
  #   ALTER TABLE new_users RENAME TO users;
  #   COMMIT;
  # sqlite_migrate switches foreign keys back on and runs foreign_key_check before recording it.
  bluegreen.dbfix.sqlite_migrate:
    path: "{{ dbfix_db_path }}"
    migrations_dir: "{{ dbfix_app_dir }}/migrations"

- name: Migrate the live shared DB; stop both apps for the write if the host SQLite has the WAL-reset bug
  bluegreen.dbfix.sqlite_migrate:
    path: /home/ubuntu/database-shared.db
    migrations_dir: /opt/timetracking/migrations
    quiesce: [timetracking-blue, timetracking-green]
    pm2_home: /home/ubuntu/.pm2

- name: While both colors run the shared DB, allow only expanding migrations; green (old release) still needs these
  bluegreen.dbfix.sqlite_migrate:
    path: /home/ubuntu/database-shared.db
    migrations_dir: /opt/timetracking/migrations
    policy: expand
    expect_columns:
      users: [id, email, position]
    queries:
      active_users: SELECT id, email FROM users WHERE active = 1

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
  description:
    - The backup taken because of O(backup), or null. Also returned when a migration failed after the backup was taken.
    - A new file every time; C(.N) is appended to the name when a file of that name exists already.
  returned: always
  type: str
  sample: /home/ubuntu/TimeTracking-Clean/server/database.db.backup.20260101_120000
policy_checked:
  description: With O(policy=expand), the pending migrations that were tried on a private copy and found to only expand.
  returned: with O(policy=expand), when migrations were pending
  type: list
  elements: str
  sample: [004_add_users_team.sql]
live_write:
  description:
    - How this run made its writes to a live database safe from the WAL-reset bug (see O(quiesce)).
  returned: with O(migrations_dir), when something was to be written
  type: dict
  contains:
    needed:
      description: Whether another process held the WAL database for writing while the host SQLite is affected.
      type: bool
    host_sqlite:
      description: SQLite version of the Python running the module.
      type: str
    holders:
      description: Pids still holding the database for writing (empty when the write went ahead).
      type: list
      elements: int
    readers:
      description: Pids holding it read-only (not counted).
      type: list
      elements: int
    stopped:
      description: pm2 apps this run stopped before writing (they stay stopped).
      type: list
      elements: str
    would_stop:
      description: In check mode, the pm2 apps a real run would stop.
      type: list
      elements: str
    unreadable:
      description: Processes whose open files could not be read (another user's, when not root); a warning says so.
      type: int
  sample: {needed: true, host_sqlite: 3.40.1, holders: [], readers: [], stopped: [timetracking-blue], would_stop: [], unreadable: 0}
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
import pwd
import re
import shlex
import shutil
import sqlite3
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _expand as E
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _live_write as L
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _snapshot as SN
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_migrate as M
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V

CHECK_NOTE = ' (check mode: nothing was changed)'
SIMULATED_NOTE = (' (check mode: found by running the migrations, exactly as a real run would, on a private copy of the database '
                  'that was removed again; nothing was changed)')
MAX_BUSY_TIMEOUT = 2 ** 31 - 1


class Run:
    """One run of the module: the parameters, the result every exit returns, and how a run ends."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.path = module.params['path']
        self.check = module.check_mode
        self.simulating = False
        self.enforce = module.params['foreign_keys'] == 'enforce'
        self.fk_before = []
        self.header = None
        self.result = dict(changed=False, applied=[], pending=[], baselined=[], repaired=[], current_version=None, backup_file=None)

    def fail(self, msg):
        if self.check:
            msg += SIMULATED_NOTE if self.simulating else CHECK_NOTE
        self.module.fail_json(msg=msg, **self.result)

    def done(self):
        self.module.exit_json(**self.result)

    def fail_sql(self, e, what):
        if S.is_locked_error(e):
            self.fail(S.locked_message(self.path, self.p['busy_timeout'], e))
        self.fail('%s on %s failed: SQLite says "%s". Nothing was changed by this step.' % (what, self.path, M.sql_error(e)))


def _validate(run):
    p = run.p
    if '\x00' in p['path']:
        run.fail('path %r contains a NUL byte. Give the path of the SQLite database file.' % p['path'])
    if not 0 <= p['busy_timeout'] <= MAX_BUSY_TIMEOUT:
        run.fail('busy_timeout=%d for %s is out of range: give milliseconds from 0 to %d.' % (p['busy_timeout'], p['path'], MAX_BUSY_TIMEOUT))
    if not p['table'] or '\x00' in p['table']:
        run.fail('table %r for %s is not a usable table name (empty or with a NUL byte). Give the tracking table\'s name, '
                 'or leave the default schema_migrations.' % (p['table'], p['path']))
    try:
        run.header = S.check_db_file(p['path'])
    except S.DbfixError as e:
        run.fail(e.msg)


# --------------------------------------------------------------------------- backup


def _backup(run):
    """A consistent backup beside the database under a name no file has yet (never overwrites one, whatever retried)."""
    path = run.path
    ts = time.strftime('%Y%m%d_%H%M%S')
    dest_dir = os.path.dirname(os.path.abspath(path))
    base = S.backup_name(path, ts)
    real = S.real_db_path(path)
    staging = None
    try:
        S.check_dest_dir(dest_dir)
        st = os.stat(real)
        staging = M.staging_name(dest_dir, base)
        SN.snapshot_copy(path, staging, run.p['busy_timeout'], mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid, verify='quick')
        dest = M.link_no_replace(staging, dest_dir, base)
        S.fsync_dir(dest_dir)
        return dest
    except S.DbfixError as e:
        run.fail('Backup before migrating failed, nothing was migrated: %s' % e.msg)
    except OSError as e:
        run.fail('Backup of %s into %s before migrating failed: %s. Nothing was migrated; free space or fix the folder\'s '
                 'permissions and rerun.' % (path, dest_dir, e.strerror or e))
    finally:
        if staging is not None and os.path.lexists(staging):
            try:
                os.unlink(staging)
            except OSError:
                pass


def _why_unwritable(run):
    """Why SQLite could not write the database (None if it can): the same answer in check mode and for real."""
    real = S.real_db_path(run.path)
    folder = os.path.dirname(real)
    try:
        ro_fs = bool(os.statvfs(real).f_flag & os.ST_RDONLY)
    except OSError:
        ro_fs = False
    if ro_fs:
        return 'it is on a read-only filesystem', real
    if not os.access(real, os.W_OK):
        return 'this user (uid %d) has no write permission on %s' % (os.geteuid(), real), real
    if not os.access(folder, os.W_OK | os.X_OK):
        sides = [real + '-wal', real + '-shm'] if run.header['wal'] else []
        if not (sides and all(os.path.exists(x) and os.access(x, os.W_OK) for x in sides)):
            return 'this user (uid %d) cannot create SQLite\'s %s in the folder %s' % (
                os.geteuid(), '-wal/-shm files' if run.header['wal'] else 'rollback journal', folder), folder
    return None


def _check_writable(run):
    """Refuse, before anything is written, when the database cannot be written."""
    found = _why_unwritable(run)
    if found:
        why, whose = found
        try:
            owner = pwd.getpwuid(os.stat(whose).st_uid).pw_name
        except (KeyError, OSError):
            owner = 'its owner'
        run.fail('Cannot migrate %s: %s. Nothing was changed; run as %s (become_user) or make it writable, then rerun.'
                 % (run.path, why, owner))


# --------------------------------------------------------------------------- migrations_dir


def _open(run, dbfile, trust=True):
    try:
        conn = S.connect(dbfile, run.p['busy_timeout'], trust=trust)
        conn.execute('PRAGMA foreign_keys=%s' % ('ON' if run.enforce else 'OFF'))
        if trust:
            # the live database: no automatic checkpoint of ours racing the apps' (WAL-reset bug)
            V.make_connection_safe(conn)
        return conn
    except S.DbfixError as e:
        run.fail(e.msg)
    except sqlite3.Error as e:
        run.fail('Cannot open %s: SQLite says "%s".' % (run.path, M.sql_error(e)))


def _close(conn):
    try:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
    except sqlite3.Error:
        pass
    conn.close()


def run_files(run):
    p = run.p
    _validate(run)
    try:
        files = M.scan(p['migrations_dir'])
    except M.MigrationError as e:
        run.fail(e.msg)
    real = S.real_db_path(run.path)
    # A database this user cannot write is read from a private copy too (SQLite could not even open a WAL database
    # without its -shm there); if anything is to be done, _migrate then refuses before writing, as check mode does.
    if not run.check and _why_unwritable(run) is None:
        conn = _open(run, real)
        try:
            _migrate(run, conn, files)
        finally:
            _close(conn)
        return
    # Check mode runs the very same steps on a private copy, so its verdict is the real run's (a no-transaction
    # migration included), and nothing is written beside the database, not even -wal/-shm.
    who = 'Check mode' if run.check else 'sqlite_migrate (the database cannot be written here, so it reads a copy)'
    tmp = None
    try:
        try:
            tmp, copy = M.private_copy(lambda dest, folder: SN.snapshot_copy(
                run.path, dest, p['busy_timeout'], mode=0o600, verify='none', checksum=False, tmp_dir=folder))
        except S.DbfixError as e:
            run.fail('%s could not take a private copy of %s to read: %s' % (who, run.path, e.msg))
        except (OSError, sqlite3.Error) as e:
            run.fail('%s could not take a private copy of %s to read (in %s): %s. Free space there (TMPDIR chooses the folder) '
                     'and rerun.' % (who, run.path, tempfile.gettempdir(), M.sql_error(e)))
        conn = _open(run, copy, trust=False)  # our own file in our own 0700 folder
        try:
            _migrate(run, conn, files)
        finally:
            _close(conn)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _tracking_text(recorded):
    """One ``<file> <sha256>`` line per recorded migration (``{version: (file, sha256)}``), in version order."""
    return ''.join('%s %s\n' % recorded[v] for v in sorted(recorded))


def _migrate(run, conn, files):
    module, p, result = run.module, run.p, run.result
    path, table = run.path, p['table']
    try:
        exists = M.ensure_table(conn, table, create=False)
        applied = M.applied_rows(conn, table) if exists else {}
    except M.MigrationError as e:
        run.fail('%s: %s' % (path, e.msg))
    except sqlite3.Error as e:
        run.fail_sql(e, 'Reading the tracking table %s' % table)
    by_version = {v: (fn, sha, text) for v, fn, dummy, sha, text in files}
    drift = [(v, by_version[v][0], row['sha256'], by_version[v][1]) for v, row in applied.items()
             if v in by_version and row['sha256'] != by_version[v][1]]
    missing = [str(row['name']) for v, row in applied.items() if v not in by_version]
    if missing:
        module.warn('Applied migrations of %s have no file in %s any more: %s' % (path, p['migrations_dir'], ', '.join(missing)))
    if drift and not p['repair']:
        run.fail('Applied migrations of %s were edited after they ran: %s. Restore the original files, or add the change as a '
                 'new migration; pass repair=true only if the edit is known to be harmless (it re-records checksums).'
                 % (path, '; '.join('%s (recorded sha256 %s, file now %s)' % (fn, str(old)[:12], new[:12]) for v, fn, old, new in drift)))
    todo_baseline = [v for v in by_version if p['baseline'] is not None and v <= p['baseline'] and v not in applied]
    pending = [v for v in sorted(by_version) if v not in applied and v not in todo_baseline and (p['target'] is None or v <= p['target'])]
    beyond = [by_version[v][0] for v in sorted(by_version) if v not in applied and v not in todo_baseline and v not in pending]
    before_version = max(applied) if applied else None
    result['current_version'] = before_version
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
        run.done()
    # Refusals before the first write (read-only DB, the expand trial, the live-write guard) report changed=false.
    _check_writable(run)
    if p['policy'] == 'expand' and pending:
        _expand_trial(run, [(v, *by_version[v]) for v in pending], table)
    _guard_live_write(run)
    result['changed'] = True
    if p['backup']:
        if run.check:
            try:
                S.check_dest_dir(os.path.dirname(os.path.abspath(path)))
            except S.DbfixError as e:
                run.fail('Backup before migrating failed, nothing was migrated: %s' % e.msg)
        else:
            result['backup_file'] = _backup(run)
    run.simulating = run.check
    if run.enforce:
        try:
            run.fk_before = M.fk_violations(conn)
        except sqlite3.Error as e:
            if S.is_locked_error(e):
                run.fail(S.locked_message(path, p['busy_timeout'], e))
            run.fail('PRAGMA foreign_key_check fails on %s as it is, before any migration: SQLite says "%s". Fix the schema '
                     '(a foreign key must reference a PRIMARY KEY or UNIQUE column of an existing table), or pass foreign_keys=off '
                     'to migrate without foreign-key checks. Nothing was changed.' % (path, M.sql_error(e)))
        if run.fk_before and not run.check:
            module.warn('%s already had %d row(s) breaking foreign keys before this run (%s); sqlite_migrate only refuses '
                        'migrations that add such rows.' % (path, len(run.fk_before), M.describe_violations(conn, run.fk_before, 3)))
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
    except M.MigrationError as e:
        run.fail('%s: %s' % (path, e.msg))
    except sqlite3.Error as e:
        _close_tx(conn)
        run.fail_sql(e, 'Recording baseline/repair in %s' % table)
    if todo_baseline:
        result['current_version'] = max([result['current_version'] or 0, *todo_baseline])
    remaining = [by_version[v][0] for v in pending]
    for v in pending:
        fn, sha, text = by_version[v]
        result['pending'] = remaining + beyond
        _apply_one(run, conn, (v, fn, sha, text))
        result['applied'].append(fn)
        remaining.remove(fn)
        result['current_version'] = v if result['current_version'] is None else max(result['current_version'], v)
    result['pending'] = beyond
    if run.check:
        # what the real run would do; the database itself is as it was
        result['pending'] = [by_version[v][0] for v in pending] + beyond
        result['current_version'] = before_version
    diff(pending)
    run.done()


def _expand_trial(run, migrations, table):
    """policy=expand: run the pending migrations on a private copy, statement by statement, and refuse what is not an expansion."""
    p = run.p
    for t, cols in (p['expect_columns'] or {}).items():
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            run.fail('expect_columns.%s for %s must be a list of column names, got %r. Nothing was changed.' % (t, run.path, cols))
    for name, sql in (p['queries'] or {}).items():
        if not isinstance(sql, str):
            run.fail('queries.%s for %s must be one SQL statement (a string), got %r. Nothing was changed.' % (name, run.path, sql))
    tmp = None
    try:
        try:
            tmp, copy = M.private_copy(lambda dest, folder: SN.snapshot_copy(
                run.path, dest, p['busy_timeout'], mode=0o600, verify='none', checksum=False, tmp_dir=folder))
        except (S.DbfixError, OSError, sqlite3.Error) as e:
            run.fail('policy=expand could not take a private copy of %s to try the migrations on: %s. Nothing was changed.'
                     % (run.path, getattr(e, 'msg', None) or M.sql_error(e)))
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            conn.execute('PRAGMA foreign_keys=%s' % ('ON' if run.enforce else 'OFF'))
            for _v, fn, _sha, text in migrations:
                start = E.snapshot(conn)
                for stmt in M.split_statements(text):
                    if M.is_tx_control(stmt) or M.is_fk_pragma(stmt):
                        continue
                    before = E.snapshot(conn)
                    n0 = conn.total_changes
                    writes = E.Writes()
                    conn.set_authorizer(writes)
                    try:
                        conn.execute(stmt)
                    except sqlite3.Error as e:
                        run.fail('policy=expand: migration %s fails on a private copy of %s at statement: %s -- SQLite says "%s". '
                                 'Nothing was changed.' % (fn, run.path, M.shorten(stmt), M.sql_error(e)))
                    conn.set_authorizer(None)
                    fresh = [t for t in before['columns'] if t not in start['columns']]  # created by this migration
                    found = E.problems(before, E.snapshot(conn), conn.total_changes - n0, ignore=(table, *fresh), written=writes.tables)
                    if found:
                        run.fail('policy=expand refuses migration %s for %s: its statement "%s" %s. While both colors run on the '
                                 'shared database a migration may only add (tables, nullable or defaulted columns, indexes, views, '
                                 'triggers, rows). Split it: the expansion now, this part later as an explicit policy=contract step '
                                 'once every color runs the new release. Nothing was changed (it was tried on a private copy).'
                                 % (fn, run.path, M.shorten(stmt), '; '.join(found)))
            missing = E.missing_columns(conn, p['expect_columns'])
            if missing:
                run.fail('policy=expand refuses the migrations for %s: afterwards the other color would miss columns it expects: %s. '
                         'Nothing was changed (tried on a private copy).'
                         % (run.path, '; '.join('%s.%s' % (t, ', '.join(c)) for t, c in sorted(missing.items()))))
            conn.execute('PRAGMA query_only=ON')
            for name, sql in (p['queries'] or {}).items():
                try:
                    conn.execute(sql).fetchmany(1)
                except sqlite3.Error as e:
                    run.fail('policy=expand refuses the migrations for %s: afterwards the other color\'s query %s fails: SQLite says '
                             '"%s". Nothing was changed (tried on a private copy).' % (run.path, name, M.sql_error(e)))
        finally:
            conn.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    run.result['policy_checked'] = [m[1] for m in migrations]


def _guard_live_write(run):
    """Before the first write: no commit of ours may race an app's checkpoint on an affected SQLite (issue 14)."""
    p = run.p
    if p['quiesce_timeout'] < 0:
        run.fail('quiesce_timeout=%d for %s must be 0 or more seconds.' % (p['quiesce_timeout'], run.path))
    apps = [dict(name=n, pm2_home=p['pm2_home'], executable=p['pm2_executable']) for n in p['quiesce'] or []]
    for app in apps:
        if not str(app['name']).strip():
            run.fail('quiesce for %s holds an app with an empty name; give the pm2 name of each app that owns the database.' % run.path)
    info, msg = L.guard(run.module, S.real_db_path(run.path), run.path, is_wal=run.header['wal'], apps=apps,
                        timeout=p['quiesce_timeout'], check_mode=run.check)
    run.result['live_write'] = info
    if msg:
        run.fail(msg)
    if info['unreadable'] and L.needs_guard(run.header['wal']):
        run.module.warn('%d process(es) could not be inspected (their /proc/PID/fd is not readable for uid %d), so a holder of %s among '
                        'them would not be seen by the WAL-reset guard; run as root or as the apps\' user to be sure.'
                        % (info['unreadable'], os.geteuid(), run.path))


def _close_tx(conn):
    try:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
    except sqlite3.Error:
        pass


def _refuse_statements(run, fn, stmts):
    """Statements a transactional migration must not hold (checked before anything of it runs)."""
    ctl = [s for s in stmts if M.is_tx_control(s)]
    if ctl:
        run.fail('Migration %s for %s contains its own transaction control (%s). sqlite_migrate wraps each migration in a '
                 'transaction; remove it, or mark the file with "-- dbfix: no-transaction". Nothing of it was applied.'
                 % (fn, run.path, M.shorten(ctl[0])))
    fkp = [s for s in stmts if M.is_fk_pragma(s)]
    if fkp:
        run.fail('Migration %s for %s sets foreign keys inside its transaction (%s), where SQLite silently ignores it: foreign keys would '
                 'stay %s while it runs. To rebuild a table with foreign keys off (SQLite\'s 12-step ALTER TABLE), mark the file with '
                 '"-- dbfix: no-transaction" and give it its own PRAGMA foreign_keys=OFF; BEGIN; ... COMMIT; sqlite_migrate switches '
                 'them back on and runs foreign_key_check after it. Nothing of it was applied.'
                 % (fn, run.path, M.shorten(fkp[0]), 'on' if run.enforce else 'off'))


def _apply_one(run, conn, migration):
    p = run.p
    path, table = run.path, p['table']
    v, fn, sha, text = migration
    in_tx = not M.no_transaction(text)
    stmts = M.split_statements(text)
    if in_tx:
        _refuse_statements(run, fn, stmts)
    t0 = time.time()
    stmt = None
    after = None
    try:
        if in_tx:
            conn.execute('BEGIN IMMEDIATE')
            if run.enforce:
                # violations are counted until the end of the migration, where foreign_key_check names each row
                conn.execute('PRAGMA defer_foreign_keys=ON')
            # the tracking table is created in the first migration's transaction: a failure leaves the file as it was
            M.ensure_table(conn, table, create=True)
        for stmt in stmts:
            conn.execute(stmt)
        stmt = None
        if not in_tx:
            if conn.in_transaction:
                conn.execute('ROLLBACK')
                run.fail('Migration %s on %s left a transaction open (a BEGIN without its COMMIT); that transaction was rolled back. '
                         'It is marked no-transaction, so statements before it stay applied; it was not recorded. Close the '
                         'transaction in the file and rerun.' % (fn, path))
            if run.enforce:
                conn.execute('PRAGMA foreign_keys=ON')  # a 12-step ALTER switched them off; the check below needs them on
            conn.execute('BEGIN IMMEDIATE')
            M.ensure_table(conn, table, create=True)
        if run.enforce:
            after = M.fk_violations(conn)
            new = M.new_violations(run.fk_before, after)
            if new:
                detail = M.describe_violations(conn, new)
                _close_tx(conn)
                run.fail('Migration %s on %s leaves %d row(s) whose foreign key points at no parent row: %s. %s Foreign keys are '
                         'enforced as the app enforces them (PRAGMA foreign_keys=ON, foreign_key_check before commit). Fix the '
                         'migration or the data and rerun; foreign_keys=off turns this check off.'
                         % (fn, path, len(new), detail,
                            'It was rolled back; earlier migrations stay applied.' if in_tx else
                            'It is marked no-transaction, so its statements stay applied, but it was not recorded as applied; '
                            'repair those rows (or restore the backup) before rerunning.'))
        M.record(conn, table, version=v, name=fn, sha=sha, ms=int((time.time() - t0) * 1000))
        conn.execute('COMMIT')
        if after is not None:
            run.fk_before = after
    except M.MigrationError as e:
        _close_tx(conn)
        run.fail('Migration %s on %s: %s' % (fn, path, e.msg))
    except sqlite3.Error as e:
        _close_tx(conn)
        if S.is_locked_error(e):
            run.fail('Migration %s: %s' % (fn, S.locked_message(path, p['busy_timeout'], e)))
        where = ('statement: %s' % M.shorten(stmt)) if stmt else 'recording it in %s' % table
        # SQLITE_FULL is not the migration's fault: say where space is missing instead of "fix the file"
        todo = ('free space on the filesystem holding %s and rerun' % os.path.dirname(os.path.abspath(path))
                if getattr(e, 'sqlite_errorname', '') == 'SQLITE_FULL' or 'database or disk is full' in str(e)
                else 'fix the file and rerun')
        run.fail('Migration %s failed on %s at %s -- SQLite says "%s". %s Earlier migrations stay applied; %s.'
                 % (fn, path, where, M.sql_error(e), 'It was rolled back.' if in_tx else
                    'It is marked no-transaction, so statements before this one stay applied.', todo))


# --------------------------------------------------------------------------- command


def _command(run):
    p = run.p
    cmd = p['command']
    if isinstance(cmd, str):
        try:
            cmd = shlex.split(cmd)
        except ValueError as e:
            run.fail('command for %s cannot be split into arguments the way a shell would: %s (an unclosed quote or a trailing '
                     'backslash?). Fix the quoting, or give command as a list.' % (run.path, e))
    elif isinstance(cmd, list):
        cmd = [str(c) for c in cmd]
    else:
        run.fail('command for %s must be a string or a list, got %s.' % (run.path, type(cmd).__name__))
    if not cmd:
        run.fail('command for %s is empty. Give the app\'s migrator, for example "npm run migrate".' % run.path)
    if any('\x00' in c for c in cmd):
        run.fail('command for %s contains a NUL byte, which no program argument can hold. Fix the command.' % run.path)
    return cmd


def run_command(run):
    module, p, result = run.module, run.p, run.result
    path = run.path
    _validate(run)
    env = {}
    for key, value in (p['environment'] or {}).items():
        k, v = str(key), '' if value is None else str(value)
        if v:
            module.no_log_values.add(v)
        if not k or '=' in k or '\x00' in k or '\x00' in v:
            run.fail('environment for the migrator of %s has an unusable variable %r (a name must be non-empty without "=" or NUL, '
                     'a value without NUL). Fix the environment option.' % (path, k))
        env[k] = v
    cmd = _command(run)
    if p['chdir'] and not os.path.isdir(p['chdir']):
        run.fail('chdir %s for the migrator of %s is not an existing folder.' % (p['chdir'], path))
    try:
        rx = re.compile(p['uptodate_regex'])
    except re.error as e:
        run.fail('uptodate_regex %r is not a valid regular expression: %s.' % (p['uptodate_regex'], e))
    if module.check_mode:
        module.warn('sqlite_migrate does not run the command %s in check mode; pending migrations are unknown.' % ' '.join(cmd))
        run.done()
    if p['backup']:
        result['backup_file'] = _backup(run)
    rc, out, err = module.run_command(cmd, cwd=p['chdir'], environ_update=env)
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        run.fail('The migrator %s for %s failed with exit code %d: %s. The backup (if any) is %s.'
                 % (' '.join(cmd), path, rc, (err or out).strip()[-2000:], result['backup_file']))
    if rx.search(out) or rx.search(err):
        if result['backup_file']:
            try:
                os.unlink(result['backup_file'])
                result['backup_file'] = None
            except OSError as e:
                module.warn('The backup %s was not needed but could not be removed: %s.' % (result['backup_file'], e.strerror or e))
        run.done()
    result['changed'] = True
    run.done()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            migrations_dir=dict(type='path'),
            table=dict(type='str', default='schema_migrations'),
            target=dict(type='int'),
            baseline=dict(type='int'),
            repair=dict(type='bool', default=False),
            foreign_keys=dict(type='str', default='enforce', choices=['enforce', 'off']),
            command=dict(type='raw'),
            chdir=dict(type='path'),
            environment=dict(type='dict', no_log=True),
            uptodate_regex=dict(type='str', default='No pending migrations'),
            backup=dict(type='bool', default=False),
            busy_timeout=dict(type='int', default=5000),
            quiesce=dict(type='list', elements='str', default=[]),
            pm2_home=dict(type='str', default=''),
            pm2_executable=dict(type='str', default='pm2'),
            quiesce_timeout=dict(type='int', default=30),
            policy=dict(type='str', default='any', choices=['any', 'expand', 'contract']),
            expect_columns=dict(type='dict', default={}),
            queries=dict(type='dict', default={}),
        ),
        mutually_exclusive=[('migrations_dir', 'command')],
        required_one_of=[('migrations_dir', 'command')],
        supports_check_mode=True,
    )
    run = Run(module)
    try:
        if module.params['command'] is not None:
            run_command(run)
        else:
            run_files(run)
    except (sqlite3.Error, OSError, ValueError, OverflowError, UnicodeError) as e:
        # the last line of defence: a message, never a traceback (tests treat reaching it as a bug)
        run.fail('sqlite_migrate stopped on %s with an unexpected %s: %s. A transaction in progress was rolled back; '
                 'check the database with sqlite_info and report this.' % (run.path, type(e).__name__, M.sql_error(e)))


if __name__ == '__main__':
    main()
