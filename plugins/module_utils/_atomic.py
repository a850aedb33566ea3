# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way the collection writes a file: atomically, and never wider than it will be.

:class:`AtomicFile` creates a temp file beside the final name that has the final mode, owner and group (and the
extended attributes of a file it replaces) from its first moment, while it is still empty; the content is written,
fsync'ed, renamed (or hard-linked, to never replace) over the final name, and the folder is fsync'ed. On any failure
the temp file is removed, so no partial file is ever visible under the final name (disk full included).
"""

from __future__ import annotations

import os
import secrets

from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError


def fsync_dir(path, strict=True):
    """Make renames in ``path`` durable. ``strict`` False: a folder that cannot be opened or fsync'ed is no error."""
    try:
        fd = os.open(path or '.', os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)


def discard(name):
    """Remove ``name`` if it is there (a temp file being given up); errors are ignored."""
    if name:
        try:
            os.unlink(name)
        except OSError:
            pass


def copy_xattrs(src, fd):
    """Extended attributes (POSIX ACLs, SELinux label) of ``src`` onto ``fd``, best effort, as shutil.copystat does."""
    try:
        names = os.listxattr(src)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(fd, name, os.getxattr(src, name))
        except OSError:
            pass


def create_exclusive(path, mode, uid=None, gid=None, *, like=None, owner_required=True):
    """Create ``path`` (never existing, never through a symlink) already with owner/group/mode; return its fd.

    The file is born with ``mode`` (narrowed further by the umask), owned by us; it is given its owner, group, the
    extended attributes of ``like`` and its exact mode while it is still empty, so no one who may not read the final
    file ever can read a byte of it. ``owner_required`` False: an owner/group a non-root user cannot give is skipped.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o777)
    try:
        if uid is not None or gid is not None:
            st = os.fstat(fd)
            want = (st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
            if (st.st_uid, st.st_gid) != want:
                try:
                    os.fchown(fd, *want)
                except OSError:
                    if owner_required or os.geteuid() == 0:
                        raise
        if like is not None:
            copy_xattrs(like, fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        discard(path)
        raise
    return fd


def write_all(fd, data, times_ns=None):
    """Write ``data`` to ``fd``, set its times (if given), fsync and close it."""
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
        f.flush()
        if times_ns is not None:
            os.utime(f.fileno(), ns=times_ns)
        os.fsync(f.fileno())


def temp_name(final):
    """A hidden name beside ``final`` for its temp file."""
    directory, base = os.path.split(final)
    return os.path.join(directory, '.%s.%s.dbfix.tmp' % (base, secrets.token_hex(6)))


class AtomicFile:
    """A temp file beside ``final`` (``.tmp``, open as ``.fd``) that becomes ``final`` only on commit().

    It is created with ``mode``, ``uid`` and ``gid`` (and the xattrs of ``like``) from the start; see
    :func:`create_exclusive`. On any failure, abort() removes the temp file, so no partial file is ever visible under
    the final name (disk full included).
    """

    def __init__(self, final, mode=0o600, uid=None, gid=None, *, like=None, owner_required=False):
        self.final = final
        self.dir = os.path.dirname(os.path.abspath(final)) or '.'
        self.fd = None
        self.done = False
        for _i in range(100):
            tmp = temp_name(os.path.join(self.dir, os.path.basename(final)))
            try:
                self.fd = create_exclusive(tmp, mode, uid, gid, like=like, owner_required=owner_required)
            except FileExistsError:
                continue
            self.tmp = tmp
            break
        else:  # pragma: no cover
            raise DbfixError('Cannot create a temp file in %s' % self.dir)

    def write(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def commit(self, mode=None, uid=None, gid=None, *, replace=True, strict_dir=True):
        """fsync and rename into place; ``replace`` False: link instead, so an existing ``final`` is never replaced
        (FileExistsError, the temp file removed). ``strict_dir`` False: a folder that cannot be fsync'ed is no
        error. ``mode``/``uid``/``gid``: only for a temp file that may be narrower until now (prefer giving them to
        the constructor); a non-root owner change that is refused is skipped."""
        try:
            if mode is not None:
                os.fchmod(self.fd, mode)
            if uid is not None or gid is not None:
                try:
                    os.fchown(self.fd, -1 if uid is None else uid, -1 if gid is None else gid)
                except OSError:
                    if os.geteuid() == 0:
                        raise
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            if replace:
                os.replace(self.tmp, self.final)
            else:
                os.link(self.tmp, self.final)  # EEXIST if the name is taken: atomically, even against another run
                os.unlink(self.tmp)
            self.done = True
            fsync_dir(self.dir, strict=strict_dir)
        except BaseException:
            self.abort()
            raise

    def abort(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if not self.done:
            discard(self.tmp)
            self.done = True


def write_file(final, data, mode=0o600, uid=None, gid=None, *, like=None, owner_required=False):
    """Write ``data`` to ``final`` atomically (see :class:`AtomicFile`)."""
    out = AtomicFile(final, mode, uid, gid, like=like, owner_required=owner_required)
    try:
        out.write(data)
        out.commit()
    except BaseException:
        out.abort()
        raise
