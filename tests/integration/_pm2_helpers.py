# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared parts of the pm2_service tests against real pm2: a private PM2_HOME whose daemon is always killed,
an in-process module run, jlist, a real second local user, and free ports.

Nothing here is a mock. A missing pm2 or node fails the test (``require_tools``); nothing is skipped.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PM2 = os.path.join(ROOT, 'tests', 'tools', 'node_modules', '.bin', 'pm2')
NODE_DIR = os.path.join(HERE, 'node')
ECHO = os.path.join(NODE_DIR, 'echo_env.js')
IDLE = os.path.join(NODE_DIR, 'idle.js')
CRASH_SECRETS = os.path.join(NODE_DIR, 'crash_secrets.js')


def require_tools():
    assert os.path.exists(PM2), 'pm2 missing at %s: run `make node-tools`' % PM2
    assert shutil.which('node'), 'node is not on PATH'


def pm2_env(home):
    return dict(os.environ, PM2_HOME=home)


def god_pid(home):
    try:
        with open(os.path.join(home, 'pm2.pid')) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kill_home(home):
    """`pm2 kill` with a timeout, then SIGKILL the God daemon if it is still alive, then remove the folder."""
    pid = god_pid(home)
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run([PM2, 'kill'], env=pm2_env(home), capture_output=True, timeout=60, check=False)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def private_home(prefix='pm2h3-'):
    # short path under /tmp: pm2's unix sockets must fit in 107 bytes
    home = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    try:
        yield home
    finally:
        kill_home(home)


def run_module(module, args, check=False):
    """Run the module in-process through its real exit_json/fail_json and return the result."""
    _warnings._global_warnings.clear()
    _warnings._global_deprecations.clear()
    args = dict(args, _ansible_check_mode=check)
    buf = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        module.main()
    return json.loads(buf.getvalue())


def jlist(home):
    out = subprocess.run([PM2, 'jlist'], env=pm2_env(home), capture_output=True, text=True, check=True, timeout=120).stdout
    return _pm2.parse_jlist(out)    # skips the banner a first call prints


def statuses(home):
    return {str(p['name']): p['pm2_env']['status'] for p in jlist(home)}


def pm2(home, *args, env=None):
    e = pm2_env(home)
    e.update(env or {})
    return subprocess.run([PM2, *args], env=e, capture_output=True, text=True, timeout=120, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def second_user():
    """A real local user (useradd, no home, no login shell), removed with userdel afterwards (see tests/_otherusers.py).

    Processes started as this user (``as_user``) must be ended by the test, by their pid, before it returns.
    """
    return local_user('dbfixh3p')


def as_user(pw, code, **kw):
    """Start ``python3 -c code`` as user ``pw`` (its uid and gid, no supplementary groups)."""
    return subprocess.Popen(['/usr/bin/python3', '-c', code], user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd='/', **kw)
