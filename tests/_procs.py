# SPDX-License-Identifier: GPL-3.0-or-later
"""Find and stop the processes a test started under a folder of its own (pm2 daemons and their apps).

pm2's God Daemon detaches from the test (new session, parent 1), so it is found by what it carries: a
PM2_HOME, working folder or command line inside the test's folder. Used by estate teardown and by the
session-end sweep in tests/conftest.py, so that a test run leaves no daemon behind even when it fails.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip('/') + '/') for r in roots)


def processes_under(*roots, env_mark: str | None = None) -> dict[int, str]:
    """{pid: command line} of every process (not this one) whose PM2_HOME, cwd or command line is under ``roots``.

    With ``env_mark`` ("NAME=value"), only processes whose environment holds exactly that entry: on a shared
    machine a new temp folder may belong to another run, and its processes are not ours to stop.
    """
    mark = env_mark.encode() if env_mark else None
    roots = tuple(os.path.realpath(str(r)) for r in roots)
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as fh:
                cmd = fh.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
            with open('/proc/%d/environ' % pid, 'rb') as fh:
                env = fh.read().split(b'\0')
            cwd = os.readlink('/proc/%d/cwd' % pid)
        except OSError:
            continue
        if not cmd or (mark is not None and mark not in env):
            continue
        home = next((e[9:].decode('utf-8', 'replace') for e in env if e.startswith(b'PM2_HOME=')), '')
        if (home and _under(home, roots)) or _under(cwd, roots) or any(_under(w, roots) for w in cmd.split() if w.startswith('/')):
            found[pid] = cmd
    return found


def kill_processes_under(*roots, timeout: float = 10.0, env_mark: str | None = None) -> dict[int, str]:
    """SIGTERM, then SIGKILL after ``timeout`` s, every process under ``roots`` (see processes_under for
    ``env_mark``); returns what was found."""
    found = processes_under(*roots, env_mark=env_mark) if roots else {}
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = set(found)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if os.path.exists('/proc/%d' % p) and not _zombie(p)}
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return found


def _zombie(pid: int) -> bool:
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8', errors='replace') as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except (OSError, IndexError):
        return True
