# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The snapshot engine: consistent reads and copies of a live SQLite database.

The central piece is :func:`snapshot_copy`: a consistent copy of a *live*
database that is as fast as a plain file copy.

How it stays consistent
-----------------------
A connection opens a read transaction (``BEGIN`` + a ``SELECT``), which pins one
committed state (a snapshot) for as long as it is held.

* Rollback-journal mode: the read transaction holds a SHARED lock, so no writer
  can change the database file until we release it. We copy the first
  ``page_count`` pages. Writers are blocked for the length of the copy; that is
  inherent to rollback-journal mode (``Connection.backup`` blocks them too).
* WAL mode: writers keep appending to the ``-wal`` file while we copy. The
  snapshot is the database file plus WAL frames ``1..mxFrame``. We learn
  ``mxFrame`` from the wal-index header in the ``-shm`` file, read once before and
  once after the snapshot is taken: if both reads are identical (the header
  carries a change counter) nobody committed in between, so the header *is* the
  snapshot's. (Otherwise we retry; after a few tries we briefly take the write
  lock with ``BEGIN IMMEDIATE`` so the header cannot move, and release it as soon
  as the snapshot is pinned.)
  While we hold the snapshot a checkpoint may still copy WAL frames into the
  database file, but never frames past any reader's mark, so every page it
  rewrites is a page that also has a frame ``<= mxFrame`` in the WAL. We overlay
  the newest frame ``<= mxFrame`` of each such page onto the copy, so a page the
  checkpointer was rewriting while we read it (torn or not) is replaced by its
  snapshot version. The WAL cannot be restarted (overwritten from frame 1) while
  a reader uses a non-zero read mark; a reader only gets mark 0 when the WAL was
  fully checkpointed, in which case the database file alone is the snapshot and
  checkpoints cannot write to it (they need read-lock 0). The page count comes
  from the same header and is cross-checked with ``PRAGMA page_count`` inside the
  snapshot. The result is a self-contained database (no ``-wal`` needed).
  Anything unexpected (no readable ``-shm``, salts that do not match, a page
  missing) falls back to the ``Connection.backup`` API, which is slower but
  equally consistent.

How it stays fast
-----------------
The bulk copy runs in the kernel (``copy_file_range``, as ``cp`` does) into a
temporary file in the destination folder, which is fsync'ed and renamed (see
:class:`AtomicFile`). ``cp`` + ``fsync`` first dirties the whole copy in the page
cache and only then waits for the disk; :class:`_Flusher` writes the copy back
*while* it is being made, so the final fsync only waits for the tail (measured on
1 GB: 0.36-0.40 s against 0.56-0.70 s for cp + fsync, see docs/benchmarks.md).
When a checksum is wanted, a second thread hashes (sha256) the same snapshot image
from the page cache in parallel; sha256 runs at ~1.5 GB/s here, so on its own it
is slower than the copy, and ``verify: none`` skips it unless asked for.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import mmap
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
import threading
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils._atomic import AtomicFile
from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError
from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite import (
    CHUNK,
    check_db_file,
    checkpoint,
    connect,
    is_locked_error,
    locked_message,
    real_db_path,
    sha256_file,
    summarize,
    verify_file,
)
from ansible_collections.bluegreen.dbfix.plugins.module_utils._trust import check_trusted

# copy_file_range step: small enough that the flusher finds dirty pages to write early, large enough that the
# per-call cost does not matter (64 MiB measured as fast as one 1 GiB call, and it lets writeback start sooner)
COPY_STEP = 64 * 1024 * 1024
WAL_HEADER = 32
WAL_FRAME_HEADER = 24
JOURNAL_MAGIC = b'\xd9\xd5\x05\xf9\x20\xa1\x63\xd7'
WAL_MAGICS = (0x377f0682, 0x377f0683)
# SQLite's POSIX lock bytes (os_unix.c): a RESERVED writer locks one byte, every reader (and, in WAL mode, every
# open connection) read-locks the SHARED range
PENDING_BYTE = 0x40000000
RESERVED_BYTE = PENDING_BYTE + 1
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510


class _Fallback(Exception):
    """Internal: the fast path cannot prove consistency; use the backup API."""


class _Unstable(Exception):
    """Internal: an immutable read may have raced a writer that started meanwhile; read again."""


# --------------------------------------------------------------------------- crash remnants and read-only opens
#
# A reader must never create anything beside a database: SQLite's read-only connection to a WAL database whose
# -wal/-shm are missing creates both (owned by whoever reads, root included, which then locks the app out of its
# own database), and it cannot read a database with a hot rollback journal at all. So every read goes through
# read_plan(), which looks (lstat, the side files' first bytes, SQLite's own POSIX lock bytes) before SQLite opens
# anything, and picks one of:
#   shared       an ordinary read-only connection: the side files SQLite needs are already there (or, in
#                rollback-journal mode, none are needed)
#   immutable    a WAL database nobody has open and whose WAL holds no frame: the file alone is the committed
#                state; read it with immutable=1 under our own SHARED lock, and check afterwards that it did not
#                change (a writer that started meanwhile would have to write frames and checkpoint first)
#   private-copy what a crashed writer left (a hot journal, WAL frames without a -shm) is recovered by SQLite in a
#                private copy (database + its journal or WAL, in a 0700 temp folder): the committed state, and
#                the original files are left exactly as they are, for the app to recover itself


def _lsize(path):
    """Size of a regular file (not following a symlink), None if there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _head(path, n):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b''
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def crash_state(path):
    """What lies beside the database (lstat and the side files' headers only; nothing is opened by SQLite).

    ``journal``: size of ``-journal`` (None if absent); ``journal_hot``: it starts with a journal header, i.e. a
    transaction was in flight (committed or rolled-back transactions delete, truncate or zero it);
    ``wal``: size of ``-wal``; ``wal_frames``: complete frames in it; ``shm``: a ``-shm`` exists.
    """
    real = real_db_path(path)
    out = {'real': real, 'journal': _lsize(real + '-journal'), 'journal_hot': False,
           'wal': _lsize(real + '-wal'), 'wal_frames': 0, 'shm': os.path.lexists(real + '-shm')}
    if out['journal']:
        out['journal_hot'] = _head(real + '-journal', 8) == JOURNAL_MAGIC
    if out['wal'] and out['wal'] > WAL_HEADER:
        head = _head(real + '-wal', WAL_HEADER)
        if len(head) == WAL_HEADER and struct.unpack('>I', head[0:4])[0] in WAL_MAGICS:
            psz = struct.unpack('>I', head[8:12])[0]
            if 512 <= psz <= 65536:
                out['wal_frames'] = (out['wal'] - WAL_HEADER) // (WAL_FRAME_HEADER + psz)
    return out


_FLOCK = '@hhqqi'
_FLOCK_SIZE = (struct.calcsize(_FLOCK) + 7) // 8 * 8  # struct flock with its trailing padding (Linux)


def _lock_probe(fd, start, length, exclusive):
    """Could we take this POSIX lock right now? Asked with F_GETLK, so nothing is locked (and no lock of ours is
    dropped) and a read-only descriptor is enough."""
    want = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    raw = struct.pack(_FLOCK, want, os.SEEK_SET, start, length, 0).ljust(_FLOCK_SIZE, b'\0')
    got = fcntl.fcntl(fd, fcntl.F_GETLK, raw)
    return struct.unpack(_FLOCK, got[:struct.calcsize(_FLOCK)])[0] == fcntl.F_UNLCK


def in_use(real):
    """(``open``, ``writing``): a connection has the database open (WAL mode) or reads it, a writer holds RESERVED.

    These are the POSIX locks SQLite itself tests to tell a live writer from a crashed one; processes that opened
    the file but take no lock (an ``immutable`` reader) are not seen. Locks of our own process are never seen.
    """
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    try:
        opened = not _lock_probe(fd, SHARED_FIRST, SHARED_SIZE, exclusive=True)
        writing = not _lock_probe(fd, RESERVED_BYTE, 1, exclusive=False)
        return opened, writing
    finally:
        os.close(fd)


def _file_id(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ReadPlan:
    """How to read a database without creating or changing anything beside it (see read_plan)."""

    __slots__ = ('how', 'note', 'real', 'state', 'wal')

    def __init__(self, how, real, state, wal, note=None):
        self.how, self.real, self.state, self.wal, self.note = how, real, state, wal, note


def describe_crash(path, state):
    """Words for what a crashed writer left, '' if nothing."""
    parts = []
    if state['journal_hot']:
        parts.append('a hot rollback journal %s-journal (%d bytes) from a transaction that never finished'
                     % (state['real'], state['journal']))
    if state['wal_frames'] and not state['shm']:
        parts.append('a -wal %s-wal (%d bytes, %d frames) that no process has open and no -shm beside it'
                     % (state['real'], state['wal'], state['wal_frames']))
    return ' and '.join(parts)


def read_plan(path, busy_timeout_ms=5000, *, trust=True):
    """Check ``path`` (trust, then the SQLite header), look at what lies beside it, and say how to read it."""
    if trust:
        check_trusted(path, action='read')
    hdr = check_db_file(path)
    real = real_db_path(path)
    deadline = time.monotonic() + max(busy_timeout_ms, 0) / 1000.0
    while True:
        state = crash_state(real)
        wal = hdr['wal'] or state['wal'] is not None
        if not wal:
            if state['journal_hot'] and not in_use(real)[1]:
                return ReadPlan('private-copy', real, state, wal,
                                'Found %s; its committed state was recovered by rolling the journal back in a private '
                                'copy. %s and its journal were left as they are (the app rolls it back when it next '
                                'opens the database; sqlite3 does the same)' % (describe_crash(path, state), path))
            return ReadPlan('shared', real, state, wal)
        if state['wal'] is not None and state['shm']:
            return ReadPlan('shared', real, state, wal)
        opened, _writing = in_use(real)
        if not opened:
            if state['wal_frames']:
                return ReadPlan('private-copy', real, state, wal,
                                'Found %s (left by a writer that stopped without a checkpoint); the committed frames '
                                'were read in a private copy. %s and its -wal were left as they are'
                                % (describe_crash(path, state), path))
            return ReadPlan('immutable', real, state, wal)
        # someone has it open but its -wal/-shm are not (yet) there: an app starting up, or one in exclusive
        # locking mode (no -shm at all); wait for it within the busy timeout, never open it ourselves meanwhile
        if time.monotonic() >= deadline:
            raise DbfixError(locked_message(path, busy_timeout_ms, 'open by another process without a -wal/-shm '
                                                                   '(exclusive locking mode, or starting up)'))
        time.sleep(0.02)


def _copy_into(src, dst):
    with open(src, 'rb') as f, open(dst, 'wb') as g:
        shutil.copyfileobj(f, g, CHUNK)


def private_copy(plan, tmp_dir=None):
    """Copy the database and the journal/WAL a crashed writer left into a private folder and let SQLite recover
    it there. Returns (folder, recovered database path); the caller removes the folder (shutil.rmtree).

    Our SHARED lock on the original (as any reader would take) keeps a writer from changing it while we copy;
    the files' identities are compared before and after, and a change means another try.
    """
    real = plan.real
    side = real + ('-wal' if plan.state['wal_frames'] else '-journal')
    for _attempt in range(5):
        folder = tempfile.mkdtemp(prefix='.dbfix-recover-', dir=tmp_dir)
        ok = False
        try:
            copy = os.path.join(folder, 'db')
            lock_fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
            try:
                try:
                    fcntl.lockf(lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST)
                except OSError as e:
                    raise DbfixError('Database %s became busy while its crash remnants were being read (%s). Retry.'
                                     % (real, e)) from e
                before = (_file_id(real), _file_id(side))
                _copy_into(real, copy)
                _copy_into(side, copy + side[len(real):])
                after = (_file_id(real), _file_id(side))
            finally:
                os.close(lock_fd)
            if before != after:
                continue
            # the first read recovers (rolls back the journal / rebuilds the WAL index); then fold the WAL in,
            # so the copy alone is the committed state
            checkpoint(copy)
            ok = True
            return folder, copy
        except OSError as e:
            raise DbfixError('Recovering the committed state of %s in a private copy under %s failed: %s. Nothing '
                             'beside the database was changed; free space there (or set TMPDIR) and retry.'
                             % (real, tmp_dir or tempfile.gettempdir(), e)) from e
        except sqlite3.DatabaseError as e:
            raise DbfixError('Database %s: SQLite could not recover what a crashed writer left (%s): %s. Nothing was '
                             'changed; the database and its side files are as they were.'
                             % (real, describe_crash(real, plan.state), e)) from e
        finally:
            if not ok:
                shutil.rmtree(folder, ignore_errors=True)
    raise DbfixError('Database %s kept changing while its crash remnants were read (a writer started). Retry.' % real)


def explain_open_error(path, err, state=None):
    """A message for an SQLite error on opening/reading ``path`` that says what was really found."""
    real = real_db_path(path)
    state = state or crash_state(real)
    name = getattr(err, 'sqlite_errorname', '') or ''
    found = describe_crash(path, state)
    folder = os.path.dirname(real)
    if 'READONLY' in name or 'CANTOPEN' in name or 'readonly' in str(err) or 'unable to open' in str(err):
        why = []
        if found:
            why.append('found %s' % found)
        if not os.access(folder, os.W_OK):
            why.append('its folder %s is not writable by uid %d' % (folder, os.geteuid()))
        if state['shm'] and not os.access(real + '-shm', os.W_OK):
            why.append('its %s-shm is not writable by uid %d' % (real, os.geteuid()))
        return ('Database %s cannot be opened for reading: SQLite says "%s" (%s). The database itself is not '
                'corrupt (that is not what this error means); nothing was changed. Run as the database\'s owner (become_user), or let the app open it '
                'once so it recovers its own files.' % (path, err, '; '.join(why) or 'permissions'))
    if 'CORRUPT' in name or 'NOTADB' in name or 'malformed' in str(err) or 'not a database' in str(err):
        return ('Database %s is damaged: SQLite says "%s"%s. Nothing was changed. Check it with PRAGMA '
                'integrity_check; restore a backup only if that confirms the damage.'
                % (path, err, (' (beside it: %s)' % found) if found else ''))
    return ('Database %s cannot be read: SQLite says "%s"%s. Nothing was changed.'
            % (path, err, (' (beside it: %s)' % found) if found else ''))


class ReadOnly:
    """A read-only connection (``.conn``) that created nothing beside the database; see :func:`open_readonly`.

    ``how``: shared / immutable / private-copy; ``note``: what was recovered (None if nothing).
    """

    def __init__(self, path, busy_timeout_ms=5000, *, trust=True, tmp_dir=None):
        self.path = path
        self.conn = None
        self._lock_fd = None
        self._folder = None
        self.plan = read_plan(path, busy_timeout_ms, trust=trust)
        self.how, self.note = self.plan.how, self.plan.note
        self.real = self.plan.real
        self._ids = None
        try:
            if self.how == 'private-copy':
                self._folder, copy = private_copy(self.plan, tmp_dir)
                self.conn = connect(copy, busy_timeout_ms, mode='ro', trust=False)
            elif self.how == 'immutable':
                self._lock_fd = os.open(self.real, os.O_RDONLY | os.O_NONBLOCK)
                fcntl.lockf(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST)
                self._ids = self._identities()
                self.conn = connect(self.real, 0, mode='ro', immutable=True, trust=False)
            else:
                self.conn = connect(self.real, busy_timeout_ms, mode='ro', trust=False)
            self.conn.execute('PRAGMA query_only=1')
        except sqlite3.DatabaseError as e:
            self.close()
            if is_locked_error(e):
                raise DbfixError(locked_message(path, busy_timeout_ms, e)) from e
            raise DbfixError(explain_open_error(path, e, self.plan.state)) from e
        except OSError as e:
            self.close()
            raise DbfixError('Database %s became busy while being opened (%s). Retry.' % (path, e)) from e
        except BaseException:
            self.close()
            raise

    def _identities(self):
        return tuple(_file_id(self.real + s) for s in ('', '-wal', '-journal'))

    def stable(self):
        """True unless an immutable read may have raced a writer (the database or a side file changed)."""
        return self._ids is None or self._identities() == self._ids

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_readonly(path, busy_timeout_ms=5000, *, trust=True, tmp_dir=None):
    """Open ``path`` for reading so that nothing appears or changes beside it (no -wal/-shm, no journal rollback).

    Use as ``with open_readonly(p) as ro: ro.conn.execute(...)``. Raises DbfixError (untrusted files, not a
    database, locked, unreadable: the message says what was found). See :func:`read_consistent` for reads that
    must also be retried when a writer started during an immutable read.
    """
    return ReadOnly(path, busy_timeout_ms, trust=trust, tmp_dir=tmp_dir)


def read_consistent(path, fn, busy_timeout_ms=5000, *, trust=True, tries=5):
    """``fn(conn)`` on a read-only open of ``path`` (see open_readonly), retried if the database changed meanwhile."""
    for _attempt in range(tries):
        with open_readonly(path, busy_timeout_ms, trust=trust) as ro:
            result = fn(ro.conn)
            if ro.stable():
                return result
    raise DbfixError('Database %s kept changing while being read (a writer started). Retry.' % path)


# --------------------------------------------------------------------------- snapshot copy


class _ShmHeader:
    __slots__ = ('mx_frame', 'n_backfill', 'n_page', 'page_size', 'raw', 'salt')


def _read_shm_header(shm_fd):
    """Read the wal-index header (both copies) and nBackfill; None if not usable."""
    buf = os.pread(shm_fd, 136, 0)
    if len(buf) < 136:
        return None
    h1, h2 = buf[0:48], buf[48:96]
    if h1 != h2 or buf[12] != 1:  # torn read or not initialised
        return None
    iversion = struct.unpack('=I', h1[0:4])[0]
    if iversion != 3007000:
        return None
    hdr = _ShmHeader()
    hdr.raw = h1
    psz = struct.unpack('=H', h1[14:16])[0]
    hdr.page_size = 65536 if psz == 1 else psz
    hdr.mx_frame, hdr.n_page = struct.unpack('=II', h1[16:24])
    hdr.salt = h1[32:40]  # stored as the raw bytes of the WAL header's salts
    hdr.n_backfill = struct.unpack('=I', buf[96:100])[0]
    return hdr


class Snapshot:
    """A pinned, consistent read snapshot of a database and a way to stream its image."""

    def __init__(self, path, busy_timeout_ms=5000, allow_fast=True, *, trust=True, tmp_dir=None):
        self.path = path
        self.real = real_db_path(path)
        self.trust = trust
        self.tmp_dir = tmp_dir
        self.note = None      # what a crashed writer left and how it was recovered (see read_plan)
        self.how = None
        self._folder = None
        self._ids = None
        self.busy_timeout_ms = busy_timeout_ms
        self.conn = None
        self.method = None
        self.journal_mode = None
        self.page_size = None
        self.n_page = None
        self.wal_pages = []   # sorted page numbers with a frame <= mxFrame
        self.wal_frame = {}   # page number -> newest frame index <= mxFrame
        self.allow_fast = allow_fast
        self._fds = []
        self._maps = []
        self._src = None

    # -- opening
    def open(self):
        plan = read_plan(self.path, self.busy_timeout_ms, trust=self.trust)
        self.how, self.note = plan.how, plan.note
        try:
            if plan.how == 'private-copy':
                self._folder, self.real = private_copy(plan, self.tmp_dir)
            if plan.how == 'immutable':
                self._open_immutable()
                return self
            # read-only: this connection never checkpoints or deletes the WAL when it closes
            self.conn = connect(self.real, self.busy_timeout_ms, mode='ro', trust=False)
            self.conn.execute('PRAGMA query_only=1')
            self.journal_mode = self.conn.execute('PRAGMA journal_mode').fetchone()[0].lower()
            if self.journal_mode == 'wal':
                self._open_wal()
            else:
                self._begin()
                self.method = 'snapshot-copy' if self.allow_fast else 'backup-api'
                self.page_size = self.conn.execute('PRAGMA page_size').fetchone()[0]
                self.n_page = self.conn.execute('PRAGMA page_count').fetchone()[0]
        except sqlite3.DatabaseError as e:
            self.close()
            if is_locked_error(e):
                raise DbfixError(locked_message(self.path, self.busy_timeout_ms, e)) from e
            raise DbfixError(explain_open_error(self.path, e, plan.state)) from e
        except BaseException:
            self.close()
            raise
        return self

    def _open_immutable(self):
        """A WAL database nobody has open, with no WAL frames: the file alone is the snapshot (see read_plan)."""
        fd = os.open(self.real, os.O_RDONLY | os.O_NONBLOCK)
        self._fds.append(fd)  # closed in close(), after the connection: our SHARED lock lives on it
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST)
        except OSError as e:
            raise _Unstable() from e
        self._ids = self._identities()
        self.conn = connect(self.real, 0, mode='ro', immutable=True, trust=False)
        self.journal_mode = 'wal'
        self._begin()
        self.method = 'snapshot-copy'
        self.page_size = self.conn.execute('PRAGMA page_size').fetchone()[0]
        self.n_page = self.conn.execute('PRAGMA page_count').fetchone()[0]

    def _identities(self):
        return tuple(_file_id(self.real + s) for s in ('', '-wal', '-journal'))

    def stable(self):
        """False if an immutable read may have raced a writer that started meanwhile (then read again)."""
        return self._ids is None or self._identities() == self._ids

    def _begin(self):
        self.conn.execute('BEGIN')
        # the first read takes the lock / read mark that pins the snapshot
        self.conn.execute('SELECT count(*) FROM sqlite_master').fetchone()

    def _open_wal(self):
        if not self.allow_fast:
            self._begin()
            self.method = 'backup-api'
            return
        try:
            shm_fd = os.open(self.real + '-shm', os.O_RDONLY)
        except OSError:
            self._begin()
            self.method = 'backup-api'
            return
        self._fds.append(shm_fd)
        hdr = None
        for attempt in range(20):
            h1 = _read_shm_header(shm_fd)
            self._begin()
            h2 = _read_shm_header(shm_fd)
            if h1 is not None and h2 is not None and h1.raw == h2.raw:
                hdr = h2
                break
            self.conn.execute('COMMIT')
            time.sleep(0.0005 * attempt)
        if hdr is None:
            # Busy writers: hold the write lock for the moment it takes to pin a snapshot.
            h1 = h2 = None
            try:
                w = connect(self.real, self.busy_timeout_ms)
                try:
                    w.execute('BEGIN IMMEDIATE')
                    try:
                        self._begin()
                        h1 = _read_shm_header(shm_fd)
                        h2 = _read_shm_header(shm_fd)
                    finally:
                        w.execute('ROLLBACK')
                finally:
                    w.close()
            except sqlite3.Error:
                # no write access, or the write lock stayed busy: the backup API needs neither
                if not self.conn.in_transaction:
                    self._begin()
            if h1 is None or h2 is None or h1.raw != h2.raw:
                self.method = 'backup-api'
                return
            hdr = h2
        self.page_size = self.conn.execute('PRAGMA page_size').fetchone()[0]
        count = self.conn.execute('PRAGMA page_count').fetchone()[0]
        if hdr.mx_frame == 0:
            # empty WAL: the header's page size/count are not set; the database file alone is the snapshot
            # (we hold read-lock 0, which keeps any checkpoint from writing to it)
            self.n_page = count
            self.method = 'snapshot-copy'
            return
        if hdr.page_size != self.page_size or hdr.n_page != count:
            self.method = 'backup-api'
            return
        self.n_page = count
        if hdr.mx_frame > hdr.n_backfill:
            try:
                self._map_wal(hdr)
            except _Fallback:
                self.method = 'backup-api'
                return
        self.method = 'snapshot-copy'

    def _map_wal(self, hdr):
        try:
            wal_fd = os.open(self.real + '-wal', os.O_RDONLY)
        except OSError as e:
            raise _Fallback() from e
        self._fds.append(wal_fd)
        self.wal_fd = wal_fd
        psz = self.page_size
        fsz = WAL_FRAME_HEADER + psz
        head = os.pread(wal_fd, WAL_HEADER, 0)
        if len(head) < WAL_HEADER or head[16:24] != hdr.salt:
            raise _Fallback()
        frames = {}
        batch = max(1, CHUNK // fsz)
        i = 1
        while i <= hdr.mx_frame:
            n = min(batch, hdr.mx_frame - i + 1)
            buf = os.pread(wal_fd, n * fsz, WAL_HEADER + (i - 1) * fsz)
            if len(buf) < n * fsz:
                raise _Fallback()
            for k in range(n):
                off = k * fsz
                if buf[off + 8:off + 16] != hdr.salt:
                    raise _Fallback()
                frames[struct.unpack('>I', buf[off:off + 4])[0]] = i + k
            i += n
        self.wal_frame = frames
        self.wal_pages = sorted(frames)

    def _src_fd(self):
        if self._src is None:
            self._src = os.open(self.real, os.O_RDONLY)
            self._fds.append(self._src)
        return self._src

    def close(self):
        # the connection first (SQLite releases its locks itself), then our own descriptors
        if self.conn is not None:
            try:
                if self.conn.in_transaction:
                    self.conn.execute('COMMIT')
            except sqlite3.Error:
                pass
            self.conn.close()
            self.conn = None
        for mm in self._maps:
            mm.close()
        self._maps = []
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        self._src = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # -- streaming
    def image_size(self):
        return self.n_page * self.page_size

    def _patch(self, buf, start, length):
        """Overlay WAL pages (snapshot versions) onto buf holding bytes [start, start+length)."""
        if not self.wal_pages:
            return
        psz = self.page_size
        first = start // psz + 1
        last = (start + length) // psz  # inclusive page number
        lo = bisect.bisect_left(self.wal_pages, first)
        hi = bisect.bisect_right(self.wal_pages, last)
        fsz = WAL_FRAME_HEADER + psz
        mv = memoryview(buf)
        for pg in self.wal_pages[lo:hi]:
            frame = self.wal_frame[pg]
            off = (pg - 1) * psz - start
            n = os.preadv(self.wal_fd, [mv[off:off + psz]], WAL_HEADER + (frame - 1) * fsz + WAL_FRAME_HEADER)
            if n != psz:
                raise _Fallback()

    def stream(self, dst_fd=None, chunk=CHUNK, checksum=True):
        """Copy the snapshot image into ``dst_fd`` (if given) and return its sha256 hex (None if not ``checksum``).

        The bulk copy runs in the kernel (``copy_file_range``, as ``cp`` does) while a second thread reads the
        same bytes, overlays the same WAL pages and hashes them. Both see identical content: pages that are not
        in the WAL map cannot change while the snapshot is held, and WAL pages come from frames that cannot
        change either.
        """
        if self.method != 'snapshot-copy':
            raise _Fallback()
        total = self.image_size()
        h = hashlib.sha256()
        errors = []
        # POSIX locks belong to the process: closing ANY descriptor of the database file (an mmap's private dup
        # included) drops SQLite's SHARED lock, and a rollback-journal writer could then change the file under the
        # copy. So every descriptor we open on it stays open until close(), after the connection is closed.
        src = self._src_fd()

        def hasher():
            try:
                self._hash(src, total, h, chunk)
            except BaseException as e:  # re-raised in the calling thread
                errors.append(e)

        if dst_fd is None:
            hasher()
        elif not checksum:
            self._copy(src, dst_fd, total)
            return None
        else:
            t = threading.Thread(target=hasher)
            t.start()
            try:
                self._copy(src, dst_fd, total)
            finally:
                t.join()
        if errors:
            raise errors[0]
        return h.hexdigest()

    def _hash(self, src, total, h, chunk):
        """sha256 of the snapshot image: straight from the page cache (mmap, no copy) except chunks with WAL pages."""
        on_disk = min(os.fstat(src).st_size, total)
        mm = None
        if on_disk > 0:
            flags = mmap.MAP_SHARED | getattr(mmap, 'MAP_POPULATE', 0)
            mm = mmap.mmap(src, on_disk, flags=flags, prot=mmap.PROT_READ)
            self._maps.append(mm)  # closed in close(): see stream()
        view = memoryview(mm) if mm is not None else memoryview(b'')
        try:
            buf = bytearray(chunk)
            psz = self.page_size
            pos = 0
            while pos < total:
                want = min(chunk, total - pos)
                end = pos + want
                lo = bisect.bisect_left(self.wal_pages, pos // psz + 1)
                touched = lo < len(self.wal_pages) and self.wal_pages[lo] <= end // psz
                if end <= on_disk and not touched:
                    h.update(view[pos:end])
                else:
                    mv = memoryview(buf)[:want]
                    avail = max(0, min(end, on_disk) - pos)
                    mv[:avail] = view[pos:pos + avail]
                    # bytes beyond the file's end must all come from the WAL
                    for off in range(avail - avail % psz, want, psz):
                        if (pos + off) // psz + 1 not in self.wal_frame:
                            raise _Fallback()
                    self._patch(mv, pos, want)
                    h.update(mv)
                    del mv
                pos = end
        finally:
            view.release()

    def _copy(self, src, dst, total):
        with _Flusher(dst):
            self._copy_image(src, dst, total)

    def _copy_image(self, src, dst, total):
        pos = 0
        use_cfr = hasattr(os, 'copy_file_range')
        while pos < total:
            if use_cfr:
                try:
                    n = os.copy_file_range(src, dst, min(total - pos, COPY_STEP), pos, pos)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
                        raise
                    use_cfr = False
                    continue
            else:
                data = os.pread(src, min(total - pos, CHUNK), pos)
                n = os.pwrite(dst, data, pos) if data else 0
            if n == 0:
                break  # end of the database file: the rest comes from the WAL
            pos += n
        psz = self.page_size
        fsz = WAL_FRAME_HEADER + psz
        for pg in self.wal_pages:
            off = (pg - 1) * psz
            if off >= total:
                break
            page = os.pread(self.wal_fd, psz, WAL_HEADER + (self.wal_frame[pg] - 1) * fsz + WAL_FRAME_HEADER)
            if len(page) != psz:
                raise _Fallback()
            os.pwrite(dst, page, off)
        os.ftruncate(dst, total)


class _Flusher:
    """Write a file back to disk while another thread is still filling it.

    A thread calls ``fdatasync`` in a loop until the copy is done, so the disk works while the copy runs instead
    of after it (the caller's final fsync then only waits for the tail). ``fdatasync`` and ``copy_file_range``
    both release the GIL. An error of the flusher (EIO, ENOSPC at writeback) is re-raised when the copy ends:
    Linux reports a writeback error once per open file, so an error swallowed here would never reach the
    final fsync and a damaged backup would be renamed into place.
    """

    def __init__(self, fd):
        self.fd = fd
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name='dbfix-flusher', daemon=True)

    def _run(self):
        try:
            while not self.done.is_set():
                os.fdatasync(self.fd)
                self.done.wait(0.005)
        except OSError as e:
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.done.set()
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error
        return False


def _backup_api_copy(snap, tmp_path):
    """Fallback: SQLite's online backup API from the pinned connection."""
    dst = sqlite3.connect(tmp_path, isolation_level=None)
    try:
        snap.conn.backup(dst)
    finally:
        dst.close()


def snapshot_copy(path, dest_file=None, busy_timeout_ms=5000, *, mode=None, uid=None, gid=None, verify='quick',
                  allow_fast=True, before_commit=None, checksum=True, trust=True, replace=True, tmp_dir=None):
    """Copy a consistent snapshot of ``path``; return a result dict.

    ``checksum`` False: ``sha256`` is None and nothing is hashed (the copy then costs what ``cp`` costs).

    ``dest_file`` None: nothing is written; only the snapshot's sha256/size are
    computed (check mode, skip_unchanged). ``before_commit(info)`` may return
    False to discard the copy (it was unchanged).

    Nothing is created or changed beside ``path`` (see read_plan); ``info['recovered']`` says what a crashed
    writer had left and how its committed state was read (None if nothing). ``replace`` False: never replace an
    existing ``dest_file`` (FileExistsError if one appeared meanwhile). ``trust``: check the files' owners first
    (see _trust.py).
    """
    for _attempt in range(5):
        try:
            return _snapshot_copy_once(path, dest_file, busy_timeout_ms, mode=mode, uid=uid, gid=gid, verify=verify,
                                       allow_fast=allow_fast, before_commit=before_commit, checksum=checksum,
                                       trust=trust, replace=replace, tmp_dir=tmp_dir)
        except _Unstable:
            time.sleep(0.05)
    raise DbfixError('Database %s kept changing while it was copied (a writer started without a -wal). Nothing was '
                     'written; retry.' % path)


def _snapshot_copy_once(path, dest_file, busy_timeout_ms, *, mode, uid, gid, verify, allow_fast, before_commit, checksum,
                        trust, replace, tmp_dir):
    t0 = time.time()
    snap = Snapshot(path, busy_timeout_ms, allow_fast=allow_fast, trust=trust, tmp_dir=tmp_dir).open()
    out = None
    try:
        info = {'journal_mode': snap.journal_mode, 'recovered': snap.note}
        if dest_file is None:
            if snap.method == 'snapshot-copy':
                info['sha256'] = snap.stream(None)
                info['size'] = snap.image_size()
            else:
                info['sha256'] = None
                info['size'] = None
            info['method'] = snap.method
            info['integrity'] = None
            if not snap.stable():
                raise _Unstable()
            return info
        out = AtomicFile(dest_file, 0o600 if mode is None else mode, uid, gid)
        try:
            try:
                info['sha256'] = snap.stream(out.fd, checksum=checksum)
                info['method'] = 'snapshot-copy'
            except _Fallback:
                os.ftruncate(out.fd, 0)
                _backup_api_copy(snap, out.tmp)
                info['sha256'] = sha256_file(out.tmp) if checksum else None
                info['method'] = 'backup-api'
        except sqlite3.DatabaseError as e:
            if is_locked_error(e):
                raise DbfixError(locked_message(path, busy_timeout_ms, e)) from e
            raise DbfixError('Copying %s failed: SQLite says "%s". Nothing was written.' % (path, e)) from e
        except OSError as e:
            raise DbfixError('Writing the backup of %s to %s failed: %s (%s). No partial file was left; free space or choose '
                             'another destination.' % (path, dest_file, os.strerror(e.errno) if e.errno else e, e)) from e
        if not snap.stable():
            raise _Unstable()
        snap.close()  # release the snapshot before the (slow) verification
        info['size'] = os.fstat(out.fd).st_size
        info['integrity'] = None
        if verify != 'none':
            os.fsync(out.fd)
            try:
                info['integrity'] = verify_file(out.tmp, verify)
            except sqlite3.DatabaseError as e:
                info['integrity'] = [str(e)]
            if info['integrity'] != 'ok':
                raise DbfixError('The copy of %s failed %s (%s): %s. The source is corrupt; no backup was written. '
                                 'Repair the database or restore an older backup.'
                                 % (path, 'quick_check' if verify == 'quick' else 'integrity_check', verify,
                                    summarize(info['integrity'])))
        if before_commit is not None and before_commit(info) is False:
            out.abort()
            info['duration_ms'] = int((time.time() - t0) * 1000)
            return info
        try:
            out.commit(replace=replace)
        except FileExistsError:
            raise
        except OSError as e:
            raise DbfixError('Finishing the backup %s of %s failed: %s. No partial file was left.' % (dest_file, path, e)) from e
        info['duration_ms'] = int((time.time() - t0) * 1000)
        return info
    finally:
        if out is not None:
            out.abort()
        snap.close()
