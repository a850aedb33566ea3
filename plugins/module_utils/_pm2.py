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


# Secret values shorter than this are masked only where they stand alone as a token (see redact()).
SHORT_SECRET = 4
MASK = '********'


def secret_values(procs, extra=()):
    """Values to mask in anything shown to the user: the given ones and every value pm2 stores for ``procs``.

    All lengths count (a 2-character password is still a password); only the variables in ``_PLAIN_ENV``
    (PATH, HOME, ...), which pm2 copies from the shell that started it, are left out.
    """
    vals = set(str(v) for v in extra if v not in (None, ''))
    for p in procs:
        env = (p.get('pm2_env') or {}).get('env') or {}
        for k, v in env.items():
            if isinstance(v, (dict, list)) or v is None or k in _PLAIN_ENV:
                continue
            if str(v):
                vals.add(str(v))
    return vals


def redact(text, secrets):
    """``text`` with every secret replaced by ``********``.

    A secret of SHORT_SECRET (4) or more characters is masked wherever it occurs. A shorter one (``1``,
    ``ab``) is masked only where it stands alone, not inside a longer word or number (``KEY=ab`` is masked,
    ``about`` and ``1024`` are not): masking every ``1`` would make the message unreadable while the secret
    itself, standing alone, is still hidden.
    """
    text = text or ''
    longs = sorted((s for s in secrets if s and len(s) >= SHORT_SECRET), key=len, reverse=True)
    for s in longs:
        text = text.replace(s, MASK)
    shorts = sorted((s for s in secrets if s and len(s) < SHORT_SECRET), key=len, reverse=True)
    if shorts:
        pattern = re.compile(r'(?<![A-Za-z0-9])(?:%s)(?![A-Za-z0-9])' % '|'.join(re.escape(s) for s in shorts))
        text = pattern.sub(MASK, text)
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


class SpawnLockError(Exception):
    """The spawn lock cannot be used safely or was not free in time; the message says which lock and why."""


LOCK_NAME = 'dbfix-spawn.lock'


def lock_path(home):
    """Where the spawn lock for ``home`` lives: inside PM2_HOME, which only its owner can write.

    Until 1.x it was a predictable name in /tmp, where any local user could create it first (and hold it,
    hanging every pm2_service run) or plant a symlink that the module then followed.
    """
    return os.path.join(os.path.abspath(home), LOCK_NAME)


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return '?'


def _who(uid):
    try:
        import pwd
        return '%s (uid %d)' % (pwd.getpwuid(uid).pw_name, uid)
    except (KeyError, ImportError):
        return 'uid %d' % uid


def lock_holders(fd):
    """``pid N (command, user)`` of each process holding a lock on the file of ``fd``, from /proc/locks."""
    try:
        st = os.fstat(fd)
        with open('/proc/locks') as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if '->' in parts:          # a waiter, not a holder
            continue
        try:
            i = next(j for j, t in enumerate(parts) if t.count(':') == 2)
            major, minor, ino = parts[i].split(':')
            pid = int(parts[i - 1])
        except (StopIteration, ValueError):
            continue
        if int(ino) != st.st_ino or os.makedev(int(major, 16), int(minor, 16)) != st.st_dev:
            continue
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()[:120]
            who = _who(os.stat('/proc/%d' % pid).st_uid)
        except OSError:
            cmd, who = '?', '?'
        out.append('pid %d (%s, user %s)' % (pid, cmd or '?', who))
    return out


def _lock_dir(home):
    """Make sure PM2_HOME exists (created 0700 when missing, as pm2 would create it on first use)."""
    home = os.path.abspath(home)
    if not os.path.isdir(home):
        try:
            os.makedirs(home, mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    return home


def spawn_lock(home, timeout=60.0):
    """Serialise pm2 calls that may have to spawn the daemon for ``home``.

    When no daemon runs, every pm2 command spawns one; two commands at once
    (two colors on one machine, Ansible forks) race, and one of them can hang
    for ever waiting on a daemon that the other replaced. Callers hold this
    lock around a pm2 call made while no daemon is up.

    The lock is ``PM2_HOME/dbfix-spawn.lock``: opened without following a
    symlink, refused when it is not a regular file owned by the effective
    user, and waited for at most ``timeout`` seconds. Returns a file
    descriptor to close, or None where PM2_HOME cannot be created (pm2 then
    reports that itself); raises SpawnLockError with an operator message.
    """
    import fcntl
    import stat

    if _lock_dir(home) is None:
        return None
    path = lock_path(home)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if os.path.islink(path):
            raise SpawnLockError('refusing the pm2 spawn lock %s: it is a symlink (to %s), and following it would let '
                                 'whoever planted it choose the file this module locks and creates. Remove the link '
                                 '(`rm %s`) and check who can write to %s.' % (path, _readlink(path), path, os.path.dirname(path))) from None
        raise SpawnLockError('cannot open the pm2 spawn lock %s: %s. Check the owner and mode of %s.'
                             % (path, e.strerror, os.path.dirname(path))) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpawnLockError('refusing the pm2 spawn lock %s: it is not a regular file (mode %o). Remove it and '
                                 'run again.' % (path, st.st_mode))
        if st.st_uid != os.geteuid():
            raise SpawnLockError('refusing the pm2 spawn lock %s: it is owned by %s, not by %s who runs pm2; another '
                                 'user could hold it and block this module. Remove it (`rm %s`) and check who can write '
                                 'to %s.' % (path, _who(st.st_uid), _who(os.geteuid()), path, os.path.dirname(path)))
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        deadline = time.monotonic() + max(0.0, float(timeout))
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                pass
            now = time.monotonic()
            if now >= deadline:
                holders = lock_holders(fd)
                raise SpawnLockError('the pm2 spawn lock %s was not free within %s s; held by %s. pm2_service holds it '
                                     'only while a pm2 command starts a daemon; if that process is stuck, stop it, then '
                                     'run again.' % (path, timeout, ', '.join(holders) or 'a process that /proc/locks does not show'))
            time.sleep(min(delay, deadline - now))
            delay = min(0.25, delay * 2)
    except BaseException:
        os.close(fd)
        raise


# -- names ----------------------------------------------------------------------------------------
_JS_NUMBER = re.compile(r'^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)$|^0[xX][0-9a-fA-F]+$|^0[bB][01]+$|^0[oO][0-7]+$')
CONFIG_FILE_MARKS = ('.json', '.yml', '.yaml', '.config.js', '.config.cjs', '.config.mjs')


def js_numeric(name):
    """Whether JavaScript's ``isNaN(name)`` is false, i.e. pm2 takes ``name`` for a process id."""
    t = name.strip(' \t\n\r\x0b\x0c\u00a0\ufeff')
    return t == '' or bool(_JS_NUMBER.match(t))


def name_problem(name):
    """Why pm2's CLI would not read ``name`` as exactly the process of that name, or None when it would.

    pm2 7's stop/restart/reload/delete take ``all`` for every process, ``/re/`` for a regular expression,
    a number-like argument for a pm_id, a name containing ``.json``/``.yml``/``.config.js``... for an
    ecosystem file, and an argument starting with ``-`` for an option.
    """
    if name == 'all':
        return "pm2 reads `all` as every process"
    if name.startswith('-'):
        return 'pm2 reads an argument starting with "-" as an option'
    if name.startswith('/') and name.endswith('/'):
        return 'pm2 reads /.../ as a regular expression over all process names'
    if js_numeric(name):
        return 'pm2 reads a number-like name as a process id'
    for mark in CONFIG_FILE_MARKS:
        if mark in name:
            return 'pm2 reads a name containing %s as an ecosystem file' % mark
    return None


def invalid_name(name):
    """Why ``name`` cannot be a pm2 process name at all, or None."""
    if not name or not name.strip():
        return 'it is empty'
    if name != name.strip():
        return 'it starts or ends with white space, which is easy to get wrong and shows nowhere'
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127]
    if bad:
        return 'it contains the control character %r' % bad[0]
    return None


# -- dump files -----------------------------------------------------------------------------------
DUMP_FILES = ('dump.pm2', 'dump.pm2.bak')


def dump_problems(home):
    """Why pm2's dump files in ``home`` must not be written (symlink, not a regular file, other owner)."""
    import stat
    out = []
    for n in DUMP_FILES:
        path = os.path.join(home, n)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            out.append('%s is a symlink (to %s): `pm2 save` would write every process environment to its target'
                       % (path, _readlink(path)))
        elif not stat.S_ISREG(st.st_mode):
            out.append('%s is not a regular file' % path)
        elif st.st_uid != os.geteuid():
            out.append('%s is owned by %s, not by %s who runs pm2' % (path, _who(st.st_uid), _who(os.geteuid())))
    return out


def tighten_dump_files(home, create=False):
    """Make pm2's dump files readable by their owner only (they hold every process environment).

    ``create`` creates a missing file empty with mode 0600 first, so pm2 writes into a private file
    instead of creating one with its umask. Never follows a symlink. Returns the paths whose mode changed.
    """
    import stat
    changed = []
    for n in DUMP_FILES:
        path = os.path.join(home, n)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if not create:
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError:
                continue
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o600)
                changed.append(path)
        finally:
            os.close(fd)
    return changed
