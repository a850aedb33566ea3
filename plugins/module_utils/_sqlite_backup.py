# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the sqlite_backup module (plugins/modules/sqlite_backup.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic as A
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _snapshot as SN
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _trust as T
from ansible_collections.bluegreen.dbfix.plugins.module_utils._openfiles import describe, holders

# owner and group differ only in where a name is looked up and what the error calls it
_ID_LOOKUP = {'owner': ('user', lambda n: pwd.getpwnam(n).pw_uid), 'group': ('group', lambda n: grp.getgrnam(n).gr_gid)}


def _resolve_id(module, option, name, default):
    """O(owner)/O(group) ``name`` as a numeric id, or looked up by name; ``default`` when unset."""
    if name is None:
        return default
    kind, lookup = _ID_LOOKUP[option]
    try:
        num = int(name)
    except ValueError:
        num = None
    if num is not None:
        if not 0 <= num < 2 ** 32 - 1:
            module.fail_json(msg='%s %r is not a valid numeric %s id; nothing was written. Use an existing %s.' % (option, name, kind, kind))
        return num
    try:
        return lookup(name)
    except (KeyError, ValueError, UnicodeError):  # ValueError: a NUL byte in the name
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
        if not 0 <= mode <= 0o7777:
            module.fail_json(msg='mode %r is not a valid mode (0 to 07777); nothing was written.' % (requested,))
    else:
        try:
            mode = int(str(requested), 8)
            if not 0 <= mode <= 0o7777:
                raise ValueError('mode out of range 0..07777')
        except ValueError:
            try:
                mode = module._symbolic_mode_to_octal(st, str(requested))
            except Exception as e:  # ValueError, and whatever else a malformed symbolic mode raises
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
        A.fsync_dir(dest_dir)
    return pruned


def do_present(module):
    p = module.params
    path = p['path']
    result = dict(changed=False, pruned=[], integrity=None, duration_ms=0, recovered=None)
    t0 = time.time()
    if p['keep'] is not None and p['keep'] < 1:
        module.fail_json(msg='keep=%d for %s: keep must be at least 1 (the new backup). Nothing was written.' % (p['keep'], path), **result)
    try:
        # owners first: nothing may open the database (or read what lies beside it) before this
        T.check_trusted(path, action='back up')
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
        # a backup folder others can write lets them swap or read the backup: the source's users only
        T.check_folder_trusted(dest_dir, T.trusted_uids(path), 'backup folder')
    except S.DbfixError as e:
        module.fail_json(msg='Cannot back up %s: %s' % (path, e.msg), **result)
    if os.path.isdir(backup_file):
        module.fail_json(msg='Cannot back up %s: %s is a directory. Choose another dest.' % (path, backup_file), **result)
    if p['dest'] and os.path.lexists(backup_file) and not os.path.isfile(backup_file):
        module.fail_json(msg='Cannot back up %s: dest %s exists and is not a regular file (%s). Choose another dest; '
                             'nothing was written.' % (path, backup_file, 'a dangling symlink' if os.path.islink(backup_file)
                                                       else 'a special file'), **result)
    # The diff is the folder's list of this database's backups: names only, never what they hold.
    listed = _listing(dest_dir, db_name, backup_file) if module._diff else set()

    def diff(added, pruned):
        after = (listed | set(os.path.basename(f) for f in added)) - set(os.path.basename(f) for f in pruned)
        _set_diff(module, result, _lines(listed), _lines(after), header='%s (backups of %s)' % (dest_dir, db_name))

    real = S.real_db_path(path)
    st = os.stat(real)
    mode = _resolve_mode(module, real, p['mode'], 'the backup')
    uid, gid = _resolve_owner(module, p['owner'], p['group'], st.st_uid, st.st_gid)
    checksum = p['checksum'] if p['checksum'] is not None else p['verify'] != 'none'

    for _attempt in range(10):
        backup_file, compare = _compare_plan(module, path, dest_dir=dest_dir, db_name=db_name, ts=ts, backup_file=backup_file)
        result['backup_file'] = backup_file
        try:
            info = _backup_once(module, path, backup_file, compare, mode=mode, uid=uid, gid=gid, checksum=checksum,
                                result=result, t0=t0, diff=diff)
        except FileExistsError:
            if p['dest']:
                module.fail_json(msg='Cannot back up %s: %s appeared while the backup was written (another run?). It was '
                                     'not replaced; pass another dest.' % (path, backup_file), **result)
            continue  # another run took the name meanwhile: the next free one
        except S.DbfixError as e:
            module.fail_json(msg=e.msg, **result)
        break
    else:
        module.fail_json(msg='Cannot back up %s: every backup name for timestamp %s was taken while trying; retry.' % (path, ts), **result)
    if info.get('same'):
        # nothing new to write; retention still applies (keep may have been lowered)
        same = info['same']
        pruned = _prune_plan(dest_dir, db_name, p['keep'], same)
        if pruned and not module.check_mode:
            pruned = _prune(module, dest_dir, pruned)
        result.update(changed=bool(pruned), pruned=pruned, backup_file=same, sha256=compare[same],
                      size=os.path.getsize(same), duration_ms=int((time.time() - t0) * 1000))
        diff([], pruned)
        module.exit_json(**result)
    result.update(changed=True, size=info['size'], sha256=info['sha256'], integrity=info['integrity'],
                  method=info['method'], journal_mode=info['journal_mode'], recovered=info.get('recovered'))
    result['pruned'] = _prune(module, dest_dir, _prune_plan(dest_dir, db_name, p['keep'], backup_file))
    result['duration_ms'] = int((time.time() - t0) * 1000)
    diff([backup_file], result['pruned'])
    module.exit_json(**result)


def _compare_plan(module, path, *, dest_dir, db_name, ts, backup_file):
    """(name to write, {existing backup: sha256} to compare a fresh snapshot with).

    A timestamped name that is taken by other content moves on to ``<name>.1``, ``.2``, ...: an existing backup
    is never overwritten, however often the task is retried. A fixed O(dest) is compared with, never replaced.
    """
    p = module.params
    if p['dest']:
        compare = [backup_file] if os.path.isfile(backup_file) else []
    else:
        try:
            taken, backup_file = S.backup_candidates(dest_dir, path, ts)
        except S.DbfixError as e:
            module.fail_json(msg=e.msg)
        compare = [f for f in taken if os.path.isfile(f) and not os.path.islink(f)]
        if p['skip_unchanged']:
            newest = S.list_backups(dest_dir, db_name)
            if newest and newest[0] not in compare:
                compare.append(newest[0])
    return backup_file, dict((f, S.sha256_file(f)) for f in compare)


def _backup_once(module, path, backup_file, compare, *, mode, uid, gid, checksum, result, t0, diff):
    """One attempt: compare (when there is something to compare with, or in check mode), then write."""
    p = module.params
    shas = set(compare.values())

    def same_as(sha):
        return next((f for f, h in compare.items() if h == sha), None) if sha is not None else None

    if module.check_mode or compare:
        probe = SN.snapshot_copy(path, None, p['busy_timeout'])
        result['journal_mode'] = probe['journal_mode']
        result['recovered'] = probe['recovered']
        if same_as(probe['sha256']):
            return {'same': same_as(probe['sha256'])}
        if p['dest'] and compare and probe['sha256'] is not None:
            module.fail_json(msg='Cannot back up %s: %s already exists with different content (sha256 %s). '
                                 'Pass another dest, or remove the old file.' % (path, backup_file, compare[backup_file]), **result)
        if module.check_mode:
            result.update(changed=True, pruned=_prune_plan(os.path.dirname(backup_file), os.path.basename(path), p['keep'], backup_file),
                          duration_ms=int((time.time() - t0) * 1000))
            diff([backup_file], result['pruned'])
            module.exit_json(**result)
    found = []

    def unchanged(info):
        hit = same_as(info.get('sha256')) if shas else None
        if hit:
            found.append(hit)
            return False
        if p['dest'] and compare:
            return False  # never overwrite a fixed dest with other content
        return True

    info = SN.snapshot_copy(path, backup_file, p['busy_timeout'], mode=mode, uid=uid, gid=gid, verify=p['verify'],
                            before_commit=unchanged, checksum=checksum or bool(compare), replace=False)
    if found:
        return {'same': found[0]}
    if p['dest'] and compare:
        module.fail_json(msg='Cannot back up %s: %s already exists with different content (sha256 %s). '
                             'Pass another dest, or remove the old file.' % (path, backup_file, compare[backup_file]), **result)
    return info


def _content(path, busy_timeout):
    """(sha256, size, recovered note) of the committed content of ``path``; Nones if it cannot be read as a database.

    Read-only and creating nothing beside it (see _snapshot.read_plan): used in check mode too.
    """
    try:
        info = SN.snapshot_copy(path, None, busy_timeout)
    except S.DbfixError:
        return None, None, None
    return info['sha256'], info['size'], info['recovered']


def _state_line(sha, size):
    return 'sha256 %s size %d\n' % (sha, size)


def _check_target(module, path, result):
    """The restore target must be what we think: an SQLite file (or nothing yet), reached through trusted folders."""
    target = S.real_db_path(path)
    link = ' (symlink %s -> %s)' % (path, os.readlink(path)) if os.path.islink(path) else ''
    if os.path.lexists(path) and not os.path.exists(path):
        module.fail_json(msg='Cannot restore into %s: it is a dangling symlink (to %s). Fix the link first.' % (path, os.readlink(path)), **result)
    if os.path.lexists(target):
        try:
            st = os.stat(target)
        except OSError as e:
            module.fail_json(msg='Cannot restore into %s%s: %s. Nothing was changed.' % (path, link, e), **result)
        if stat.S_ISDIR(st.st_mode):
            module.fail_json(msg='Cannot restore into %s%s: %s is a directory. Point path at the database file; nothing was changed.'
                                 % (path, link, target), **result)
        if not stat.S_ISREG(st.st_mode):
            kind = ('a FIFO' if stat.S_ISFIFO(st.st_mode) else
                    'a device' if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 'a socket or special file')
            module.fail_json(msg='Cannot restore into %s%s: %s is %s, not an SQLite database file. Refusing to write into it; '
                                 'point path at the database file. Nothing was changed.' % (path, link, target, kind), **result)
        try:
            S.check_db_file(target, 'restore target')
        except S.DbfixError as e:
            module.fail_json(msg='Cannot restore into %s%s: %s Refusing to replace a file that is not an SQLite database; '
                                 'if it really is to be replaced, move it away first.' % (path, link, e.msg), **result)
    try:
        S.check_dest_dir(os.path.dirname(target), 'database folder')
        T.check_trusted(path, action='restore into')
    except S.DbfixError as e:
        module.fail_json(msg='Cannot restore into %s: %s' % (path, e.msg), **result)
    return target


def _check_src(module, path, src, result):
    try:
        S.check_db_file(src, 'backup')
        T.check_trusted(src, action='restore from')
    except S.DbfixError as e:
        module.fail_json(msg='Cannot restore into %s: %s' % (path, e.msg), **result)
    crash = SN.crash_state(src)
    if crash['wal']:
        module.fail_json(msg='Cannot restore %s into %s: the backup has a non-empty %s-wal beside it (%d bytes), so the file alone is '
                             'not its full content. Make a self-contained copy first (bluegreen.dbfix.sqlite_backup with '
                             'path=%s), or pick another backup. Nothing was changed.' % (src, path, src, crash['wal'], src), **result)
    if crash['journal_hot']:
        module.fail_json(msg='Cannot restore %s into %s: the backup has a hot rollback journal %s-journal (%d bytes) beside it, so '
                             'the file alone is torn. Make a self-contained copy first (bluegreen.dbfix.sqlite_backup with '
                             'path=%s), or pick another backup. Nothing was changed.' % (src, path, src, crash['journal'], src), **result)


def _verify(module, path, src, file, result):
    """quick_check at least: a restore never installs a file SQLite cannot read, whatever O(verify) says."""
    level = 'quick' if module.params['verify'] == 'none' else module.params['verify']
    try:
        result['integrity'] = S.verify_file(file, level)
    except Exception as e:  # sqlite3.DatabaseError on a malformed file
        result['integrity'] = [str(e)]
    if result['integrity'] != 'ok':
        module.fail_json(msg='Backup %s failed %s (%s); nothing was restored into %s. Choose another backup.'
                             % (src, 'quick_check' if level == 'quick' else 'integrity_check',
                                S.summarize(result['integrity']), path), **result)


def do_restored(module):
    p = module.params
    path, src = p['path'], p['src']
    result = dict(changed=False, pruned=[], integrity=None, duration_ms=0, aside_file=None, recovered=None)
    t0 = time.time()
    if not src:
        module.fail_json(msg='state=restored for %s needs src (the backup file to restore).' % path, **result)
    _check_src(module, path, src, result)
    _verify(module, path, src, src, result)
    target = _check_target(module, path, result)
    target_dir = os.path.dirname(target)
    found, _dummy = holders([target, target + '-wal', target + '-shm', target + '-journal'])
    if found:
        module.fail_json(msg='Refusing to restore into %s: %s. Stop those processes (e.g. pm2 stop) first; nothing was changed.'
                             % (path, describe(found)), holders=found, **result)
    src_sha = S.sha256_file(src)
    exists = os.path.exists(target)
    now_sha, now_size, recovered = _content(target, p['busy_timeout']) if exists else (None, None, None)
    crash = SN.crash_state(target) if exists else None
    result['recovered'] = recovered
    before = None
    if module._diff:
        if not exists:
            before = 'absent\n'
        elif now_sha is None:
            # not readable as a database (a damaged one is what a restore is for): its file is what gets replaced
            before = _state_line(S.sha256_file(target), os.path.getsize(target))
        else:
            before = _state_line(now_sha, now_size)

    def diff():
        _set_diff(module, result, before, _state_line(src_sha, os.path.getsize(src)), header=path, after_header=src)

    if exists and now_sha == src_sha and not (crash['journal_hot'] or crash['wal']):
        result.update(sha256=src_sha, size=os.path.getsize(src), duration_ms=int((time.time() - t0) * 1000))
        diff()
        module.exit_json(**result)
    ts = _timestamp(module)
    aside = (target + '.before-restore.' + ts) if exists else None
    if aside and any(os.path.lexists(aside + x) for x in ('', '.old-wal', '.old-journal')):
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

    out = A.AtomicFile(target, mode, uid, gid)
    moved = []
    try:
        with open(src, 'rb') as f:
            while True:
                b = f.read(S.CHUNK)
                if not b:
                    break
                out.write(b)
        os.fsync(out.fd)
        if S.sha256_file(out.tmp) != src_sha:
            module.fail_json(msg='Backup %s changed while it was copied; nothing was restored into %s. Retry.' % (src, path), **result)
        _verify(module, path, src, out.tmp, result)  # what is installed is what was checked
        if exists:
            _set_aside(target, aside, p['busy_timeout'], crash, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
            moved = _move_side_files(target, aside)
        out.commit()
    except (OSError, S.DbfixError) as e:
        out.abort()
        for frm, to in reversed(moved):
            os.rename(to, frm)
        module.fail_json(msg='Restoring %s into %s failed: %s. The database was left as it was%s.'
                             % (src, path, getattr(e, 'msg', e), (' (a self-contained copy of it is at %s)' % aside)
                                if aside and os.path.exists(aside) else ''), **result)
    finally:
        out.abort()
    A.fsync_dir(target_dir)
    if moved:
        first = (result['recovered'] + '. Then ') if result['recovered'] else ''
        result['recovered'] = '%s%s was kept as %s.' % (first, ' and '.join(m[0] for m in moved), ' and '.join(m[1] for m in moved))
    result['duration_ms'] = int((time.time() - t0) * 1000)
    diff()
    module.exit_json(**result)


def _set_aside(target, aside, busy_timeout, crash, *, mode, uid, gid):
    """Keep the current database's committed state at ``aside`` as a self-contained file, never replacing one.

    With nothing beside it (no WAL frames, no hot journal) the file itself is that state: a hard link. Otherwise a
    consistent snapshot copy, which reads the WAL's committed frames or rolls a hot journal back in a private copy:
    the committed rows of a crashed app are in the aside file, and its journal/WAL are kept too (_move_side_files).
    """
    if not crash['wal'] and not crash['journal_hot']:
        os.link(target, aside)
        return
    SN.snapshot_copy(target, aside, busy_timeout, mode=mode, uid=uid, gid=gid, verify='quick', replace=False)


def _move_side_files(target, aside):
    """Move the replaced database's -wal/-journal out of the way under names SQLite never reads (applied to the
    restored file they would corrupt it); empty ones and the -shm (no data) are removed. Returns the moves done."""
    moved = []
    for suffix in ('-wal', '-journal'):
        side = target + suffix
        try:
            st = os.lstat(side)
        except FileNotFoundError:
            continue
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        if size:
            dst = aside + '.old' + suffix
            os.rename(side, dst)
            moved.append((side, dst))
        elif size == 0:
            os.unlink(side)
        else:
            raise S.DbfixError('%s is not a regular file; move it away and retry' % side)
    if os.path.lexists(target + '-shm'):
        os.unlink(target + '-shm')
    return moved


MODULE_KWARGS = dict(
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


def run(module):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS."""
    bt = module.params['busy_timeout']
    if not 0 <= bt <= 24 * 3600 * 1000:
        module.fail_json(msg='busy_timeout=%d ms is out of range (0 to 86400000, one day); nothing was done.' % bt)
    if module.params['state'] == 'restored':
        do_restored(module)
    else:
        do_present(module)
