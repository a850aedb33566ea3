# SPDX-License-Identifier: GPL-3.0-or-later
"""Real second (and third) local users for tests, and a module run as one of them: the one home of the
second-user helpers (tests/integration/_pm2_helpers.py re-uses ``local_user``).

``local_user()`` creates a user with ``useradd`` (its own group, no home, no login shell) and removes it with
``userdel`` afterwards, whatever happened. ``run_module_as()`` runs a module the way Ansible runs it without
``become``: a separate process with that user's uid/gid and no supplementary groups, through the system Python
(the modules need only the standard library plus ansible-core, taken from the test venv's site-packages).
``reader_as()`` starts a process as that user which keeps trying to read every file in a folder, so tests can
prove that no file holding a secret was readable by another user, not even for a moment.

Needs root (useradd, switching uid). A missing tool fails the test; nothing is skipped.
Importable from every test folder: pytest puts ``tests/`` on ``sys.path`` when it loads ``tests/conftest.py``.
"""
from __future__ import annotations

import collections
import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = '/usr/bin/python3'
SITE = os.path.join(ROOT, '.venv', 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages')


class User(collections.namedtuple('User', 'name uid gid')):
    """A test user; also answers to the ``pwd`` names (``pw_name``, ``pw_uid``, ``pw_gid``)."""

    __slots__ = ()

    @property
    def pw_name(self):
        return self.name

    @property
    def pw_uid(self):
        return self.uid

    @property
    def pw_gid(self):
        return self.gid


def _retry(cmd, deadline=60.0):
    """useradd/userdel take a lock on /etc/passwd; other tests on this machine may hold it for a moment."""
    end = time.monotonic() + deadline
    while True:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode == 0:
            return proc
        if time.monotonic() > end or 'lock' not in ((proc.stderr or '') + (proc.stdout or '')).lower():
            return proc
        time.sleep(0.3)


@contextlib.contextmanager
def local_user(prefix='dbfixh4'):
    """A fresh local user (and its own group, no home, no login shell); removed again, with its group, on exit."""
    name = ('%s%s' % (prefix, secrets.token_hex(3)))[:31]
    proc = _retry(['useradd', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', name])
    assert proc.returncode == 0, 'useradd %s failed: %s%s' % (name, proc.stdout, proc.stderr)
    try:
        pw = pwd.getpwnam(name)
        yield User(name, pw.pw_uid, pw.pw_gid)
    finally:
        proc = _retry(['userdel', name])
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            _retry(['groupdel', name])
        assert proc.returncode == 0, 'userdel %s failed: %s' % (name, proc.stderr)


@contextlib.contextmanager
def shared_tmpdir(prefix='dbfix-h4-'):
    """A folder other users can enter (pytest's tmp_path lives under a 0700 folder); removed on exit."""
    d = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_user(user):
    """Popen keyword arguments that run a process as ``user`` with no supplementary groups."""
    return {'user': user.uid, 'group': user.gid, 'extra_groups': []}


def run_module_as(user, module, args, workdir, *, check=False, diff=False):
    """Run ``bluegreen.dbfix.<module>`` as ``user`` in a new process; returns its JSON result."""
    assert os.path.exists(SYSTEM_PYTHON), 'no system python3 the other user can run'
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    argfile = os.path.join(workdir, '.args-%s.json' % secrets.token_hex(4))
    fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': '%s:%s' % (SITE, os.path.join(ROOT, '.collections')), 'HOME': workdir,
           'LANG': 'C.UTF-8'}
    try:
        proc = subprocess.run([SYSTEM_PYTHON, '-m', 'ansible_collections.bluegreen.dbfix.plugins.modules.' + module, argfile],
                              env=env, cwd=workdir, **as_user(user), capture_output=True, text=True, timeout=120, check=False)
    finally:
        os.unlink(argfile)
    assert 'Traceback' not in proc.stderr, proc.stderr
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('module printed no JSON (rc %d): %s %s' % (proc.returncode, proc.stdout, proc.stderr)) from None


READER = r'''
import json, os, sys, time
folder, stop, marker = sys.argv[1], sys.argv[2], sys.argv[3].encode()
hits, names, opened, refused = [], set(), 0, 0
end = time.monotonic() + 300
print('ready', flush=True)
while not os.path.exists(stop) and time.monotonic() < end:
    try:
        entries = os.listdir(folder)
    except OSError:
        continue
    for n in entries:
        names.add(n)
        try:
            fd = os.open(os.path.join(folder, n), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            refused += 1
            continue
        opened += 1
        try:
            data = b''
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
        except OSError:
            data = b''
        finally:
            os.close(fd)
        if marker in data:
            hits.append(n)
print(json.dumps({'hits': hits, 'names': sorted(names), 'opened': opened, 'refused': refused}), flush=True)
'''


@contextlib.contextmanager
def reader_as(user, folder, marker):
    """A process as ``user`` that reads every file in ``folder`` in a tight loop until the block ends.

    Yields a dict that, after the block, holds ``hits`` (names of files whose content held ``marker``),
    ``names`` (every name it saw), ``opened`` and ``refused`` (open attempts that succeeded / were denied).
    """
    stop = os.path.join(os.path.dirname(folder), '.stop-%s' % secrets.token_hex(4))
    proc = subprocess.Popen([SYSTEM_PYTHON, '-c', READER, folder, stop, marker], **as_user(user),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={'PATH': '/usr/bin:/bin'})
    report = {}
    try:
        assert proc.stdout.readline().strip() == 'ready', proc.stderr.read()
        yield report
    finally:
        open(stop, 'w').close()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
        os.unlink(stop)
    assert proc.returncode == 0, err
    report.update(json.loads(out.strip().splitlines()[-1]))
