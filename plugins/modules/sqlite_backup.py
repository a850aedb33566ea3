#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: sqlite_backup
short_description: Consistent, verified, atomic backups of a live SQLite database, and restore
version_added: 0.1.0
description:
  - Takes a consistent copy of an SQLite database while other processes keep writing to it, in WAL
    and in rollback-journal mode. The copy is one committed state, never a plain copy of a live file.
  - In WAL mode writers are not stalled while the copy runs. In rollback-journal mode writers are
    blocked for the length of the copy (a reader holds the SHARED lock); that is inherent to that mode.
  - The copy is written to a temporary file in the destination folder, fsync'ed, verified, renamed into
    place and the folder fsync'ed. On any failure (disk full included) no partial backup is left.
  - The backup file is named C(<dbname>.backup.<timestamp>), as the original shell scripts named them.
  - With O(state=restored) the backup O(src) is verified and copied into O(path); the current database is
    kept aside first. Restoring refuses while any process has the database (or its C(-wal)/C(-shm)) open.
  - If O(path) is a symlink (phase 2 reaches the shared database through symlinks), backups read the link's
    target, and a restore writes into the link's target; the link itself is never replaced. The aside file
    is placed beside the target.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.files
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Check mode takes the snapshot to prove the database is readable, returns the O(state=present) RV(backup_file)
      it would write and the files it would prune, and writes nothing.
  diff_mode:
    support: full
    details:
      - With O(state=present), the names of this database's backups in the destination folder, one per line, before and
        after (the new backup added, the ones O(keep) prunes removed). With O(dest), that file is listed too.
      - With O(state=restored), C(sha256 <hex> size <bytes>) of the database's committed content now (C(absent) if there is
        none) and of O(src).
      - Never shows rows of the database. Check mode returns the same diff.
  idempotent:
    support: partial
    details:
      - O(state=present) makes a new backup on every run unless O(skip_unchanged=true) or a fixed O(timestamp) is given.
      - O(state=restored) reports no change when O(path) already holds the content of O(src).
options:
  path:
    description:
      - The SQLite database file. May be a symlink; its target is used.
    type: path
    required: true
  dest_dir:
    description:
      - Folder that receives C(<dbname>.backup.<timestamp>). Defaults to the folder of O(path) (the folder holding
        the link, when O(path) is a symlink).
      - Mutually exclusive with O(dest).
    type: path
  dest:
    description:
      - Exact backup file to write instead of the timestamped name. Mutually exclusive with O(dest_dir).
    type: path
  timestamp:
    description:
      - Timestamp C(YYYYMMDD_HHMMSS) used in the backup name (and in the aside name when restoring).
      - Defaults to the managed host's local time now. A role can pass one stamp for both colors.
    type: str
  verify:
    description:
      - Check run on the copy before it is renamed into place (C(quick) = C(PRAGMA quick_check), C(full) =
        C(PRAGMA integrity_check)). With O(state=restored), the check run on O(src) before restoring.
    type: str
    choices: [quick, full, none]
    default: quick
  checksum:
    description:
      - Compute the sha256 of the copy (returned as RV(sha256)) while it is written.
      - Defaults to V(true) unless O(verify=none). O(verify=none) means nothing is read back, and sha256 costs
        more than the copy itself (about 0.7 s per GB here against 0.4 s for the copy, see C(docs/benchmarks.md));
        set O(checksum=true) to have both. A checksum is always computed when an existing backup is compared
        (O(skip_unchanged=true), or a backup of the same name exists).
    type: bool
  keep:
    description:
      - Keep only the newest O(keep) backups of this database (by the timestamp in their names) in the destination
        folder and delete older ones. The backup written by this run is always kept. Unset keeps everything.
    type: int
  skip_unchanged:
    description:
      - If the newest existing backup of this database holds byte-for-byte the same content as a fresh consistent
        snapshot, write nothing and report RV(backup_file) as that backup with C(changed=false).
    type: bool
    default: false
  state:
    description:
      - V(present) makes a backup. V(restored) restores O(src) into O(path).
    type: str
    choices: [present, restored]
    default: present
  src:
    description:
      - Backup file to restore, required with O(state=restored).
    type: path
  busy_timeout:
    description:
      - How long (milliseconds) to wait for a lock held by another process before failing.
    type: int
    default: 5000
notes:
  - O(mode), O(owner) and O(group) default to those of the source database. A mode that would let more users
    read the backup than can read the database is refused.
  - The fast copy reads the database file and the newest WAL frames of the pinned snapshot directly (see
    C(plugins/module_utils/_sqlite.py)); if it cannot prove consistency it falls back to SQLite's backup API
    and says so in RV(method).
seealso:
  - module: bluegreen.dbfix.sqlite_info
  - module: bluegreen.dbfix.sqlite_migrate
'''

EXAMPLES = r'''
- name: Back up the app database next to it, keep 5
  bluegreen.dbfix.sqlite_backup:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    keep: 5

- name: Back up both colors with one timestamp, only if something changed
  bluegreen.dbfix.sqlite_backup:
    path: "{{ dbfix_db_path }}"
    dest_dir: /var/backups/timetracking
    timestamp: "{{ dbfix_stamp }}"
    skip_unchanged: true
    verify: full
  register: db_backup

- name: Restore a backup (the app must be stopped)
  bluegreen.dbfix.sqlite_backup:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    src: /home/ubuntu/TimeTracking-BLUE/server/database.db.backup.20260101_120000
    state: restored
'''

RETURN = r'''
backup_file:
  description: The backup written (or that would be written in check mode, or the existing unchanged one).
  returned: state is present
  type: str
  sample: /home/ubuntu/TimeTracking-BLUE/server/database.db.backup.20260101_120000
size:
  description: Size in bytes of the backup (the restored database for O(state=restored)).
  returned: when a copy was made or compared
  type: int
  sample: 1048576
sha256:
  description:
    - sha256 of the backup file (the restored database for O(state=restored)).
    - Null when no checksum was computed (O(verify=none) without O(checksum=true)).
  returned: when a copy was made or compared
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
integrity:
  description: C(ok), or the messages of the failed check; null when O(verify=none) or nothing was copied.
  returned: always
  type: raw
  sample: ok
duration_ms:
  description: Wall time of the module's work in milliseconds.
  returned: always
  type: int
  sample: 412
pruned:
  description: Older backups deleted because of O(keep) (would be deleted, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/db/database.db.backup.20250101_000000]
method:
  description: How the copy was taken, C(snapshot-copy) (fast path) or C(backup-api) (SQLite's backup API fallback).
  returned: when a copy was made
  type: str
  sample: snapshot-copy
journal_mode:
  description: Journal mode of the source database.
  returned: state is present
  type: str
  sample: wal
aside_file:
  description: Where the database that was replaced by the restore was kept (null if O(path) did not exist).
  returned: state is restored
  type: str
  sample: /home/ubuntu/database-shared.db.before-restore.20260101_120000
'''

import grp
import os
import pwd
import stat
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils._openfiles import describe, holders

# owner and group differ only in where a name is looked up and what the error calls it
_ID_LOOKUP = {'owner': ('user', lambda n: pwd.getpwnam(n).pw_uid), 'group': ('group', lambda n: grp.getgrnam(n).gr_gid)}


def _resolve_id(module, option, name, default):
    """O(owner)/O(group) ``name`` as a numeric id, or looked up by name; ``default`` when unset."""
    if name is None:
        return default
    try:
        return int(name)
    except ValueError:
        pass
    kind, lookup = _ID_LOOKUP[option]
    try:
        return lookup(name)
    except KeyError:
        module.fail_json(msg='%s %r does not exist on this host; nothing was written. Use an existing %s.' % (option, name, kind))


def _resolve_owner(module, owner, group, default_uid, default_gid):
    return _resolve_id(module, 'owner', owner, default_uid), _resolve_id(module, 'group', group, default_gid)


def _set_diff(module, result, before, after, *, header, after_header=None):
    """Put the diff in ``result`` when the task runs in diff mode (check mode included)."""
    if module._diff:
        result['diff'] = dict(before=before, after=after, before_header=header, after_header=after_header or header)


def _lines(names):
    return ''.join('%s\n' % n for n in sorted(names))


def _listing(dest_dir, db_name, backup_file):
    """Names of this database's backups in ``dest_dir``, with ``backup_file`` (a custom O(dest)) if it is there."""
    names = set(os.path.basename(f) for f in S.list_backups(dest_dir, db_name))
    if os.path.isfile(backup_file):
        names.add(os.path.basename(backup_file))
    return names


def _resolve_mode(module, ref_path, requested, what):
    st = os.stat(ref_path)
    src_mode = stat.S_IMODE(st.st_mode)
    if requested is None:
        return src_mode
    if isinstance(requested, int):
        mode = requested
    else:
        try:
            mode = int(str(requested), 8)
        except ValueError:
            try:
                mode = module._symbolic_mode_to_octal(st, str(requested))
            except ValueError as e:
                module.fail_json(msg='mode %r is not a valid mode (%s); nothing was written.' % (requested, e))
    wider = mode & ~src_mode & 0o777
    if wider:
        module.fail_json(msg='mode %s would make %s readable/writable by more users than %s (%s); nothing was written. '
                             'Pass a mode no wider than the source, or omit mode.'
                             % (oct(mode), what, ref_path, oct(src_mode)))
    return mode


def _timestamp(module):
    ts = module.params['timestamp']
    if ts is None:
        return time.strftime('%Y%m%d_%H%M%S')
    if not S.TIMESTAMP_RE.match(ts):
        module.fail_json(msg='timestamp %r is not YYYYMMDD_HHMMSS (for example 20260101_120000); nothing was written.' % ts)
    return ts


def _prune_plan(dest_dir, db_name, keep, new_file):
    if keep is None:
        return []
    existing = [p for p in S.list_backups(dest_dir, db_name) if p != new_file]
    room = max(keep - 1, 0)
    return existing[room:]


def _prune(module, dest_dir, plan):
    pruned = []
    for old in plan:
        try:
            os.unlink(old)
            pruned.append(old)
        except OSError as e:
            module.warn('Could not prune old backup %s: %s' % (old, e))
    if pruned:
        S.fsync_dir(dest_dir)
    return pruned


def do_present(module):
    p = module.params
    path = p['path']
    result = dict(changed=False, pruned=[], integrity=None, duration_ms=0)
    t0 = time.time()
    if p['keep'] is not None and p['keep'] < 1:
        module.fail_json(msg='keep=%d for %s: keep must be at least 1 (the new backup). Nothing was written.' % (p['keep'], path), **result)
    try:
        S.check_db_file(path)
    except S.DbfixError as e:
        module.fail_json(msg=e.msg, **result)
    ts = _timestamp(module)
    db_name = os.path.basename(path)
    if p['dest']:
        backup_file = os.path.abspath(p['dest'])
        dest_dir = os.path.dirname(backup_file)
    else:
        dest_dir = os.path.abspath(p['dest_dir'] or os.path.dirname(os.path.abspath(path)))
        backup_file = os.path.join(dest_dir, S.backup_name(path, ts))
    result['backup_file'] = backup_file
    try:
        S.check_dest_dir(dest_dir)
    except S.DbfixError as e:
        module.fail_json(msg='Cannot back up %s: %s' % (path, e.msg), **result)
    if os.path.isdir(backup_file):
        module.fail_json(msg='Cannot back up %s: %s is a directory. Choose another dest.' % (path, backup_file), **result)
    # The diff is the folder's list of this database's backups: names only, never what they hold.
    listed = _listing(dest_dir, db_name, backup_file) if module._diff else set()

    def diff(added, pruned):
        after = (listed | set(os.path.basename(f) for f in added)) - set(os.path.basename(f) for f in pruned)
        _set_diff(module, result, _lines(listed), _lines(after), header='%s (backups of %s)' % (dest_dir, db_name))

    real = S.real_db_path(path)
    st = os.stat(real)
    mode = _resolve_mode(module, real, p['mode'], 'the backup')
    uid, gid = _resolve_owner(module, p['owner'], p['group'], st.st_uid, st.st_gid)

    # What to compare a fresh snapshot with (idempotence): an existing file of the same name, or the newest backup.
    compare_file = None
    if os.path.exists(backup_file):
        compare_file = backup_file
    elif p['skip_unchanged']:
        newest = S.list_backups(dest_dir, db_name)
        if newest:
            compare_file = newest[0]
    compare_sha = S.sha256_file(compare_file) if compare_file else None

    same = []

    def unchanged(info):
        if compare_file and info.get('sha256') == compare_sha:
            same.append(True)
            return False
        # never overwrite an existing backup of the same name with other content
        return compare_file != backup_file

    try:
        if module.check_mode or compare_file:
            probe = S.snapshot_copy(path, None, p['busy_timeout'])
            result['journal_mode'] = probe['journal_mode']
            if compare_file and probe['sha256'] is not None and probe['sha256'] == compare_sha:
                same.append(True)
            elif compare_file == backup_file and probe['sha256'] is not None:
                module.fail_json(msg='Cannot back up %s: %s already exists with different content (sha256 %s). '
                                     'Pass another timestamp/dest, or remove the old file.' % (path, backup_file, compare_sha), **result)
            elif module.check_mode:
                result.update(changed=True, pruned=_prune_plan(dest_dir, db_name, p['keep'], backup_file),
                              duration_ms=int((time.time() - t0) * 1000))
                diff([backup_file], result['pruned'])
                module.exit_json(**result)
        if not same:
            checksum = p['checksum'] if p['checksum'] is not None else p['verify'] != 'none'
            info = S.snapshot_copy(path, backup_file, p['busy_timeout'], mode=mode, uid=uid, gid=gid, verify=p['verify'],
                                   before_commit=unchanged, checksum=checksum or bool(compare_file))
            if compare_file == backup_file and not same:
                module.fail_json(msg='Cannot back up %s: %s already exists with different content (sha256 %s). '
                                     'Pass another timestamp/dest, or remove the old file.' % (path, backup_file, compare_sha), **result)
    except S.DbfixError as e:
        module.fail_json(msg=e.msg, **result)
    if same:
        # nothing new to write; retention still applies (keep may have been lowered)
        pruned = _prune_plan(dest_dir, db_name, p['keep'], compare_file)
        if pruned and not module.check_mode:
            pruned = _prune(module, dest_dir, pruned)
        result.update(changed=bool(pruned), pruned=pruned, backup_file=compare_file, sha256=compare_sha,
                      size=os.path.getsize(compare_file), duration_ms=int((time.time() - t0) * 1000))
        diff([], pruned)
        module.exit_json(**result)
    result.update(changed=True, size=info['size'], sha256=info['sha256'], integrity=info['integrity'],
                  method=info['method'], journal_mode=info['journal_mode'])
    result['pruned'] = _prune(module, dest_dir, _prune_plan(dest_dir, db_name, p['keep'], backup_file))
    result['duration_ms'] = int((time.time() - t0) * 1000)
    diff([backup_file], result['pruned'])
    module.exit_json(**result)


def _content(path, busy_timeout):
    """(sha256, size) of the committed content of ``path``; (None, None) if it cannot be read as a database."""
    try:
        info = S.snapshot_copy(path, None, busy_timeout)
    except S.DbfixError:
        return None, None
    return info['sha256'], info['size']


def _state_line(sha, size):
    return 'sha256 %s size %d\n' % (sha, size)


def do_restored(module):
    p = module.params
    path, src = p['path'], p['src']
    result = dict(changed=False, pruned=[], integrity=None, duration_ms=0, aside_file=None)
    t0 = time.time()
    if not src:
        module.fail_json(msg='state=restored for %s needs src (the backup file to restore).' % path, **result)
    try:
        S.check_db_file(src, 'backup')
    except S.DbfixError as e:
        module.fail_json(msg='Cannot restore into %s: %s' % (path, e.msg), **result)
    if os.path.exists(src + '-wal') and os.path.getsize(src + '-wal') > 0:
        module.fail_json(msg='Cannot restore %s into %s: the backup has a non-empty %s-wal beside it, so the file alone is not '
                             'its full content. Open it once with sqlite3 and checkpoint, or pick another backup.' % (src, path, src), **result)
    if p['verify'] != 'none':
        try:
            result['integrity'] = S.verify_file(src, p['verify'])
        except Exception as e:  # sqlite3.DatabaseError on a malformed file
            result['integrity'] = [str(e)]
        if result['integrity'] != 'ok':
            module.fail_json(msg='Backup %s failed %s (%s); nothing was restored into %s. Choose another backup.'
                                 % (src, 'quick_check' if p['verify'] == 'quick' else 'integrity_check',
                                    S.summarize(result['integrity']), path), **result)
    target = S.real_db_path(path)
    if os.path.lexists(path) and not os.path.exists(path):
        module.fail_json(msg='Cannot restore into %s: it is a dangling symlink (to %s). Fix the link first.' % (path, os.readlink(path)), **result)
    if os.path.isdir(target):
        module.fail_json(msg='Cannot restore into %s: it is a directory. Point path at the database file.' % path, **result)
    target_dir = os.path.dirname(target)
    try:
        S.check_dest_dir(target_dir, 'database folder')
    except S.DbfixError as e:
        module.fail_json(msg='Cannot restore into %s: %s' % (path, e.msg), **result)
    found, _dummy = holders([target, target + '-wal', target + '-shm', target + '-journal'])
    if found:
        module.fail_json(msg='Refusing to restore into %s: %s. Stop those processes (e.g. pm2 stop) first; nothing was changed.'
                             % (path, describe(found)), holders=found, **result)
    src_sha = S.sha256_file(src)
    exists = os.path.exists(target)
    now_sha, now_size = _content(target, p['busy_timeout']) if exists else (None, None)
    before = None
    if module._diff:
        if not exists:
            before = 'absent\n'
        elif now_sha is None:
            # not readable as a database (or only through the backup API): its file is what gets replaced
            before = _state_line(S.sha256_file(target), os.path.getsize(target))
        else:
            before = _state_line(now_sha, now_size)

    def diff():
        _set_diff(module, result, before, _state_line(src_sha, os.path.getsize(src)), header=path, after_header=src)

    if exists and now_sha == src_sha:
        result.update(sha256=src_sha, size=os.path.getsize(src), duration_ms=int((time.time() - t0) * 1000))
        diff()
        module.exit_json(**result)
    ts = _timestamp(module)
    aside = (target + '.before-restore.' + ts) if exists else None
    if aside and os.path.lexists(aside):
        module.fail_json(msg='Cannot restore into %s: the aside name %s is taken. Pass another timestamp.' % (path, aside), **result)
    ref = target if exists else src
    mode = _resolve_mode(module, ref, p['mode'], 'the restored database')
    st = os.stat(ref)
    uid, gid = _resolve_owner(module, p['owner'], p['group'], st.st_uid, st.st_gid)
    result.update(changed=True, aside_file=aside, sha256=src_sha, size=os.path.getsize(src))
    if module.check_mode:
        result['duration_ms'] = int((time.time() - t0) * 1000)
        diff()
        module.exit_json(**result)

    out = S.AtomicFile(target)
    try:
        with open(src, 'rb') as f:
            while True:
                b = f.read(S.CHUNK)
                if not b:
                    break
                out.write(b)
        os.fsync(out.fd)
        if exists:
            _set_aside(module, target, aside, p['busy_timeout'])
        out.commit(mode, uid, gid)
    except OSError as e:
        out.abort()
        module.fail_json(msg='Restoring %s into %s failed: %s. The database was left as it was%s.'
                             % (src, path, e, (' (also kept at %s)' % aside) if aside and os.path.exists(aside) else ''), **result)
    finally:
        out.abort()
    # Old -wal/-shm belong to the replaced database: applying them to the restored one would corrupt it.
    for suffix in ('-wal', '-shm', '-journal'):
        try:
            os.unlink(target + suffix)
        except OSError:
            pass
    S.fsync_dir(target_dir)
    result['duration_ms'] = int((time.time() - t0) * 1000)
    diff()
    module.exit_json(**result)


def _set_aside(module, target, aside, busy_timeout):
    """Keep the current database at ``aside`` as a self-contained file."""
    wal = target + '-wal'
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        # fold the WAL into the file first, so the aside copy is complete on its own
        try:
            conn = S.connect(target, busy_timeout)
            try:
                conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()
            finally:
                conn.close()
        except Exception as e:  # a corrupt database may refuse; keep its WAL beside the aside copy
            module.warn('Could not checkpoint %s before setting it aside (%s); its WAL is kept as %s-wal.' % (target, e, aside))
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        os.link(wal, aside + '-wal')
    os.link(target, aside)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            dest_dir=dict(type='path'),
            dest=dict(type='path'),
            timestamp=dict(type='str'),
            verify=dict(type='str', choices=['quick', 'full', 'none'], default='quick'),
            checksum=dict(type='bool'),
            keep=dict(type='int'),
            skip_unchanged=dict(type='bool', default=False),
            state=dict(type='str', choices=['present', 'restored'], default='present'),
            src=dict(type='path'),
            busy_timeout=dict(type='int', default=5000),
        ),
        mutually_exclusive=[('dest', 'dest_dir')],
        required_if=[('state', 'restored', ('src',))],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if module.params['state'] == 'restored':
        do_restored(module)
    else:
        do_present(module)


if __name__ == '__main__':
    main()
