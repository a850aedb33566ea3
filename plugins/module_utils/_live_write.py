# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Our own writes to a live SQLite database, and the WAL-reset bug (issue 14).

The bug (_sqlite_version.BUG_URL) needs WAL mode and two connections that write
or checkpoint one database at the same time: a checkpoint misses that a commit
reset the WAL. Our modules run on the host's Python, whose SQLite is the
system's (3.40.1 on Debian 12, affected). So a commit or checkpoint of ours on a
WAL database that an app process holds open at that moment is a participant.

The rule here: with an affected host SQLite and a WAL database, our connection
may write only while no other process can write to the file: the owning pm2
apps are stopped first (``quiesce``), the holders are read again from /proc, and
the write is refused when any process still holds the file for writing.
A process that holds the database file only read-only (O_RDONLY, e.g. a
``mode=ro`` reader such as the monitor) can neither commit nor checkpoint and is
not counted. Stdlib only.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles, _pm2
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V

POLL = 0.2


def _fd_writable(fdinfo_path):
    """True when the fd was opened for writing (flags in /proc/PID/fdinfo/FD, octal); True when unknown."""
    try:
        with open(fdinfo_path) as f:
            for line in f:
                if line.startswith('flags:'):
                    return (int(line.split()[1], 8) & 0o3) != os.O_RDONLY
    except (OSError, ValueError, IndexError):
        pass
    return True


def writers(real, proc_root='/proc'):
    """``(holders, readers, unreadable)`` of the database file ``real`` (other processes only).

    ``holders`` are processes with the file open for writing (each ``{pid, command, path}``), ``readers`` the pids
    that hold it read-only; ``unreadable`` counts processes whose fd table could not be read.
    """
    found, unreadable = _openfiles.holders([real], proc_root)
    try:
        st = os.stat(real)
        ident = (st.st_dev, st.st_ino)
    except OSError:
        return found, [], unreadable
    out, readers = [], []
    for h in found:
        fd_dir = os.path.join(proc_root, str(h['pid']), 'fd')
        writable = False
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            fds, writable = [], True
        for fd in fds:
            try:
                s = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if (s.st_dev, s.st_ino) == ident and _fd_writable(os.path.join(proc_root, str(h['pid']), 'fdinfo', fd)):
                writable = True
                break
        (out.append(h) if writable else readers.append(h['pid']))
    return out, readers, unreadable


def needs_guard(is_wal, version=None):
    """True when a write of ours could take part in the WAL-reset race (affected host SQLite, WAL database)."""
    return bool(is_wal) and bool(V.affected(version or V.host_version()))


def refusal(path, holders, version=None, stopped=(), apps_given=False):
    """The message for a write refused because ``holders`` still have ``path`` open."""
    version = version or V.host_version()
    pids = ', '.join('pid %s (%s)' % (h['pid'], (h.get('command') or '?')[:80]) for h in holders[:5])
    if stopped:
        how = ('The pm2 app(s) %s were stopped for the write and started again, but these processes still hold it. '
               % (', '.join(stopped)))
    elif apps_given:
        how = 'The pm2 app(s) given in quiesce did not hold it; '
    else:
        how = ('Pass quiesce (the pm2 app(s) owning this database; sqlite_migrate stops them for the write) or stop them first. ')
    return ('Refusing to write to %s while other processes have it open for writing (%s): this host\'s Python uses SQLite %s, '
            'which has the WAL-reset bug (%s), and the database is in WAL mode, so a commit or checkpoint of ours racing '
            'theirs can corrupt it. %sAlternatively stop the other color, use the app\'s own migrator (its own SQLite), or %s '
            '(nearest fixed: %s) for the Python that runs the modules. Nothing was changed.'
            % (path, pids, version, V.BUG_URL, how, V.UPGRADE_HINT, V.fixed_alternative(version)))


# --------------------------------------------------------------------------- pm2 CLI


def pm2_exe(module, exe):
    exe = exe or 'pm2'
    if os.path.isabs(exe):
        return exe if os.access(exe, os.X_OK) else None
    return module.get_bin_path(exe)


def pm2_call(module, app, *args):
    """Run ``pm2 ARGS`` for ``app`` ({name, pm2_home, executable}); returns (rc, out, err). Bounded by a timeout."""
    exe = pm2_exe(module, app.get('executable'))
    if not exe:
        return 127, '', 'pm2 executable %r not found' % (app.get('executable') or 'pm2')
    cmd = [exe, *args]
    timeout = shutil.which('timeout')
    if timeout:
        cmd = [timeout, '--kill-after=10', str(_pm2.CALL_TIMEOUT), *cmd]
    home = _pm2.pm2_home(app.get('pm2_home') or None)
    rc, out, err = module.run_command(cmd, environ_update={'PM2_HOME': home})
    return rc, out, _pm2.strip_ansi(err or '')


def app_process(module, app):
    """The jlist entry summary of ``app`` (None when pm2 does not know it); raises RuntimeError when pm2 fails."""
    if not _pm2.daemon_running(_pm2.pm2_home(app.get('pm2_home') or None)):
        return None  # no daemon, no process; asking pm2 would start a daemon as a side effect
    rc, out, err = pm2_call(module, app, 'jlist')
    if rc != 0:
        raise RuntimeError('pm2 jlist failed for %s (rc=%d): %s' % (app['name'], rc, (err or out).strip()[-400:]))
    try:
        procs = _pm2.parse_jlist(out)
    except _pm2.JlistError as e:
        raise RuntimeError('cannot read pm2 jlist for %s: %s' % (app['name'], e)) from e
    for proc in procs:
        if str(proc.get('name')) == str(app['name']):
            return _pm2.summary(proc)
    return None


def stop_apps(module, apps):
    """Stop every online app of ``apps``; returns the names stopped. Raises RuntimeError naming the app on failure."""
    stopped = []
    for app in apps:
        proc = app_process(module, app)
        if proc is None or proc['status'] != 'online':
            continue
        rc, out, err = pm2_call(module, app, 'stop', str(app['name']))
        if rc != 0:
            raise RuntimeError('pm2 stop %s failed (rc=%d): %s' % (app['name'], rc, (err or out).strip()[-400:]))
        stopped.append(str(app['name']))
    return stopped


def start_apps(module, apps, names):
    """Start again the apps of ``names`` (best effort); returns the problems as strings."""
    problems = []
    for app in apps:
        if str(app['name']) in names:
            rc, out, err = pm2_call(module, app, 'start', str(app['name']))
            if rc != 0:
                problems.append('pm2 start %s failed (rc=%d): %s' % (app['name'], rc, (err or out).strip()[-200:]))
    return problems


def wait_released(real, timeout):
    """Poll until no other process holds ``real`` for writing, or the deadline passes; returns the last holders."""
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        holders = writers(real)[0]
        if not holders or time.monotonic() >= deadline:
            return holders
        time.sleep(POLL)


def guard(module, real, path, *, is_wal, apps, timeout, check_mode, version=None):
    """Make a write of ours to ``real`` safe, or say why not.

    Returns ``(info, refusal_message)``. ``info``: {needed, host_sqlite, holders, readers, stopped, would_stop}.
    In check mode nothing is stopped: ``would_stop`` names what a real run would stop.
    """
    version = version or V.host_version()
    info = dict(needed=False, host_sqlite=version, holders=[], readers=[], stopped=[], would_stop=[], unreadable=0)
    if not needs_guard(is_wal, version):
        return info, None
    holders, readers, unreadable = writers(real)
    info['readers'] = readers
    info['unreadable'] = unreadable
    info['holders'] = [h['pid'] for h in holders]
    if not holders:
        return info, None
    info['needed'] = True
    if not apps:
        return info, refusal(path, holders, version)
    if check_mode:
        try:
            info['would_stop'] = [str(a['name']) for a in apps if (app_process(module, a) or {}).get('status') == 'online']
        except RuntimeError as e:
            return info, 'Cannot quiesce the apps of %s: %s. Nothing was changed.' % (path, e)
        if not info['would_stop']:
            return info, refusal(path, holders, version, apps_given=True)
        return info, None
    try:
        info['stopped'] = stop_apps(module, apps)
    except RuntimeError as e:
        problems = start_apps(module, apps, info['stopped'])
        return info, 'Cannot quiesce the apps of %s before writing: %s. %sNothing was changed.' % (
            path, e, ('Restart problems: %s. ' % '; '.join(problems)) if problems else '')
    left = wait_released(real, timeout) if info['stopped'] else holders
    if left:
        stopped = info['stopped']
        problems = start_apps(module, apps, stopped)
        info['holders'] = [h['pid'] for h in left]
        info['stopped'] = []
        msg = refusal(path, left, version, stopped=stopped, apps_given=True)
        if problems:
            msg += ' Restarting them failed: %s.' % '; '.join(problems)
        return info, msg
    info['holders'] = []
    return info, None


# --------------------------------------------------------------------------- phase 2 preflight


def app_sqlite(module, app):
    """SQLite libraries the process tree of a pm2 app maps: (pid, [{pid, path, version, affected}]); pid None if not running."""
    proc = app_process(module, app)
    if proc is None or not proc.get('pid'):
        return None, []
    libs, cache = [], {}
    for pid in _openfiles.children(proc['pid']):
        try:
            for lib in V.process_libraries(pid, cache=cache):
                libs.append(dict(lib, pid=pid, affected=V.affected(lib['version'])))
        except OSError:
            continue
    return proc['pid'], libs
