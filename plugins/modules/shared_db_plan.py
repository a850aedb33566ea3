#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shared_db_plan
short_description: Decide which of two SQLite databases becomes a pair's shared database, and refuse to lose rows
version_added: "1.1.0"
description:
  - Compares the consistent copies (backups) of a blue and a green database row by row and decides which one becomes
    the shared database of the pair (the I(base)), following one rule that is written once, in Python
    (C(module_utils/_plan.py)).
  - The base loses a table of the other database when, outside O(ignore_tables), the other has rows the base lacks,
    a row with the same primary key differs, the table exists only in the other database, or it has columns only
    the other database has. Tables without a shared primary key are compared as multisets of whole rows.
  - O(base=auto) keeps the database that holds every row of the other one; blue (production) on a tie. When the
    chosen base would lose rows and O(allow_data_loss=false), the module fails with the plan in its result and a
    message listing, per table, the row counts and what differs. It never changes a file.
  - Also proves that both colors share the folder of the copies (each copy's sha256, as its own host reported it,
    must match what this host reads), refuses a shared database folder on a network filesystem, and checks that an
    existing shared database that neither app uses holds nothing the base lacks.
  - Row counts per table (and optional named read-only queries) of both databases are always returned, for the report.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  blue:
    description: The blue database's consistent copy (not the live file).
    type: dict
    required: true
    suboptions:
      path:
        description: Path of the copy on this host.
        type: path
        required: true
      sha256:
        description:
          - sha256 of the copy as the host that wrote it reported it. When given, this host must read the same bytes,
            which proves that both colors see one folder.
        type: str
  green:
    description: The green database's consistent copy; same suboptions as O(blue).
    type: dict
    required: true
    suboptions:
      path:
        description: Path of the copy on this host.
        type: path
        required: true
      sha256:
        description: sha256 of the copy as the host that wrote it reported it (see O(blue.sha256)).
        type: str
  base:
    description:
      - Which database becomes the shared one. C(auto) applies the rule above; C(blue)/C(green) force it (still refused
        when it would lose rows, unless O(allow_data_loss)).
    type: str
    choices: [auto, blue, green]
    default: auto
  allow_data_loss:
    description: Accept a base that lacks rows of the other database (they stay only in its C(.OLD) file and the backups). The plan still lists them.
    type: bool
    default: false
  ignore_tables:
    description: Bookkeeping tables whose differences do not count as data (for example migration records); the base's copy is kept.
    type: list
    elements: str
    default: []
  queries:
    description:
      - Named read-only SQL queries run on both copies, returned in RV(blue.query_results) and in the same key of RV(green).
        A query that writes or fails makes the module fail naming O(queries) and the query.
    type: dict
    default: {}
  integrity:
    description: C(PRAGMA quick_check) or C(integrity_check) of both copies before comparing them; C(none) skips it.
    type: str
    choices: [none, quick, full]
    default: quick
  shared_db:
    description:
      - The pair's shared database path. Its folder must exist and not be on a network filesystem (see O(refuse_fstypes)).
        When the file exists and O(shared_in_use=false), it must hold nothing the base lacks; RV(shared.aside) then says
        it has to be moved aside before seeding.
    type: path
  shared_in_use:
    description: Whether an app of the pair already uses O(shared_db) (its database is a link to it); then it is not compared.
    type: bool
    default: false
  refuse_fstypes:
    description:
      - Filesystem types (as in C(/proc/self/mountinfo)) the folder of O(shared_db) may not be on, in addition to the
        network filesystems the collection always refuses (NFS, SMB, sshfs, 9p, virtiofs, Ceph, ...).
    type: list
    elements: str
    default: []
  busy_timeout:
    description: Milliseconds SQLite waits for a lock.
    type: int
    default: 5000
  apps:
    description:
      - >-
        The pm2 app of each color, for the WAL-reset preflight (issue 14): before two apps share one file, the SQLite
        library each app's process tree really maps (from C(/proc/PID/maps), a shared libsqlite3 or an addon such as
        better-sqlite3 with SQLite linked in) is checked against the WAL-reset bug (SQLite 3.7.0 to 3.51.2, fixed in
        3.51.3, backports 3.50.7 and 3.44.6; U(https://sqlite.org/wal.html#walresetbug)).
      - >-
        When the database is in WAL mode (a copy's header says so, or an app holds a C(-wal) file) and an app's SQLite is
        affected, the module fails naming the app, its pid, the library and its version and what to upgrade, unless
        O(allow_wal_reset_bug=true). A rollback-journal database cannot hit the bug; an app that is not running or has
        no SQLite mapped yet (it loads it lazily) is reported with a warning, not refused.
      - Empty (the default) skips the preflight.
    type: dict
    default: {}
    suboptions:
      blue:
        description: The blue app.
        type: dict
        suboptions:
          name:
            description: pm2 process name.
            type: str
            required: true
          pm2_home:
            description: C(PM2_HOME) of its daemon; empty means C($PM2_HOME) or C(~/.pm2).
            type: str
            default: ''
          executable:
            description: The pm2 executable.
            type: str
            default: pm2
      green:
        description: The green app (same suboptions as O(apps.blue)).
        type: dict
        suboptions:
          name:
            description: pm2 process name.
            type: str
            required: true
          pm2_home:
            description: C(PM2_HOME) of its daemon; empty means C($PM2_HOME) or C(~/.pm2).
            type: str
            default: ''
          executable:
            description: The pm2 executable.
            type: str
            default: pm2
  allow_wal_reset_bug:
    description:
      - Share the database even though an app's SQLite has the WAL-reset bug (see O(apps)); the result and a warning
        still say which app should be upgraded.
    type: bool
    default: false
seealso:
  - module: bluegreen.dbfix.sqlite_info
  - module: bluegreen.dbfix.shared_db_switch
"""

EXAMPLES = r"""
- name: Choose the base of the pair from the two phase 2 backups
  bluegreen.dbfix.shared_db_plan:
    blue:
      path: /srv/shared/timetracking-blue.database.db.backup.20260101_120000
      sha256: "{{ blue_backup.sha256 }}"
    green:
      path: /srv/shared/timetracking-green.database.db.backup.20260101_120000
      sha256: "{{ green_backup.sha256 }}"
    ignore_tables: [schema_migrations]
    shared_db: /srv/shared/database-shared.db
  register: analysis

- name: Use the answer
  ansible.builtin.debug:
    msg: "Base {{ analysis.plan.base }}: {{ analysis.plan.why }}"
"""

RETURN = r"""
sqlite_check:
  description:
    - The WAL-reset preflight (see O(apps)) per color, and whether the database is in WAL mode.
  returned: when O(apps) is given
  type: dict
  sample:
    wal: true
    blue:
      name: timetracking-blue
      pid: 4242
      affected: false
      state: ok
      libraries: [{pid: 4242, path: /srv/app/better_sqlite3.node, version: 3.53.2, affected: false, kind: static, deleted: false}]
plan:
  description: The decision (also returned when the module fails because the plan is refused).
  returned: when both copies could be compared
  type: dict
  contains:
    base:
      description: C(blue) or C(green).
      type: str
    requested_base:
      description: The O(base) option.
      type: str
    blue_holds_all:
      description: Blue holds every row of green (outside O(ignore_tables)).
      type: bool
    green_holds_all:
      description: Green holds every row of blue.
      type: bool
    identical:
      description: Both hold the same rows.
      type: bool
    loss:
      description: "Tables that would be lost with each base: C({blue: [...], green: [...]})."
      type: dict
    lost_tables:
      description: Tables the chosen base lacks rows of.
      type: list
      elements: str
    lossless:
      description: The chosen base holds every row of the other database.
      type: bool
    allow_data_loss:
      description: The O(allow_data_loss) option.
      type: bool
    refused:
      description: The base would lose rows and O(allow_data_loss=false); the module failed.
      type: bool
    why:
      description: One sentence saying why this base was chosen and what it costs.
      type: str
    size_rule_pick:
      description: What "the bigger file wins" (the manual fix's rule) would have picked.
      type: str
    sizes:
      description: File sizes in bytes of the blue and green copies.
      type: dict
    ignored_tables:
      description: The O(ignore_tables) option, sorted.
      type: list
      elements: str
    tables:
      description: Per common table C(rows_here)/C(rows_there) (blue/green), C(only_here)/C(only_there), C(differ), C(primary_key).
      type: dict
    tables_only_blue:
      description: Tables only in blue.
      type: list
      elements: str
    tables_only_green:
      description: Tables only in green.
      type: list
      elements: str
    columns_only_blue:
      description: Per table, columns only blue has.
      type: dict
    columns_only_green:
      description: Per table, columns only green has.
      type: dict
blue:
  description: Facts of the blue copy.
  returned: when it could be read
  type: dict
  contains:
    path:
      description: The copy.
      type: str
    size:
      description: Size in bytes.
      type: int
    tables:
      description: Row count per table (table name to rows).
      type: dict
    query_results:
      description: Rows of each O(queries) entry.
      type: dict
    integrity:
      description: Result of the integrity check (C(ok)), or null with O(integrity=none).
      type: str
green:
  description: Facts of the green copy; same keys as RV(blue).
  returned: when it could be read
  type: dict
shared:
  description: What was found at O(shared_db).
  returned: when O(shared_db) is set
  type: dict
  contains:
    path:
      description: O(shared_db).
      type: str
    exists:
      description: Whether the file exists.
      type: bool
    filesystem:
      description: Filesystem type of its folder.
      type: str
    aside:
      description: It exists, no app uses it, and it holds nothing the base lacks; it must be moved aside before seeding.
      type: bool
    lost_tables:
      description: Tables of the existing, unused shared database with rows the base lacks.
      type: list
      elements: str
"""

import os
import sqlite3
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _fsinfo, _live_write, _openfiles, _plan
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_compare as C
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V


class PlanError(S.DbfixError):
    pass


def open_ro(path, busy_timeout):
    try:
        conn = S.connect(S.real_db_path(path), busy_timeout, mode='ro')
        conn.execute('PRAGMA query_only=1')
    except sqlite3.Error as e:
        raise PlanError('Cannot open %s read-only: SQLite says "%s".' % (path, e)) from e
    return conn


def facts(path, p, color):
    conn = open_ro(path, p['busy_timeout'])
    try:
        conn.execute('BEGIN')
        out = {'path': path, 'size': os.path.getsize(S.real_db_path(path)), 'integrity': None}
        try:
            out['tables'] = dict((t, f['rows']) for t, f in C.tables_facts(conn).items())
        except sqlite3.DatabaseError as e:
            raise PlanError('The %s copy %s cannot be read: SQLite says "%s"; the copy is damaged. Nothing was changed.' % (color, path, e)) from e
        try:
            out['query_results'] = C.run_queries(conn, p['queries'])
        except ValueError as e:
            name, reason = e.args
            raise PlanError('dbfix_phase2_queries (option queries) entry %r failed on the %s copy %s: %s. Fix or remove that query; '
                            'nothing was changed.' % (name, color, path, reason)) from e
        if p['integrity'] != 'none':
            try:
                res = S.integrity(conn, p['integrity'])
            except sqlite3.DatabaseError as e:
                res = [str(e)]
            out['integrity'] = res
            if res != 'ok':
                raise PlanError('The %s copy %s failed its integrity check: %s. Nothing was changed; check the live database.'
                                % (color, path, S.summarize(res)))
        conn.execute('COMMIT')
        return out
    finally:
        conn.close()


def compare(path, other, busy_timeout):
    conn = open_ro(path, busy_timeout)
    try:
        # ATTACH by URI (read-only) directly: the copies are closed files written by sqlite_backup.
        conn.execute('ATTACH DATABASE ? AS other', (S.uri_for(S.real_db_path(other), 'ro'),))
        conn.execute('BEGIN')
        res = C.compare(conn, other)
        conn.execute('COMMIT')
        return res
    except sqlite3.DatabaseError as e:
        raise PlanError('Comparing %s with %s failed: SQLite says "%s". Nothing was changed.' % (path, other, e)) from e
    finally:
        conn.close()


def check_copy(side, color):
    try:
        S.check_db_file(side['path'], 'the %s copy' % color)
    except S.DbfixError as e:
        raise PlanError(e.msg + (' The %s host wrote it a moment ago: if this host cannot see it, the two colors do not share '
                                 'that folder (dbfix_phase2_backup_dir), so they cannot share one SQLite file there.' % color)) from e
    if side.get('sha256'):
        got = S.sha256_file(side['path'])
        if got != side['sha256']:
            raise PlanError('The %s copy %s reads here with sha256 %s, but the %s host wrote %s: the two colors do not see the same '
                            'folder (or it changed since). They cannot share one SQLite file there; mount one local folder into '
                            'both and run again. Nothing was changed.' % (color, side['path'], got, color, side['sha256']))


def check_shared_dir(p):
    folder = os.path.dirname(p['shared_db'])
    if not os.path.isdir(folder):
        raise PlanError('%s (folder of the shared database %s) does not exist. Create it (writable by the app user: SQLite puts '
                        '-wal/-shm files beside the database) and run again. Nothing was changed.' % (folder, p['shared_db']))
    info = _fsinfo.fs_info(folder)
    fstype = info['fstype'] or ''
    if info['network'] or fstype in p['refuse_fstypes']:
        raise PlanError('%s is on a %s filesystem. SQLite\'s locking and WAL need every app on one local kernel; a network '
                        'filesystem corrupts a shared database. Put the shared database (dbfix_shared_db) on a local filesystem '
                        'both apps see. Nothing was changed.' % (folder, fstype))
    return fstype


def sqlite_preflight(module, p):
    """The WAL-reset check of each color's app process (issue 14); returns the result entry, fails on a refusal."""
    check = {'wal': False}
    for color in ('blue', 'green'):
        try:
            with open(p[color]['path'], 'rb') as f:
                head = f.read(20)
            check['wal'] = check['wal'] or (len(head) == 20 and (head[18] == 2 or head[19] == 2))
        except OSError:
            pass
    bad, warn = [], []
    for color in ('blue', 'green'):
        app = (p['apps'] or {}).get(color)
        if not app:
            continue
        entry = {'name': app['name'], 'pid': None, 'libraries': [], 'affected': False, 'state': 'ok'}
        check[color] = entry
        try:
            entry['pid'], entry['libraries'] = _live_write.app_sqlite(module, app)
        except RuntimeError as e:
            module.fail_json(msg='SQLite preflight: cannot ask pm2 about %s app %s: %s. Nothing was changed.' % (color, app['name'], e))
        if entry['pid'] is None:
            entry['state'] = 'not running'
            warn.append('%s app %s is not running, so its SQLite could not be checked for the WAL-reset bug' % (color, app['name']))
            continue
        files = _openfiles.open_files(_openfiles.children(entry['pid']))[0]
        check['wal'] = check['wal'] or any(f['path'].endswith('-wal') for f in files)
        if not entry['libraries']:
            entry['state'] = 'unknown'
            warn.append('%s app %s (pid %s) maps no SQLite library yet (loaded lazily?); its version could not be checked for '
                        'the WAL-reset bug' % (color, app['name'], entry['pid']))
            continue
        for lib in entry['libraries']:
            if lib['affected'] or lib['version'] is None:
                entry['affected'] = entry['affected'] or bool(lib['affected'])
                what = ('%s app %s (pid %s) uses %s: %s' % (color, app['name'], lib['pid'], lib['path'], V.verdict(lib['version']))
                        if lib['affected'] else '%s app %s (pid %s) maps %s, whose SQLite version could not be read'
                        % (color, app['name'], lib['pid'], lib['path']))
                (bad if lib['affected'] else warn).append(what)
        if entry['affected']:
            entry['state'] = 'affected'
    for w in warn:
        module.warn(w)
    if bad and check['wal']:
        if not p['allow_wal_reset_bug']:
            module.fail_json(msg='Refusing to let the pair share one WAL database: %s. Two processes writing and checkpointing one WAL '
                                 'file is exactly the WAL-reset race. Upgrade the SQLite of that app (for Node: a better-sqlite3 '
                                 'release bundling SQLite >= 3.51.3; for a system library: the distribution\'s fixed libsqlite3), '
                                 'or set allow_wal_reset_bug=true (dbfix_phase2_allow_wal_reset_bug) to accept the risk. Nothing '
                                 'was changed.' % '; '.join(bad), sqlite_check=check)
        module.warn('Sharing a WAL database although: %s (allow_wal_reset_bug=true).' % '; '.join(bad))
    elif bad:
        check['note'] = 'the database is not in WAL mode, so the WAL-reset bug cannot happen while it stays so'
    return check


def run(module):
    p = module.params
    result = dict(changed=False)
    try:
        check_copy(p['blue'], 'blue')
        check_copy(p['green'], 'green')
        if p['apps']:
            result['sqlite_check'] = sqlite_preflight(module, p)
        for name, sql in p['queries'].items():
            if not isinstance(sql, str):
                raise PlanError('dbfix_phase2_queries (option queries) entry %r must be one SQL statement (a string), got %r.' % (name, sql))
        shared = None
        if p['shared_db']:
            shared = {'path': p['shared_db'], 'exists': os.path.exists(p['shared_db']), 'aside': False, 'lost_tables': [],
                      'filesystem': check_shared_dir(p)}
            result['shared'] = shared
        result['blue'] = facts(p['blue']['path'], p, 'blue')
        result['green'] = facts(p['green']['path'], p, 'green')
        cmp = compare(p['blue']['path'], p['green']['path'], p['busy_timeout'])
        plan = _plan.choose(cmp, p['base'], p['ignore_tables'], p['allow_data_loss'],
                            {'blue': result['blue']['size'], 'green': result['green']['size']})
        result['plan'] = plan
        if plan['refused']:
            module.fail_json(msg=_plan.refusal(plan, backups=(p['blue']['path'], p['green']['path'])), **result)
        if shared and shared['exists'] and not p['shared_in_use']:
            try:
                S.check_db_file(p['shared_db'], 'existing shared database')
            except S.DbfixError as e:
                raise PlanError(e.msg + ' No app of this pair uses it; move it away and run again.') from e
            base_copy = p[plan['base']]['path']
            shared['lost_tables'] = _plan.lost_if_base(compare(p['shared_db'], base_copy, p['busy_timeout']), 'there', p['ignore_tables'])
            if shared['lost_tables'] and not p['allow_data_loss']:
                module.fail_json(msg='%s already exists, no app of this pair uses it, and it holds rows the base (%s) lacks in %s. Nothing '
                                     'was changed. Move that file away (or merge its rows into the base) and run again.'
                                 % (p['shared_db'], plan['base'], ', '.join(shared['lost_tables'])), **result)
            shared['aside'] = True
    except PlanError as e:
        module.fail_json(msg=str(e), **result)
    except (OSError, sqlite3.Error) as e:
        module.fail_json(msg='Analysis failed: %s. Nothing was changed.' % e, exception=traceback.format_exc(), **result)
    module.exit_json(**result)


def main():
    side = dict(path=dict(type='path', required=True), sha256=dict(type='str'))
    app = dict(name=dict(type='str', required=True), pm2_home=dict(type='str', default=''), executable=dict(type='str', default='pm2'))
    module = AnsibleModule(
        argument_spec=dict(
            blue=dict(type='dict', required=True, options=side),
            green=dict(type='dict', required=True, options=side),
            base=dict(type='str', choices=['auto', 'blue', 'green'], default='auto'),
            allow_data_loss=dict(type='bool', default=False),
            ignore_tables=dict(type='list', elements='str', default=[]),
            queries=dict(type='dict', default={}),
            integrity=dict(type='str', choices=['none', 'quick', 'full'], default='quick'),
            shared_db=dict(type='path'),
            shared_in_use=dict(type='bool', default=False),
            refuse_fstypes=dict(type='list', elements='str', default=[]),
            busy_timeout=dict(type='int', default=5000),
            apps=dict(type='dict', default={}, options=dict(blue=dict(type='dict', options=app), green=dict(type='dict', options=app))),
            allow_wal_reset_bug=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == '__main__':
    main()
