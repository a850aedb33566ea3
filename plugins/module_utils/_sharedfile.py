# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the files around a shared SQLite database (used by shared_db_link).

What is at a path (in words for messages), who may read/write a file by its mode bits, giving a file a second
name (hard link, or an exclusive copy keeping mode, owner and times), and replacing a name by a symlink atomically.
lstat only: nothing here opens a database.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic as A

SIDECARS = ('-wal', '-shm', '-journal')
# errno values for which a hard link is impossible here but a copy is not.
LINK_FALLBACK_ERRNOS = frozenset(e for e in (
    errno.EPERM, errno.EMLINK, errno.EXDEV, getattr(errno, 'ENOTSUP', None), getattr(errno, 'EOPNOTSUPP', None),
) if e is not None)


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def describe_path(path):
    """``file``, ``absent``, ``link:<text>``, or ``other:<kind>`` for what is at ``path``."""
    st = lstat_or_none(path)
    if st is None:
        return 'absent'
    if stat.S_ISLNK(st.st_mode):
        return 'link:%s' % os.readlink(path)
    if stat.S_ISREG(st.st_mode):
        return 'file'
    if stat.S_ISDIR(st.st_mode):
        return 'other:directory'
    return 'other:special file'


def human(description):
    """``describe_path`` output in words, for messages."""
    if description == 'file':
        return 'a regular file'
    if description == 'absent':
        return 'missing'
    if description.startswith('link:'):
        return 'a symlink to %s' % description[5:]
    return 'a %s' % description.split(':', 1)[1]


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def mode_text(st):
    return '%04o' % stat.S_IMODE(st.st_mode)


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def who(uid):
    name = user_name(uid)
    return 'uid %d' % uid if name == str(uid) else '%s (uid %d)' % (name, uid)


def groups_of(uid, fallback_gid):
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return {fallback_gid}
    try:
        return set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except OSError:
        return {pw.pw_gid}


def can_access(uid, groups, st, want):
    """POSIX mode-bit check: can ``uid`` (in ``groups``) get ``want`` (4=r, 2=w, 1=x) on ``st``.

    Like the kernel, only one class applies: owner, else group, else other.
    root may do anything (directories) - we do not model capabilities.
    """
    if uid == 0:
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        bits = (mode >> 6) & 7
    elif st.st_gid in groups:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def fsync_dir(directory):
    """Make the renames durable; a filesystem that cannot fsync a folder is not an error."""
    A.fsync_dir(directory, strict=False)


def copy_exclusive(src, dst):
    """Copy ``src`` to a new ``dst`` (never overwriting), keeping mode, owner (as root), extended attributes and times.

    ``dst`` has its final mode and owner from its first moment (see _atomic.create_exclusive)."""
    st = os.stat(src)
    fd = A.create_exclusive(dst, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, like=src, owner_required=False)
    try:
        with os.fdopen(fd, 'wb') as out, open(src, 'rb') as inp:
            while True:
                chunk = inp.read(1024 * 1024)
                if not chunk:
                    break
                out.write(chunk)
            out.flush()
            os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(out.fileno())
    except BaseException:
        A.discard(dst)
        raise


def clone_file(src, dst):
    """Give ``src``'s content a second name ``dst``; ``dst`` must not exist. Returns the method."""
    try:
        os.link(src, dst)
        return 'hardlink'
    except OSError as e:
        if e.errno not in LINK_FALLBACK_ERRNOS:
            raise
    copy_exclusive(src, dst)
    return 'copy'


def replace_with_symlink(path, target, owner=None):
    """Atomically make ``path`` a symlink to ``target`` (temp link beside it + rename); ``owner`` (uid, gid) is given
    to the link when running as root. On failure the temp link is removed and ``path`` is as it was."""
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, '.%s.dbfix-%d-%s.tmp' % (base, os.getpid(), os.urandom(4).hex()))
    os.symlink(target, tmp)
    try:
        if owner is not None and os.geteuid() == 0:
            os.lchown(tmp, owner[0], owner[1])
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
