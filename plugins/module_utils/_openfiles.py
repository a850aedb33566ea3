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
import stat


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


def alive(pid, proc_root='/proc'):
    """Whether process ``pid`` exists and is not a zombie (a zombie holds no files), from /proc."""
    try:
        with open(os.path.join(proc_root, str(int(pid)), 'stat'), 'rb') as f:
            raw = f.read().decode('utf-8', 'replace')
    except (OSError, ValueError):
        return False
    fields = raw[raw.rfind(')') + 2:].split()
    return bool(fields) and fields[0] not in ('Z', 'X')


def start_time(pid, proc_root='/proc'):
    """When process ``pid`` started (clock ticks since boot, field 22 of /proc/PID/stat), or None when it is gone,
    a zombie or cannot be read. With the pid it names one process: a pid taken again by a new process has a later
    start time."""
    try:
        with open(os.path.join(proc_root, str(int(pid)), 'stat'), 'rb') as f:
            raw = f.read().decode('utf-8', 'replace')
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(')') + 2:].split()
    if len(fields) < 20 or fields[0] in ('Z', 'X') or not fields[19].isdigit():
        return None
    return int(fields[19])


def children(pid, proc_root='/proc'):
    """``pid`` and every process below it (from each process's ``stat`` parent pid), sorted."""
    parent_of = {}
    try:
        names = [d for d in os.listdir(proc_root) if d.isdigit()]
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(proc_root, name, 'stat'), 'rb') as f:
                raw = f.read().decode('utf-8', 'replace')
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields after its last ')' are fixed.
        fields = raw[raw.rfind(')') + 2:].split()
        if len(fields) > 1 and fields[1].isdigit():
            parent_of[int(name)] = int(fields[1])
    tree, todo = {int(pid)}, [int(pid)]
    while todo:
        p = todo.pop()
        for child, parent in parent_of.items():
            if parent == p and child not in tree:
                tree.add(child)
                todo.append(child)
    return sorted(tree)


def open_files(pids, proc_root='/proc'):
    """``(files, unreadable)``: every regular file the given processes hold open.

    ``files`` is a list of ``{pid, path, dev, ino}`` (``path`` as /proc shows it,
    which ends in `` (deleted)`` for a removed file); ``unreadable`` lists the pids
    whose fd table could not be read (another user's process when not root).
    """
    files, unreadable = [], []
    for pid in pids:
        fd_dir = os.path.join(proc_root, str(pid), 'fd')
        try:
            fds = os.listdir(fd_dir)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ESRCH):
                unreadable.append(int(pid))
            continue
        seen = set()
        for fd in fds:
            link = os.path.join(fd_dir, fd)
            try:
                st = os.stat(link)
                target = os.readlink(link)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files.append({'pid': int(pid), 'path': target, 'dev': st.st_dev, 'ino': st.st_ino})
    return files, unreadable


def which_hold(files, paths):
    """For each path, the pids among ``files`` (see open_files) that hold its inode (missing path: no pids)."""
    out = {}
    for p in paths:
        ident = _identity(p)
        out[p] = sorted({f['pid'] for f in files if ident is not None and (f['dev'], f['ino']) == ident})
    return out
