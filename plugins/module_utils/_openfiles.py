# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find the processes that hold a file open, from /proc (no lsof needed).

Moving or replacing a SQLite file that a process still has open is how rows get
lost: the process keeps writing to the old inode. Modules that move DB files
refuse while this finds a holder. Processes we may not inspect (other users,
when not root) are reported as ``unknown`` rather than silently skipped.
"""

from __future__ import annotations

import errno
import os


def _identity(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _cmdline(pid, proc_root='/proc'):
    try:
        with open(os.path.join(proc_root, str(pid), 'cmdline'), 'rb') as f:
            raw = f.read()
    except OSError:
        return ''
    return raw.replace(b'\0', b' ').decode('utf-8', 'replace').strip()


def holders(paths, proc_root='/proc'):
    """Return ``(holders, unreadable)`` for the given file paths.

    ``holders`` is a list of dicts ``{pid, command, path}``, one per process and
    file. Files are matched by device and inode, so a process that opened the
    file through a symlink or another hard link is found too. ``unreadable`` is
    the number of processes whose fd table we could not read.
    """
    wanted = {}
    for p in paths:
        ident = _identity(p)
        if ident is not None:
            wanted[ident] = p
    found = []
    unreadable = 0
    if not wanted:
        return found, unreadable
    me = str(os.getpid())
    try:
        pids = [d for d in os.listdir(proc_root) if d.isdigit()]
    except OSError:
        return found, unreadable
    for pid in pids:
        if pid == me:
            continue
        fd_dir = os.path.join(proc_root, pid, 'fd')
        try:
            fds = os.listdir(fd_dir)
        except OSError as e:
            # A process that exited between listdir(/proc) and here holds nothing;
            # only a fd table we were denied is unknown.
            if e.errno not in (errno.ENOENT, errno.ESRCH):
                unreadable += 1
            continue
        seen = set()
        for fd in fds:
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in wanted and ident not in seen:
                seen.add(ident)
                found.append({'pid': int(pid), 'command': _cmdline(pid, proc_root), 'path': wanted[ident]})
    return found, unreadable


def describe(found):
    """Human-readable ``pid 123 (node server.js) has /x/db open`` list."""
    return '; '.join('pid %d (%s) has %s open' % (h['pid'], _short(h['command']) or '?', h['path']) for h in found)


def _short(command, limit=160):
    # A command line can hold a whole inline script; one line of it names the process well enough.
    command = ' '.join((command or '').split())
    return command if len(command) <= limit else command[:limit - 3] + '...'
