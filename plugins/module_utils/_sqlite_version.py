# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which SQLite a process really uses, and whether it has the WAL-reset bug.

The WAL-reset bug (https://sqlite.org/wal.html#walresetbug) is a data race in
SQLite 3.7.0 up to 3.51.2: when two connections to one WAL database write or
checkpoint at the same time, a checkpoint can miss that the WAL was reset by a
commit and record a wrong backfill count; a later checkpoint then skips part of
a transaction and the database is corrupt. A blue/green pair on one shared
SQLite file is exactly two processes writing and checkpointing one WAL file.
Fixed in 3.51.3, with backports in 3.50.7 and 3.44.6.

Stdlib only: this file is also copied next to the monitor's checker script.
"""

from __future__ import annotations

import os
import re

BUG_URL = 'https://sqlite.org/wal.html#walresetbug'
FIRST_AFFECTED = (3, 7, 0)
FIXED = (3, 51, 3)
# (major, minor) -> first fixed patch release of that branch
BACKPORTS = {(3, 44): 6, (3, 50): 7}
UPGRADE_HINT = 'upgrade SQLite to 3.51.3 or later (or the backports 3.50.7 / 3.44.6)'

_VERSION_RE = re.compile(r'^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$')
# In a binary: "3.40.1\0", not preceded by a character that would make it part of a longer token.
_BIN_VERSION_RE = re.compile(rb'(?<![0-9A-Za-z._/-])(3\.\d{1,3}\.\d{1,3}(?:\.\d{1,3})?)\x00')
# SQLITE_SOURCE_ID: "2022-12-28 14:03:47 df5c253c..." - proves an SQLite amalgamation is in the file.
_SOURCE_ID_RE = re.compile(rb'20\d\d-\d\d-\d\d \d\d:\d\d:\d\d [0-9a-f]{36,64}')
# Files worth scanning in /proc/PID/maps: shared SQLite libraries and native addons
# (better-sqlite3's .node file links the amalgamation statically).
_CANDIDATE_RE = re.compile(r'(sqlite[^/]*\.so(\.[0-9.]+)?$|\.node$)', re.IGNORECASE)
MAX_SCAN = 256 * 1024 * 1024


def parse(version):
    """'3.40.1' -> (3, 40, 1, 0); a tuple passes through padded; None when not a version."""
    if isinstance(version, (tuple, list)):
        parts = [int(x) for x in version][:4]
    else:
        m = _VERSION_RE.match(str(version or ''))
        if not m:
            return None
        parts = [int(x) for x in m.groups() if x is not None]
    while len(parts) < 4:
        parts.append(0)
    return tuple(parts)


def affected(version):
    """True when this SQLite version has the WAL-reset bug, False when not, None when unknown."""
    v = parse(version)
    if v is None:
        return None
    v3 = v[:3]
    if v3 < FIRST_AFFECTED or v3 >= FIXED:
        return False
    first_fixed_patch = BACKPORTS.get(v3[:2])
    if first_fixed_patch is not None and v3[2] >= first_fixed_patch:
        return False
    return True


def fixed_alternative(version):
    """The nearest fixed release an operator could upgrade to from ``version``."""
    v = parse(version)
    if v is not None and v[:2] in BACKPORTS and affected(v):
        return '%d.%d.%d' % (v[0], v[1], BACKPORTS[v[:2]])
    return '%d.%d.%d' % FIXED


def verdict(version):
    """One line for an operator: what the version means for a shared WAL database."""
    a = affected(version)
    if a is None:
        return 'SQLite version %r is not known; cannot tell whether it has the WAL-reset bug (%s)' % (version, BUG_URL)
    if a:
        return ('SQLite %s has the WAL-reset bug (3.7.0-3.51.2): two processes writing or checkpointing one WAL '
                'database can corrupt it; %s (nearest: %s). See %s' % (version, UPGRADE_HINT, fixed_alternative(version), BUG_URL))
    return 'SQLite %s is not affected by the WAL-reset bug' % (version,)


# --------------------------------------------------------------------------- our own connections


def host_version():
    """The SQLite library this Python (the one running our modules) is linked with."""
    import sqlite3
    return sqlite3.sqlite_version


def host_affected():
    return bool(affected(host_version()))


def live_write_refusal(path, operation, holders, version=None):
    """A refusal message, or None when ``operation`` on ``path`` is safe for this host's SQLite.

    ``operation``: 'checkpoint' (explicit wal_checkpoint, or a connection that may
    auto-checkpoint) or 'write' (any commit). ``holders``: processes that have the
    database open right now (e.g. from _openfiles.holders). With nobody else holding
    the file there is no second connection and no race. A caller writing with an
    affected library should also call :func:`make_connection_safe` on its connection.
    """
    version = version or host_version()
    if not holders or not affected(version):
        return None
    who = ', '.join('pid %s' % h.get('pid') for h in holders[:5])
    if operation == 'checkpoint':
        what = 'checkpoint %s while other processes have it open (%s)' % (path, who)
        todo = ('Stop the apps first (then the checkpoint is safe), or run it on a host whose Python uses a fixed SQLite; '
                'nothing was changed')
    else:
        what = 'write to %s while other processes have it open (%s)' % (path, who)
        todo = ('Stop the apps for the write, run it through the app itself (its own, fixed SQLite), or %s; '
                'nothing was changed' % UPGRADE_HINT)
    return ('Refusing to %s: this host\'s Python uses SQLite %s, which has the WAL-reset bug (%s); a checkpoint or commit '
            'racing the apps\' can corrupt the shared database. %s.' % (what, version, BUG_URL, todo))


def make_connection_safe(conn, version=None):
    """Stop ``conn`` from checkpointing on its own. Returns what was done (a list of strings).

    * ``PRAGMA wal_autocheckpoint=0``: a commit of ours never runs the automatic
      (PASSIVE) checkpoint that would race the apps' checkpoints.
    * no checkpoint on close (Python >= 3.12 ``setconfig``); on older Pythons the
      close-time checkpoint still runs, but only when ours is the last connection:
      SQLite takes an EXCLUSIVE lock on the database file for it, so no other
      connection can write or checkpoint at the same time.
    Callers must not run ``PRAGMA wal_checkpoint`` on a live shared database either.
    """
    if not affected(version or host_version()):
        return []
    done = []
    conn.execute('PRAGMA wal_autocheckpoint=0')
    done.append('wal_autocheckpoint=0')
    setconfig = getattr(conn, 'setconfig', None)
    flag = getattr(__import__('sqlite3'), 'SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE', None)
    if setconfig is not None and flag is not None:
        setconfig(flag, True)
        done.append('no checkpoint on close')
    return done


# --------------------------------------------------------------------------- other processes


def version_in_binary(data):
    """SQLite version string found in a library/addon image, or None when no SQLite is in it."""
    ids = [m.start() for m in _SOURCE_ID_RE.finditer(data)]
    if not ids:
        return None
    best = None
    for m in _BIN_VERSION_RE.finditer(data):
        v = parse(m.group(1).decode('ascii'))
        if v is None or v < (3, 0, 0, 0):
            continue
        dist = min(abs(m.start() - i) for i in ids)
        if best is None or dist < best[0]:
            best = (dist, m.group(1).decode('ascii'))
    return best[1] if best else None


def _mapped_files(pid, proc_root='/proc'):
    """[(range, path, deleted)] of the regular files a process maps (libraries, addons), once each."""
    out, seen = [], set()
    with open(os.path.join(proc_root, str(pid), 'maps')) as f:
        for line in f:
            parts = line.rstrip('\n').split(None, 5)
            if len(parts) < 6 or not parts[5].startswith('/'):
                continue
            path = parts[5]
            deleted = path.endswith(' (deleted)')
            if deleted:
                path = path[:-len(' (deleted)')]
            if path in seen:
                continue
            seen.add(path)
            out.append((parts[0], path, deleted))
    return out


def _read_image(pid, rng, path, proc_root):
    # map_files reads the very inode the process mapped, even when the file on disk was replaced
    # (an upgraded package); it needs privileges, so fall back to the path.
    for candidate in (os.path.join(proc_root, str(pid), 'map_files', rng), path):
        try:
            with open(candidate, 'rb') as f:
                return f.read(MAX_SCAN)
        except OSError:
            continue
    return None


def process_libraries(pid, proc_root='/proc', cache=None):
    """SQLite libraries a process has mapped: [{'path', 'version', 'kind', 'deleted'}].

    ``kind`` is 'shared' for a libsqlite3 shared library, 'static' for an addon
    (a .node file) with the amalgamation linked in. Raises OSError when the maps
    cannot be read (process gone, or no permission).
    """
    cache = {} if cache is None else cache
    found = []
    for rng, path, deleted in _mapped_files(pid, proc_root):
        base = os.path.basename(path)
        if not _CANDIDATE_RE.search(base):
            continue
        try:
            st = os.stat(path)
            key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, deleted)
        except OSError:
            key = (path, None, deleted, pid)
        if key not in cache:
            data = _read_image(pid, rng, path, proc_root)
            cache[key] = version_in_binary(data) if data else None
        version = cache[key]
        if version is None and not base.lower().startswith('libsqlite'):
            continue  # a binding (Python's _sqlite3) or an addon without SQLite inside
        found.append({'path': path, 'version': version, 'deleted': deleted,
                      'kind': 'static' if base.endswith('.node') else 'shared'})
    return found
