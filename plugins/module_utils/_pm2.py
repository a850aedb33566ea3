# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading pm2's state without ever passing its stored environment on.

``pm2 jlist`` prints every process with its whole environment (``pm2_env`` holds
each variable twice: at top level and under ``env``). Everything here reduces a
jlist entry to a small summary of facts, plus the *names* of the stored
variables, so no caller can leak a value by accident.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time

ANSI_RE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

INSTALL_HINT = ('install pm2 with `npm install -g pm2` (or point the executable option at a pm2 binary, '
                'e.g. node_modules/.bin/pm2 of a local install)')

# Variables whose values are not secrets and are too common to be worth masking in log excerpts.
_PLAIN_ENV = frozenset(('PATH', 'HOME', 'PWD', 'OLDPWD', 'SHELL', 'LANG', 'LC_ALL', 'TERM', 'USER', 'LOGNAME', 'SHLVL', 'PM2_HOME',
                        'PM2_USAGE', 'NODE_ENV', 'NODE_APP_INSTANCE', 'HOSTNAME', 'TMPDIR', '_', 'unique_id'))


class JlistError(Exception):
    pass


# Seconds one pm2 CLI call may take (it normally takes well under 2 s).
CALL_TIMEOUT = 90


def strip_ansi(text):
    return ANSI_RE.sub('', text or '')


def _looks_like_jlist(obj):
    return isinstance(obj, list) and all(isinstance(p, dict) and 'name' in p for p in obj)


def parse_jlist(out):
    """The process list from ``pm2 jlist`` output, ignoring banners and noise around the JSON.

    pm2 prints its ASCII-art banner and ``[PM2] Spawning daemon`` lines on stdout when
    it starts a daemon; those contain ``[`` too, so every ``[`` is tried (those at a
    line start first) and the first one that decodes to a list of process objects wins.
    """
    text = strip_ansi(out)
    decoder = json.JSONDecoder()
    starts = [m.end() - 1 for m in re.finditer(r'(?m)^[ \t]*\[', text)]
    first = set(starts)
    others = (m.start() for m in re.finditer(r'\[', text) if m.start() not in first)
    for i in itertools.chain(starts, others):
        try:
            obj, _end = decoder.raw_decode(text, i)
        except ValueError:
            continue
        if _looks_like_jlist(obj):
            return obj
    raise JlistError('no process list (JSON array) found in pm2 jlist output (%d characters)' % len(text))


def pm2_home(explicit=None):
    """The PM2_HOME pm2 will use: the option, else $PM2_HOME, else ~/.pm2."""
    return explicit or os.environ.get('PM2_HOME') or os.path.join(os.path.expanduser('~'), '.pm2')


def daemon_running(home):
    """Whether a pm2 daemon is alive for ``home`` (from its pid file).

    Any pm2 command spawns a daemon when none runs; callers use this to avoid
    that side effect where no daemon means "no processes" anyway (check mode,
    ``absent``).
    """
    try:
        with open(os.path.join(home, 'pm2.pid')) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def summary(proc, now_ms=None):
    """Facts about one jlist entry. Never the environment."""
    env = proc.get('pm2_env') or {}
    status = env.get('status')
    pm_uptime = env.get('pm_uptime')
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    uptime = max(0, now_ms - int(pm_uptime)) if status == 'online' and isinstance(pm_uptime, (int, float)) else 0
    return {
        'name': proc.get('name'),
        'pm_id': proc.get('pm_id', env.get('pm_id')),
        'pid': proc.get('pid') or None,
        'status': status,
        'restarts': int(env.get('restart_time') or 0),
        'unstable_restarts': int(env.get('unstable_restarts') or 0),
        'uptime_ms': uptime,
        'exec_mode': env.get('exec_mode') or '',
        'err_log': env.get('pm_err_log_path'),
    }


def env_names(proc):
    """Sorted names of the variables pm2 stores for the process (values never leave this function)."""
    env = (proc.get('pm2_env') or {}).get('env') or {}
    return sorted(k for k, v in env.items() if not isinstance(v, (dict, list)))


def env_differs(proc, wanted):
    """Names in ``wanted`` whose value differs from (or is missing in) pm2's stored environment."""
    env = (proc.get('pm2_env') or {}).get('env') or {}
    return sorted(k for k, v in wanted.items() if k not in env or str(env[k]) != v)


def secret_values(procs, extra=()):
    """Values to mask in anything shown to the user: the given ones and pm2's stored values."""
    vals = set(v for v in extra if v)
    for p in procs:
        env = (p.get('pm2_env') or {}).get('env') or {}
        for k, v in env.items():
            if isinstance(v, str) and len(v) >= 6 and k not in _PLAIN_ENV:
                vals.add(v)
    return vals


def redact(text, secrets):
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, '********')
    return text


def tail(path, max_lines=20, max_bytes=4096):
    """Last lines of a log file, or a note saying why there are none."""
    if not path:
        return '(pm2 reports no error log path)'
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        return '(cannot read %s: %s)' % (path, e.strerror)
    lines = data.decode('utf-8', 'replace').splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]   # first line is probably cut
    lines = lines[-max_lines:]
    return '\n'.join(lines) if lines else '(%s is empty)' % path


def spawn_lock(home):
    """Serialise pm2 calls that may have to spawn the daemon for ``home``.

    When no daemon runs, every pm2 command spawns one; two commands at once
    (two colors on one machine, Ansible forks) race, and one of them can hang
    for ever waiting on a daemon that the other replaced. Callers hold this
    lock around a pm2 call made while no daemon is up. Returns a file
    descriptor to close, or None where no lock could be taken (the call then
    goes ahead unserialised, as plain pm2 would).
    """
    import fcntl
    import hashlib
    import tempfile

    digest = hashlib.sha256(os.path.abspath(home).encode('utf-8')).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), '.dbfix-pm2-spawn-%s.lock' % digest)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd
