# SPDX-License-Identifier: GPL-3.0-or-later
"""A real second local user for a test: created with ``useradd``, removed (with its group) in teardown.

Importable from every test folder as ``ansible_collections.bluegreen.dbfix.tests._localusers``. Needs root; a test
that needs one fails (it does not skip) when ``useradd`` is missing or not allowed.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import time


def _run_retrying(cmd, deadline_s=60):
    """useradd/userdel fail with 'cannot lock /etc/passwd' while another test holds the lock: retry, bounded."""
    end = time.monotonic() + deadline_s
    while True:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=deadline_s)
        if p.returncode == 0 or time.monotonic() > end or 'lock' not in (p.stderr + p.stdout).lower():
            return p
        time.sleep(0.2)


@contextlib.contextmanager
def local_user(prefix='dbfixu'):
    """Yield the ``pwd`` entry of a new system user without a home; removed afterwards."""
    name = ('%s%d%04d' % (prefix, os.getpid() % 100000, time.monotonic_ns() % 10000))[:31]
    p = _run_retrying(['useradd', '-M', '-r', '-U', '-s', '/usr/sbin/nologin', name])
    assert p.returncode == 0, 'useradd %s failed: %s%s' % (name, p.stdout, p.stderr)
    try:
        yield pwd.getpwnam(name)
    finally:
        _run_retrying(['userdel', name])
        with contextlib.suppress(KeyError):
            import grp
            grp.getgrnam(name)
            _run_retrying(['groupdel', name])
