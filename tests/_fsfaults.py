# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests that prove "every file is as it was" and that need a real filesystem in a bad state.

Importable from every test folder: pytest puts ``tests/`` on ``sys.path`` when it loads ``tests/conftest.py``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

import pytest


def tree(d, meta=False):
    """relative path -> sha256 of every file below ``d``.

    A symlink is recorded as its target text plus the sha256 of what it points at, so both a re-pointed link
    and a changed target are seen. ``-shm`` files are skipped: SQLite's shared memory, which every reader
    updates (read marks). ``meta``: (sha256, mode, mtime_ns) instead, for tests that also promise the file was
    not rewritten with the same bytes.
    """
    res = {}
    for root, _dirs, files in os.walk(d):
        for f in files:
            if f.endswith('-shm'):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, d)
            digest = None
            if os.path.exists(p):
                with open(p, 'rb') as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            value = ('link:%s:%s' % (os.readlink(p), digest)) if os.path.islink(p) else digest
            if meta:
                st = os.lstat(p)
                value = (value, st.st_mode, st.st_mtime_ns)
            res[rel] = value
    return res


@contextlib.contextmanager
def tmpfs(where, options='size=1m'):
    """A real tmpfs mounted at ``where`` (created) for the block; skips the test when mounting is not allowed."""
    where = str(where)
    os.makedirs(where, exist_ok=True)
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', where], capture_output=True, check=False).returncode:
        pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        yield Path(where)
    finally:
        # lazy: a process a failed test left behind must not keep the mount (and the test run) hanging
        subprocess.run(['umount', '-l', where], check=True)


def remount_ro(where):
    subprocess.run(['mount', '-o', 'remount,ro', str(where)], check=True)


def fill(where):
    """Fill the filesystem holding ``where`` to its last block with a file named ``filler``.

    Unbuffered writes, so the ENOSPC is met here and not at close().
    """
    fd = os.open(os.path.join(str(where), 'filler'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b'\0' * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
