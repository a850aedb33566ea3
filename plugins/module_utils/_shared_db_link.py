# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the shared_db_link module (plugins/modules/shared_db_link.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import os
import stat
import traceback
from functools import partial

try:
    import sqlite3
    HAS_SQLITE3 = True
    SQLITE3_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - Python built without sqlite3
    HAS_SQLITE3 = False
    SQLITE3_IMPORT_ERROR = traceback.format_exc()

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError
from ansible_collections.bluegreen.dbfix.plugins.module_utils._fsinfo import fs_info
from ansible_collections.bluegreen.dbfix.plugins.module_utils._openfiles import describe, holders
from ansible_collections.bluegreen.dbfix.plugins.module_utils._sharedfile import (
    SIDECARS,
    can_access,
    clone_file,
    describe_path,
    fsync_dir,
    group_name,
    groups_of,
    human,
    lstat_or_none,
    mode_text,
    replace_with_symlink,
    same_file,
    user_name,
    who,
)
from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite import SQLITE_MAGIC, checkpoint, uri_for
from ansible_collections.bluegreen.dbfix.plugins.module_utils._trust import untrusted_reasons


class SharedDbLink:

    def __init__(self, module):
        self.module = module
        p = module.params
        self.path = p['path']
        self.shared = p['shared']
        self.state = p['state']
        self.suffix = p['old_suffix']
        self.force = p['force']
        self.old = (self.path or '') + (self.suffix or '')
        self.result = {
            'changed': False,
            'previous': None,
            'target': None,
            'old_file': self.old,
            'checkpointed': False,
            'moved': [],
            'old_method': None,
        }

    # -- checks -----------------------------------------------------------------

    def check_params(self):
        for name, value in (('path', self.path), ('shared', self.shared), ('old_suffix', self.suffix)):
            if value is not None and '\0' in value:
                raise DbfixError('%s %r holds a NUL character, which no file name can; give the real %s. Nothing was '
                                 'changed.' % (name, value, 'path of the database' if name != 'old_suffix' else 'suffix'))
        if not os.path.isabs(self.path):
            raise DbfixError('path %r is not absolute; give the full path of the app\'s database file '
                             '(a relative path would depend on the remote working directory).' % self.path)
        if self.shared is not None and not os.path.isabs(self.shared):
            raise DbfixError('shared %r (for path %s) is not absolute; the link must hold the absolute path of the shared '
                             'database, give it as such.' % (self.shared, self.path))
        self.path = os.path.normpath(self.path)
        if self.shared is not None:
            self.shared = os.path.normpath(self.shared)
        suffix = self.suffix
        if not suffix or '/' in suffix or '\0' in suffix or suffix in SIDECARS:
            raise DbfixError('old_suffix %r cannot be used for %s: it must be non-empty, contain no "/", and not be one of '
                             'SQLite\'s own suffixes %s (SQLite would take the kept file for a journal). '
                             'Use the default ".OLD" or another plain suffix.' % (suffix, self.path, ', '.join(SIDECARS)))
        self.old = self.path + suffix
        self.result['old_file'] = self.old
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise DbfixError('the folder of path %s (%s) does not exist; check the path (the app\'s database file), '
                             'nothing was changed.' % (self.path, parent))

    def check_shared(self):
        """``shared`` exists, is a regular file with the SQLite header, and opens read-only."""
        shared = self.shared
        try:
            st = os.stat(shared)
        except FileNotFoundError:
            raise DbfixError('shared database %s does not exist (needed to link %s); create or seed it first '
                             '(for example with bluegreen.dbfix.sqlite_backup), nothing was changed.' % (shared, self.path)) from None
        except OSError as e:
            raise DbfixError('shared database %s cannot be inspected (%s), needed to link %s; fix its permissions or path.'
                             % (shared, e.strerror, self.path)) from e
        if not stat.S_ISREG(st.st_mode):
            raise DbfixError('shared %s is not a regular file (found a %s); point shared at the shared SQLite database '
                             'file, nothing was changed for %s.'
                             % (shared, 'directory' if stat.S_ISDIR(st.st_mode) else 'special file', self.path))
        try:
            with open(shared, 'rb') as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as e:
            raise DbfixError('shared database %s cannot be read (%s); fix its permissions, nothing was changed for %s.'
                             % (shared, e.strerror, self.path)) from e
        if head != SQLITE_MAGIC:
            raise DbfixError('shared %s is not a SQLite database (its first bytes are %r, expected %r); point shared at the '
                             'shared SQLite file or seed it first, nothing was changed for %s.'
                             % (shared, head[:16], SQLITE_MAGIC, self.path))
        # Without a -wal beside it nobody is using the file in WAL mode; open it
        # immutable so a read-only connection leaves no empty -wal/-shm behind.
        busy = any(os.path.lexists(shared + s) for s in ('-wal', '-shm'))
        try:
            conn = sqlite3.connect(uri_for(shared, 'ro', immutable=not busy), uri=True, timeout=5)
            try:
                conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise DbfixError('shared %s has a SQLite header but does not open read-only (%s); check it with '
                             '"sqlite3 %s \'PRAGMA integrity_check\'" or seed it again, nothing was changed for %s.'
                             % (shared, e, shared, self.path)) from e

    def check_not_self(self):
        if os.path.lexists(self.path) and not os.path.islink(self.path) and same_file(self.path, self.shared):
            raise DbfixError('shared %s is the same file as path %s; a link to itself would lose the database. '
                             'Give the app\'s own file as path and the shared database as shared.' % (self.shared, self.path))
        if same_file(self.old, self.shared):
            raise DbfixError('shared %s is the same file as %s, the name path %s would be kept under; '
                             'use another shared database or old_suffix.' % (self.shared, self.old, self.path))

    def check_filesystem(self):
        real = os.path.realpath(self.shared)
        for where in (real, os.path.dirname(real)):
            try:
                info = fs_info(where)
            except OSError as e:
                self.module.warn('Could not read /proc/self/mountinfo (%s); %s was not checked for a network filesystem.'
                                 % (e.strerror, where))
                return
            if info['fstype'] is None:
                self.module.warn('Could not find the filesystem of %s in /proc/self/mountinfo; '
                                 'not checked for a network filesystem.' % where)
                continue
            if info['network']:
                raise DbfixError(
                    'shared database %s (for %s) is on a network filesystem: %s lies on %s, type %s, from %s. '
                    'SQLite locking and the WAL index (-shm, used through mmap) only work when every process '
                    'goes through one local kernel; put the shared database on a local filesystem that both '
                    'apps reach (a local disk or a bind mount of one), nothing was changed.'
                    % (self.shared, self.path, where, info['mount_point'], info['fstype'], info['source']))

    def app_user(self):
        """(uid, gid, how) of the app's user, derived from ``path``."""
        st = lstat_or_none(self.path)
        if st is not None and stat.S_ISREG(st.st_mode):
            return st.st_uid, st.st_gid, 'owner of %s' % self.path
        if st is not None and stat.S_ISLNK(st.st_mode):
            return st.st_uid, st.st_gid, 'owner of the link %s' % self.path
        parent = os.path.dirname(self.path)
        st = os.stat(parent)
        return st.st_uid, st.st_gid, 'owner of %s (path does not exist)' % parent

    def check_app_user(self):
        uid, gid, how = self.app_user()
        if uid == 0:
            return
        groups = groups_of(uid, gid)
        user = '%s (uid %d, %s)' % (user_name(uid), uid, how)
        real = os.path.realpath(self.shared)
        folder = os.path.dirname(real)
        fst = os.stat(folder)
        if not can_access(uid, groups, fst, 2 | 1):
            raise DbfixError(
                'the app user %s cannot write the folder %s of the shared database %s (owner %s, group %s, mode %s); '
                'SQLite creates %s-wal and %s-shm there, so the app would fail on its first write. '
                'Fix: give that user write access (for example "chgrp %s %s && chmod g+rwx %s" with the user in group %s), '
                'or put the shared database in a folder the app user owns; nothing was changed for %s.'
                % (user, folder, self.shared, user_name(fst.st_uid), group_name(fst.st_gid), mode_text(fst),
                   os.path.basename(real), os.path.basename(real), group_name(gid), folder, folder, group_name(gid),
                   self.path))
        for f in [real] + [real + s for s in ('-wal', '-shm') if os.path.exists(real + s)]:
            st = os.stat(f)
            if not can_access(uid, groups, st, 4 | 2):
                raise DbfixError(
                    'the app user %s cannot read and write %s (owner %s, group %s, mode %s), part of the shared database '
                    '%s. Fix: "chown %s %s" or give its group read/write access; nothing was changed for %s.'
                    % (user, f, user_name(st.st_uid), group_name(st.st_gid), mode_text(st), self.shared,
                       user_name(uid), f, self.path))

    def check_trust(self, db, what):
        """Refuse, before SQLite opens anything, a database (``db``) that users other than root, us and the app user
        control: its folder or a parent writable or owned by them, the file itself, or a ``-wal``/``-shm``/``-journal``
        beside it that they own or that is a symlink. A ``-wal`` planted there is read by SQLite as part of the
        database (its rows would be served by the app, or merged into the kept .OLD), and a connection opened as
        root would rewrite side files. Uses lstat only (``_trust``); nothing is opened or changed."""
        uid, _gid, _how = self.app_user()
        reasons = untrusted_reasons(db, trusted={uid})
        if reasons:
            raise DbfixError('refusing to %s: %s %s is not under the control of %s alone: %s. '
                             'Nothing was opened or changed.'
                             % ('link %s to %s' % (self.path, self.shared) if self.state == 'linked'
                                else 'put %s back as %s' % (self.old, self.path),
                                what, db, 'root' if uid == 0 else 'root and the app user %s' % who(uid),
                                '; '.join(reasons)),
                             untrusted=reasons)

    def check_holders(self, files, why):
        found, unreadable = holders([f for f in files if os.path.exists(f)])
        if found:
            raise DbfixError('refusing to change %s while files are open: %s. %s; nothing was changed.'
                             % (self.path, describe(found), why), holders=found)
        if unreadable and os.geteuid() != 0:
            self.module.warn('%d processes could not be inspected for open files (not running as root); '
                             'make sure the app using %s is stopped.' % (unreadable, self.path))

    # -- acting ------------------------------------------------------------------

    def checkpoint(self, db):
        """Merge a WAL / roll back a hot journal into ``db`` so it is complete on its own."""
        had_content = (os.path.exists(db + '-wal') and os.path.getsize(db + '-wal') > 0) or os.path.exists(db + '-journal')
        try:
            busy = checkpoint(db)
        except sqlite3.Error as e:
            raise DbfixError('could not checkpoint %s before keeping it (%s): its -wal/-journal could not be merged; '
                             'check the file with "sqlite3 %s \'PRAGMA integrity_check\'". Nothing was moved.'
                             % (db, e, db), traceback=traceback.format_exc()) from e
        if busy:
            raise DbfixError('could not checkpoint %s: another connection appeared while it was being merged; stop the app '
                             'and run again. Nothing was moved.' % db)
        if had_content:
            self.result['checkpointed'] = True

    def make_symlink(self, target, owner=None):
        """Atomically make ``self.path`` a symlink to ``target`` (temp link + rename)."""
        replace_with_symlink(self.path, target, owner)

    def switch(self, doing, db, sidecars, steps):
        """The changing part of a run, put back as a whole when any of it fails; returns the sidecars left.

        ``db`` is the database file about to be moved and ``sidecars`` the SQLite suffixes found beside it; when
        there are any, ``db`` is checkpointed first so it is complete on its own. ``steps(sidecars)`` gets the
        sidecars still there after that and returns ``(action, made)`` pairs, run in order: ``made`` is the path
        ``action()`` creates, or None for the last step, the one rename that switches ``path`` (all or nothing by
        itself). If a step fails, the paths made so far are removed, newest first, so ``path`` is as it was, and the
        run fails with a message that starts with ``doing`` and says so.
        """
        made = []
        try:
            if sidecars:
                self.checkpoint(db)
                sidecars = [s for s in SIDECARS if os.path.lexists(db + s)]
            for action, creates in steps(sidecars):
                action()
                if creates is not None:
                    made.append(creates)
        except (DbfixError, OSError) as e:
            for f in reversed(made):
                try:
                    os.unlink(f)
                except OSError:
                    pass
            if isinstance(e, DbfixError):
                raise
            # A checkpoint of path itself changed its bytes (not its content): say so, it is the one thing not undone.
            merged = db == self.path and self.result['checkpointed']
            raise DbfixError('%s failed (%s: %s); the files made so far (%s) were removed again and %s is as it was%s. '
                             'Check the permissions of %s.'
                             % (doing, e.strerror, e.filename, ', '.join(made) or 'none', self.path,
                                ' (its -wal/-journal was merged into it, same content)' if merged else '',
                                os.path.dirname(self.path)),
                             traceback=traceback.format_exc()) from e
        return sidecars

    def diff(self, before, after):
        if self.module._diff:
            self.result['diff'] = {
                'before_header': self.path, 'after_header': self.path,
                'before': ''.join('%s: %s\n' % kv for kv in before),
                'after': ''.join('%s: %s\n' % kv for kv in after),
            }

    def linked(self):
        path, old, shared = self.path, self.old, self.shared
        previous = describe_path(path)
        self.result['previous'] = previous
        st = lstat_or_none(path)
        is_link = st is not None and stat.S_ISLNK(st.st_mode)
        if st is not None and not is_link and not stat.S_ISREG(st.st_mode):
            raise DbfixError('path %s is %s, not the app\'s database file or a link; check path, nothing was changed.'
                             % (path, human(previous)))
        self.check_trust(shared, 'the shared database')
        if st is not None and not is_link:
            self.check_trust(path, 'the app\'s database')
        self.check_not_self()  # before check_shared opens it: a link to itself is refused with nothing touched
        self.check_shared()
        self.check_filesystem()
        self.check_app_user()
        if is_link:
            text = os.readlink(path)
            if text == shared or same_file(path, shared):
                self.result['target'] = text
                return
            if not self.force:
                raise DbfixError('path %s is already a symlink, to %s, not to the shared database %s. If that link is '
                                 'wrong, run again with force=true to replace it (its target is not touched); '
                                 'nothing was changed.' % (path, text, shared))
        sidecars = [s for s in SIDECARS if os.path.lexists(path + s)]
        resume = False
        if not is_link and st is not None:
            if os.path.lexists(old):
                ost = os.lstat(old)
                if stat.S_ISREG(ost.st_mode) and (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
                    # An earlier run stopped between the hard link and the swap.
                    resume = True
                else:
                    raise DbfixError('%s already exists (%s, %d bytes) and is never overwritten: it would be where %s is kept. '
                                     'Compare it with %s, then move it away (or remove it) or choose another old_suffix; '
                                     'nothing was changed.' % (old, human(describe_path(old)), ost.st_size, path, path))
            for s in SIDECARS:
                if os.path.lexists(old + s) and not (resume and same_file(old + s, path + s)):
                    raise DbfixError('%s already exists and is never overwritten: %s%s would be kept there. Move it away '
                                     'or choose another old_suffix; nothing was changed for %s.' % (old + s, path, s, path))
        else:
            if st is None and os.path.lexists(old):
                raise DbfixError('path %s does not exist but %s does: this looks like an interrupted or manual change. '
                                 'Move %s back to %s (to link it) or away (to link without keeping it); nothing was changed.'
                                 % (path, old, old, path))
            sidecars_here = [path + s for s in sidecars]
            if sidecars_here:
                raise DbfixError('%s is %s but %s exist beside it: SQLite files without their database. Inspect and move '
                                 'them away; nothing was changed.' % (path, human(previous), ', '.join(sidecars_here)))
        self.check_holders([path] + [path + s for s in SIDECARS],
                           'Stop the app (for example with bluegreen.dbfix.pm2_service state=stopped) before linking: '
                           'moving a file a process has open makes it keep writing to the kept .OLD')

        keep = not is_link and st is not None  # a file to keep as .OLD (a link or nothing is just replaced)

        def moves(sidecars):
            return ['%s -> %s' % (path, old)] + ['%s -> %s' % (path + s, old + s) for s in sidecars] if keep else []

        self.result.update(changed=True, target=shared, moved=moves(sidecars))
        before = [(path, 'regular file' if keep else previous)]
        after = [(path, 'symlink -> %s' % shared)]
        if keep:
            before.append((old, 'absent' if not resume else 'regular file (same inode as %s)' % path))
            after.append((old, 'regular file (was %s)' % path))
        self.diff(before, after)
        if self.module.check_mode:
            return

        owner = (st.st_uid, st.st_gid) if st is not None else None

        def keep_old():
            self.result['old_method'] = clone_file(path, old)

        def steps(sidecars):
            self.result['moved'] = moves(sidecars)
            todo = []
            if keep:
                if resume:
                    # An earlier run made the .OLD hard link, not this one: a failure now leaves it, as it found it.
                    self.result['old_method'] = 'hardlink'
                else:
                    todo.append((keep_old, old))
                todo.extend((partial(clone_file, path + s, old + s), old + s)
                            for s in sidecars if not (resume and same_file(old + s, path + s)))
            todo.append((partial(self.make_symlink, shared, owner), None))
            return todo

        sidecars = self.switch('linking %s to %s' % (path, shared), path, sidecars, steps)
        # The link is in place; the old sidecars now live on as .OLD-*.
        leftovers = []
        for s in sidecars:
            try:
                os.unlink(path + s)
            except OSError as e:
                leftovers.append('%s (%s)' % (path + s, e.strerror))
        fsync_dir(os.path.dirname(path))
        if leftovers:
            self.module.warn('linked %s, but could not remove %s; it is a copy of the matching %s file and can be '
                             'deleted.' % (path, ', '.join(leftovers), old))

    def unlinked(self):
        path, old = self.path, self.old
        previous = describe_path(path)
        self.result['previous'] = previous
        st = lstat_or_none(path)
        if st is not None and stat.S_ISREG(st.st_mode):
            return
        if st is not None and not stat.S_ISLNK(st.st_mode):
            raise DbfixError('path %s is %s, neither a link nor the app\'s database file; check path, nothing was changed.'
                             % (path, human(previous)))
        if st is not None:
            text = os.readlink(path)
            if self.shared is not None and not (text == self.shared or same_file(path, self.shared)) and not self.force:
                raise DbfixError('path %s is a symlink to %s, not to the shared database %s; run with force=true to put %s '
                                 'back anyway (the link target is not touched), nothing was changed.'
                                 % (path, text, self.shared, old))
        ost = lstat_or_none(old)
        if ost is None:
            raise DbfixError('%s is %s but there is no %s to put back; restore the app\'s database from a backup '
                             '(bluegreen.dbfix.sqlite_backup state=restored) instead, nothing was changed.'
                             % (path, human(previous), old))
        if not stat.S_ISREG(ost.st_mode):
            raise DbfixError('%s is %s, not a regular file, so it cannot be put back as %s; inspect it, nothing was changed.'
                             % (old, human(describe_path(old)), path))
        self.check_trust(old, 'the kept database')
        sidecars = [s for s in SIDECARS if os.path.lexists(old + s)]
        for s in SIDECARS:
            if os.path.lexists(path + s):
                raise DbfixError('%s exists beside the link %s and is never overwritten; it belongs to whatever database was '
                                 'opened through the link. Stop the apps, checkpoint or move it away, then run again; '
                                 'nothing was changed.' % (path + s, path))
        self.check_holders([path] + [old] + [old + s for s in SIDECARS],
                           'Stop every app using the shared database through %s (and anything holding %s) before unlinking'
                           % (path, old))

        def moves(sidecars):
            return ['%s -> %s' % (old + s, path + s) for s in sidecars] + ['%s -> %s' % (old, path)]

        self.result.update(changed=True, target=None, moved=moves(sidecars))
        self.diff([(path, 'symlink -> %s' % previous[5:] if st is not None else 'absent'), (old, 'regular file')],
                  [(path, 'regular file (was %s)' % old), (old, 'absent')])
        if self.module.check_mode:
            return

        def steps(sidecars):
            self.result['moved'] = moves(sidecars)
            return ([(partial(clone_file, old + s, path + s), path + s) for s in sidecars]
                    + [(partial(os.replace, old, path), None)])

        sidecars = self.switch('putting %s back as %s' % (old, path), old, sidecars, steps)
        for s in sidecars:
            try:
                os.unlink(old + s)
            except OSError as e:
                self.module.warn('could not remove %s after restoring %s (%s); it is a copy and can be deleted.'
                                 % (old + s, path, e.strerror))
        fsync_dir(os.path.dirname(path))

    def run(self):
        self.check_params()
        if self.state == 'linked':
            self.linked()
        else:
            self.unlinked()
        return self.result


MODULE_KWARGS = dict(
    argument_spec=dict(
        path=dict(type='path', required=True),
        shared=dict(type='path'),
        state=dict(type='str', choices=['linked', 'unlinked'], default='linked'),
        old_suffix=dict(type='str', default='.OLD'),
        force=dict(type='bool', default=False),
    ),
    required_if=[('state', 'linked', ['shared'])],
    supports_check_mode=True,
)


def run(module):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS."""
    if not HAS_SQLITE3:  # pragma: no cover
        module.fail_json(msg=missing_required_lib('sqlite3 (Python built with SQLite support)'), exception=SQLITE3_IMPORT_ERROR,
                         path=module.params['path'])
    link = SharedDbLink(module)
    try:
        try:
            result = link.run()
        except (OSError, ValueError) as e:
            # Only the checks run outside switch(), which undoes its own failures: nothing was changed yet.
            raise DbfixError('could not inspect the files for %s (%s: %s); check that the paths exist and can be read '
                             'by this user. Nothing was changed.'
                             % (link.path, getattr(e, 'strerror', None) or type(e).__name__,
                                getattr(e, 'filename', None) or e), traceback=traceback.format_exc()) from e
    except DbfixError as e:
        result = dict(link.result)
        result.update(e.details)
        tb = result.pop('traceback', None)
        if tb:
            result['exception'] = tb
        result['changed'] = False
        module.fail_json(msg=e.msg, **result)
    module.exit_json(**result)
