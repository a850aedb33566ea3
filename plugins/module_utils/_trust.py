# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Is a database (and what lies beside it) controlled only by users we trust?  Checked *before* SQLite opens it.

Why before: SQLite reads a ``-wal`` or hot ``-journal`` it finds beside the database as part of the database, so
a file another local user planted there injects rows; and a connection opened as root creates or rewrites the
``-wal``/``-shm`` as root, after which the app (running as its own user) can no longer write them. Everything here
uses ``lstat`` only: nothing is opened, created or changed.

Who is trusted
--------------
* Always root and the effective user.
* When we run as root (``become``), also the app user, i.e. the owner of the database file (or, if the database
  does not exist yet, the owner of its folder): root acts on the app's behalf. A root-owned database in a folder
  another user owns is refused: that user can swap it for anything.
* Side files (``-wal``, ``-shm``, ``-journal``) must belong to the database's owner, root or us.
* A folder or file writable by a group is trusted only if every member of that group is trusted (Ubuntu's
  user-private groups, mode 0775 ``ubuntu:ubuntu``, pass); a world-writable folder only with the sticky bit
  (``/tmp``), where others cannot replace what is ours (planted side files are still caught by their owner).
* Every folder from ``/`` down to the database's real folder (and the folder holding a symlink ``path``) is
  checked: whoever can rename a parent can swap the whole tree.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError

SIDE_SUFFIXES = ('-wal', '-shm', '-journal')


def _user(uid):
    try:
        return '%d (%s)' % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return '%d (no such user)' % uid


def _group(gid):
    try:
        return '%d (%s)' % (gid, grp.getgrgid(gid).gr_name)
    except KeyError:
        return '%d (no such group)' % gid


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:
        # ENOTDIR, EACCES on a parent: we cannot see it, so we cannot vouch for it either; the caller's own
        # open reports the real error
        return None


class _Groups:
    """Members of a group (supplementary and primary), looked up once per check."""

    def __init__(self):
        self._primary = None
        self._cache = {}

    def members(self, gid):
        if gid not in self._cache:
            uids = set()
            try:
                names = grp.getgrgid(gid).gr_mem
            except KeyError:
                names = []
            for n in names:
                try:
                    uids.add(pwd.getpwnam(n).pw_uid)
                except KeyError:
                    pass
            if self._primary is None:
                self._primary = [(p.pw_uid, p.pw_gid) for p in pwd.getpwall()]
            uids.update(u for u, g in self._primary if g == gid)
            self._cache[gid] = uids
        return self._cache[gid]

    def untrusted_members(self, gid, trusted):
        if gid == 0:
            return set()
        return self.members(gid) - trusted


def _mode(st):
    return '%04o' % stat.S_IMODE(st.st_mode)


def _writable_by_others(path, st, trusted, groups, kind, *, allow_sticky):
    """Reasons why users outside ``trusted`` can write ``path`` (a folder or a file)."""
    out = []
    sticky = bool(st.st_mode & stat.S_ISVTX) and allow_sticky
    if st.st_mode & stat.S_IWOTH and not sticky:
        out.append('%s %s is writable by every local user (mode %s, owner %s): anyone can replace or plant files there. '
                   'Run chmod o-w %s (or use a folder only the app user can write)' % (kind, path, _mode(st), _user(st.st_uid), path))
    elif st.st_mode & stat.S_IWGRP and not sticky:
        others = groups.untrusted_members(st.st_gid, trusted)
        if others:
            out.append('%s %s is writable by group %s (mode %s), whose members include %s: they can replace or plant files '
                       'there. Run chmod g-w %s, or use a group only the app user is in'
                       % (kind, path, _group(st.st_gid), _mode(st), ', '.join(_user(u) for u in sorted(others)), path))
    return out


def _folder_chain(folder):
    """``folder`` (real, absolute) and all its parents up to ``/``, nearest first."""
    chain = []
    d = folder
    while True:
        chain.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            return chain
        d = parent


def trusted_uids(path):
    """The uids trusted for ``path`` (see the module docstring)."""
    euid = os.geteuid()
    trusted = {0, euid}
    if euid == 0:
        real = os.path.realpath(path)
        st = _lstat(real)
        if st is not None and stat.S_ISREG(st.st_mode):
            trusted.add(st.st_uid)
        else:
            folder = _lstat(os.path.dirname(real))
            if folder is not None:
                trusted.add(folder.st_uid)
    return trusted


def untrusted_reasons(path, *, side_files=True, trusted=None):
    """Why ``path`` (a database, existing or not) must not be opened: a list of messages, empty when it may be.

    Uses only ``lstat``: call it before anything opens the database. ``side_files`` also checks ``-wal``, ``-shm``
    and ``-journal`` beside the database's real path. ``trusted``: the uids to trust instead of
    :func:`trusted_uids` (root and we are always added), e.g. the source database's for its backup folder.
    """
    reasons = []
    groups = _Groups()
    absolute = os.path.abspath(path)
    real = os.path.realpath(absolute)
    trusted = (set(trusted) | {0, os.geteuid()}) if trusted is not None else trusted_uids(absolute)
    who = 'root or ' + ', '.join(_user(u) for u in sorted(trusted - {0})) if trusted - {0} else 'root'

    folders = []
    for start in (os.path.dirname(real), os.path.realpath(os.path.dirname(absolute))):
        for d in _folder_chain(start):
            if d not in folders:
                folders.append(d)
    for d in folders:
        st = _lstat(d)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid not in trusted:
            reasons.append('folder %s is owned by user %s (mode %s), not by %s: that user can replace the database or '
                           'plant a -wal/-journal beside it. Move the database to a folder owned by the app user, or '
                           'chown the folder' % (d, _user(st.st_uid), _mode(st), who))
            continue
        # a sticky folder (/tmp) protects our entries from others; the database's own folder is treated the same
        # way because what others can still do there (plant a side file) is caught by the owner checks below
        reasons.extend(_writable_by_others(d, st, trusted, groups, 'folder', allow_sticky=True))

    st_db = _lstat(real)
    if st_db is not None and stat.S_ISREG(st_db.st_mode):
        if st_db.st_uid not in trusted:
            reasons.append('database %s is owned by user %s (mode %s), not by %s: its content is theirs. chown it to '
                           'the app user if that is right, or check where it came from' % (real, _user(st_db.st_uid), _mode(st_db), who))
        reasons.extend(_writable_by_others(real, st_db, trusted, groups, 'database', allow_sticky=False))
        owner = st_db.st_uid
    else:
        owner = None
    if side_files:
        side_ok = {0, os.geteuid()} | ({owner} if owner is not None else set())
        for suffix in SIDE_SUFFIXES:
            side = real + suffix
            st = _lstat(side)
            if st is None:
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(side)
                except OSError:
                    target = '?'
                reasons.append('%s is a symlink (to %s): SQLite would read or write another file as part of the database. '
                               'Inspect it and move it away; a real %s is a plain file' % (side, target, suffix))
                continue
            if not stat.S_ISREG(st.st_mode):
                reasons.append('%s is not a regular file (mode %s): move it away' % (side, '%o' % st.st_mode))
                continue
            if st.st_nlink > 1:
                reasons.append('%s has %d hard links: another name (possibly in another user\'s folder) shares its '
                               'content. Inspect it; copy it to a private file if it is the app\'s, then remove the extra link'
                               % (side, st.st_nlink))
            if st.st_uid not in side_ok:
                reasons.append('%s is owned by user %s (mode %s, %d bytes), not by the database\'s owner%s: another user '
                               'may have planted it, and SQLite would read it as part of the database. Inspect it; if it '
                               'is not the app\'s, move it away (never delete a -wal or -journal the app wrote)'
                               % (side, _user(st.st_uid), _mode(st), st.st_size,
                                  (' ' + _user(owner)) if owner is not None else ''))
            reasons.extend(_writable_by_others(side, st, side_ok | trusted, groups, 'side file', allow_sticky=False))
    return reasons


def untrusted_message(path, *, side_files=True, action='open', trusted=None):
    """One message for ``fail_json`` naming every reason, or None when ``path`` may be opened."""
    reasons = untrusted_reasons(path, side_files=side_files, trusted=trusted)
    if not reasons:
        return None
    return ('Refusing to %s %s before SQLite touches it: %s. Nothing was opened or changed.'
            % (action, path, '; '.join(reasons)))


def check_trusted(path, *, side_files=True, action='open', trusted=None):
    """Raise ``DbfixError`` when :func:`untrusted_reasons` finds anything."""
    msg = untrusted_message(path, side_files=side_files, action=action, trusted=trusted)
    if msg is not None:
        raise DbfixError(msg)


def check_folder_trusted(folder, trusted, what='folder'):
    """Raise ``DbfixError`` when users outside ``trusted`` (plus root and us) control ``folder`` or a parent."""
    reasons = untrusted_reasons(os.path.join(folder, '.dbfix-probe'), side_files=False, trusted=trusted)
    if reasons:
        raise DbfixError('Refusing to use %s %s: %s. Nothing was written.' % (what, folder, '; '.join(reasons)))
