# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small SQLite helpers shared by the modules: checking a database file, connections, integrity checks,
backup names.

The snapshot engine (consistent copies of a live database, reading without creating anything beside it,
recovering what a crashed writer left in a private copy) lives in ``_snapshot.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import struct

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported
    from urllib import quote  # type: ignore

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic
from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError
from ansible_collections.bluegreen.dbfix.plugins.module_utils._trust import check_trusted

SQLITE_MAGIC = b'SQLite format 3\x00'
CHUNK = 8 * 1024 * 1024
# a name already taken (other content, a concurrent run) gets the next free ``.N``: a backup is never overwritten
BACKUP_RE_TEMPLATE = r'^%s\.backup\.(\d{8}_\d{6})(?:\.(\d{1,6}))?$'
TIMESTAMP_RE = re.compile(r'^\d{8}_\d{6}$')

# the one atomic-write helper lives in _atomic.py; these names stay for the modules that use them through _sqlite
AtomicFile = _atomic.AtomicFile
fsync_dir = _atomic.fsync_dir


# --------------------------------------------------------------------------- files


def real_db_path(path):
    """Resolve symlinks: SQLite itself opens (and puts -wal/-shm beside) the target."""
    return os.path.realpath(path)


def check_db_file(path, what='database'):
    """Raise DbfixError unless ``path`` is an existing, non-empty SQLite file.

    Returns the parsed header (page_size, wal flag).
    """
    if not os.path.lexists(path):
        raise DbfixError('%s %s does not exist. Check the path (or create the database first).' % (what.capitalize(), path))
    if os.path.islink(path) and not os.path.exists(path):
        raise DbfixError('%s %s is a symlink whose target %s does not exist (dangling or looping link). Fix the link.'
                         % (what.capitalize(), path, os.readlink(path)))
    if os.path.isdir(path):
        raise DbfixError('%s %s is a directory, not an SQLite file. Point the path at the database file itself.' % (what.capitalize(), path))
    if not os.path.isfile(path):
        raise DbfixError('%s %s is not a regular file. Point the path at an SQLite database file.' % (what.capitalize(), path))
    try:
        with open(path, 'rb') as f:
            head = f.read(100)
    except OSError as e:
        raise DbfixError('Cannot read %s %s: %s. Run as a user that can read it.' % (what, path, e)) from e
    if len(head) == 0:
        raise DbfixError('%s %s is empty (0 bytes), not an SQLite database. Check the path; nothing was changed.' % (what.capitalize(), path))
    if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
        raise DbfixError('%s %s is not an SQLite database (its first bytes are %r, not "SQLite format 3"). Check the path; nothing was changed.'
                         % (what.capitalize(), path, head[:16]))
    return parse_header(head)


def parse_header(head):
    psz = struct.unpack('>H', head[16:18])[0]
    if psz == 1:
        psz = 65536
    return {'page_size': psz, 'wal': head[18] == 2 or head[19] == 2,
            'header_pages': struct.unpack('>I', head[28:32])[0]}


def sha256_file(path, chunk=CHUNK):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def check_dest_dir(dest_dir, what='destination folder'):
    if not os.path.exists(dest_dir):
        raise DbfixError('The %s %s does not exist. Create it first (ansible.builtin.file state=directory) or choose another one.'
                         % (what, dest_dir))
    if not os.path.isdir(dest_dir):
        raise DbfixError('The %s %s is not a directory. Choose a folder.' % (what, dest_dir))
    if not os.access(dest_dir, os.W_OK | os.X_OK):
        raise DbfixError('The %s %s is not writable (read-only filesystem or permissions). Make it writable or choose another folder.'
                         % (what, dest_dir))


# --------------------------------------------------------------------------- connections


def uri_for(path, mode=None, immutable=False):
    q = []
    if mode:
        q.append('mode=%s' % mode)
    if immutable:
        q.append('immutable=1')
    return 'file:%s%s' % (quote(os.path.abspath(path)), ('?' + '&'.join(q)) if q else '')


def connect(path, busy_timeout_ms=5000, mode=None, immutable=False, *, trust=True):
    """Open with autocommit (isolation_level=None): we issue BEGIN/COMMIT ourselves.

    ``trust``: refuse (DbfixError) first when other local users control the file, its side files or its folders
    (see _trust.py), because SQLite would read what they planted. Only files we just made ourselves skip it.
    """
    if trust:
        check_trusted(path)
    conn = sqlite3.connect(uri_for(path, mode, immutable), uri=True, timeout=max(busy_timeout_ms, 0) / 1000.0,
                           isolation_level=None, check_same_thread=False)
    conn.execute('PRAGMA busy_timeout=%d' % int(busy_timeout_ms))
    return conn


def checkpoint(path, timeout=5.0):
    """Make ``path`` complete on its own: open it read-write, read the schema (SQLite then rolls back a hot journal
    or rebuilds the WAL index) and merge the WAL into it (``wal_checkpoint(TRUNCATE)``, a no-op in rollback-journal
    mode). Returns the checkpoint's busy flag: 0 when everything was merged, 1 when another connection held it back.
    Raises sqlite3.Error. Only for a file no app uses (a private copy, a database whose app is stopped)."""
    conn = sqlite3.connect(uri_for(path, 'rw'), uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        return conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0]
    finally:
        conn.close()


def is_locked_error(e):
    s = str(e).lower()
    return 'locked' in s or 'busy' in s


def locked_message(path, busy_timeout_ms, err):
    from ansible_collections.bluegreen.dbfix.plugins.module_utils._openfiles import describe, holders
    rp = real_db_path(path)
    found, _dummy = holders([rp, rp + '-wal', rp + '-shm', rp + '-journal'])
    who = describe(found) if found else 'no holder visible in /proc'
    return ('Database %s stayed locked longer than busy_timeout=%d ms (%s). Holders: %s. '
            'Retry when the writer is done, or raise busy_timeout.' % (path, busy_timeout_ms, err, who))


def summarize(messages, limit=1500):
    """First messages of a failed check, capped (integrity_check can return thousands of lines)."""
    text = '; '.join(str(m) for m in messages[:10])
    return text if len(text) <= limit else text[:limit] + ' ...'


def integrity(conn, level):
    """Run quick_check/integrity_check; return 'ok' or the list of messages."""
    if level == 'none':
        return None
    pragma = 'quick_check' if level == 'quick' else 'integrity_check'
    rows = [r[0] for r in conn.execute('PRAGMA %s' % pragma).fetchall()]
    if rows == ['ok']:
        return 'ok'
    return rows


def verify_file(path, level):
    """Verify a file nobody else uses (immutable: no locks, no -wal/-shm created)."""
    if level == 'none':
        return None
    conn = connect(path, 0, mode='ro', immutable=True, trust=False)
    try:
        return integrity(conn, level)
    finally:
        conn.close()


# --------------------------------------------------------------------------- backups on disk


def backup_name(db_path, timestamp, seq=0):
    """``<db>.backup.<timestamp>``, or ``<db>.backup.<timestamp>.<seq>`` for the seq-th other backup of that second."""
    return '%s.backup.%s%s' % (os.path.basename(db_path), timestamp, ('.%d' % seq) if seq else '')


def backup_candidates(dest_dir, db_path, timestamp, limit=1000):
    """Names for a backup with this timestamp, in order: the ones that exist (to compare with), then the first free one."""
    taken = []
    for seq in range(limit):
        p = os.path.join(dest_dir, backup_name(db_path, timestamp, seq))
        if not os.path.lexists(p):
            return taken, p
        taken.append(p)
    raise DbfixError('%d backups of %s with timestamp %s exist in %s already; pass another timestamp.'
                     % (limit, db_path, timestamp, dest_dir))


def list_backups(dest_dir, db_name):
    """This DB's backups in dest_dir, newest first (by timestamp in the name)."""
    rx = re.compile(BACKUP_RE_TEMPLATE % re.escape(db_name))
    found = []
    try:
        names = os.listdir(dest_dir)
    except OSError:
        return []
    for n in names:
        m = rx.match(n)
        if m and os.path.isfile(os.path.join(dest_dir, n)):
            found.append(((m.group(1), int(m.group(2) or 0)), os.path.join(dest_dir, n)))
    found.sort(reverse=True)
    return [p for dummy, p in found]


def remove_sidecars(real_path):
    for suffix in ('-wal', '-shm', '-journal'):
        try:
            os.unlink(real_path + suffix)
        except OSError:
            pass
