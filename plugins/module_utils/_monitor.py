# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Health checks of a blue/green pair on one shared SQLite file, and how they are reported.

Used twice: by the ``dbfix_check`` module (on demand, rows returned to Ansible)
and by the checker the ``monitor`` role installs on each host (on a timer): the
role copies this file, ``_sqlite_version.py``, ``_openfiles.py``, ``_pm2.py``
and ``_sqlite_migrate.py`` next to a small entry script, so the checker needs
nothing but Python's standard library.

One *target* is one color of one pair (an inventory host): its DB path, the
pair's shared DB, how to find its process. Every check gives one row
``{pair, color, check, state, detail}`` with state ``ok``, ``fail`` or ``skip``
(not configured / nothing to look at). Checks of a database file are run once
per file and shared by the colors that reach the same file.

The checker never writes to a database: it opens them read-only
(``mode=ro``, ``query_only``), so it can neither checkpoint nor commit and takes
no part in the WAL-reset race it reports on.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

try:
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles as OF
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2 as P
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_migrate as M
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V
except ImportError:  # the installed checker: these files sit beside this one
    import _openfiles as OF  # type: ignore
    import _pm2 as P  # type: ignore
    import _sqlite_migrate as M  # type: ignore
    import _sqlite_version as V  # type: ignore

CHECKS = ('schema', 'migrations', 'quick_check', 'shared_link', 'process', 'open_files', 'sqlite_library', 'wal_size', 'disk_free')
SQLITE_MAGIC = b'SQLite format 3\x00'
SIDECARS = ('-wal', '-shm', '-journal')
METRIC = 'dbfix_check_ok'
TARGET_DEFAULTS = {
    'pair': '', 'color': '', 'db_path': '', 'shared_db': '', 'expect_shared': True,
    'expect_columns': {}, 'migrations_dir': '', 'migrations_table': 'schema_migrations',
    'pm2_name': '', 'pm2_home': '', 'pm2_executable': 'pm2', 'pid_file': '',
    'wal_max_bytes': 64 * 1024 * 1024, 'backup_dir': '', 'disk_reserve_bytes': 0, 'busy_timeout_ms': 2000,
    'path': '',
}
SETTINGS_DEFAULTS = {
    'targets_dir': '', 'metrics_file': '', 'state_file': '', 'webhook_url': '', 'webhook_timeout': 10,
    'log': 'auto', 'journal_socket': '/run/systemd/journal/socket', 'syslog_socket': '/dev/log',
    'pm2_timeout': 30,
}


class ConfigError(Exception):
    pass


def row(target, check, state, detail=''):
    return {'pair': target['pair'], 'color': target['color'], 'check': check, 'state': state, 'detail': detail}


# --------------------------------------------------------------------------- configuration


def normalize_target(raw, where='target'):
    """A target with defaults filled in; ConfigError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ConfigError('%s must be a mapping, got %r' % (where, raw))
    unknown = sorted(set(raw) - set(TARGET_DEFAULTS))
    if unknown:
        raise ConfigError('%s has unknown keys %s (known: %s)' % (where, ', '.join(unknown), ', '.join(sorted(TARGET_DEFAULTS))))
    t = dict(TARGET_DEFAULTS)
    t.update({k: v for k, v in raw.items() if v is not None})
    for key in ('pair', 'color', 'db_path'):
        if not t[key] or not isinstance(t[key], str):
            raise ConfigError('%s needs %s (a non-empty string), got %r' % (where, key, t[key]))
    for key in ('db_path', 'shared_db', 'migrations_dir', 'backup_dir', 'pid_file', 'pm2_home'):
        if t[key] and not os.path.isabs(t[key]):
            raise ConfigError('%s: %s must be an absolute path, got %r' % (where, key, t[key]))
    if t['expect_shared'] and not t['shared_db']:
        raise ConfigError('%s: expect_shared is true but shared_db is not set' % where)
    cols = t['expect_columns'] or {}
    if not isinstance(cols, dict) or not all(isinstance(c, list) and all(isinstance(x, str) for x in c) for c in cols.values()):
        raise ConfigError('%s: expect_columns must map table names to lists of column names, got %r' % (where, cols))
    t['expect_columns'] = cols
    for key in ('wal_max_bytes', 'disk_reserve_bytes', 'busy_timeout_ms'):
        if isinstance(t[key], bool) or not isinstance(t[key], int) or t[key] < 0:
            raise ConfigError('%s: %s must be a whole number >= 0, got %r' % (where, key, t[key]))
    return t


def load_settings(path):
    """Settings file (JSON) plus the targets in its targets_dir (one JSON file per color)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as e:
        raise ConfigError('cannot read the monitor settings %s: %s' % (path, e.strerror or e)) from e
    except ValueError as e:
        raise ConfigError('monitor settings %s are not JSON: %s' % (path, e)) from e
    if not isinstance(raw, dict):
        raise ConfigError('monitor settings %s must hold a JSON object' % path)
    settings = dict(SETTINGS_DEFAULTS)
    settings.update(raw)
    targets = []
    tdir = settings['targets_dir'] or os.path.join(os.path.dirname(os.path.abspath(path)), 'targets.d')
    try:
        names = sorted(n for n in os.listdir(tdir) if n.endswith('.json') and not n.startswith('.'))
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise ConfigError('cannot list the monitor targets in %s: %s' % (tdir, e.strerror)) from e
        names = []
    for n in names:
        p = os.path.join(tdir, n)
        try:
            with open(p) as f:
                targets.append(normalize_target(json.load(f), p))
        except (OSError, ValueError) as e:
            raise ConfigError('monitor target %s cannot be read: %s' % (p, e)) from e
    return settings, targets


# --------------------------------------------------------------------------- database checks


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _connect_ro(path, busy_timeout_ms):
    """A read-only connection to ``path`` that creates nothing beside it: ``(conn, private_copy_dir or None)``.

    mode=ro: this connection can neither commit nor checkpoint (not even on close). A WAL database that no process
    has open (its ``-wal``/``-shm`` missing) would still get them created by mode=ro, owned by whoever runs the
    check - which can lock the app's own user out of its database. So a closed WAL database with no committed
    frames is read with immutable=1 (the file holds every row), and one with frames but no ``-shm`` (an app that
    crashed) is copied into a private folder (0700, removed by the caller) and read there.
    """
    with open(path, 'rb') as f:
        head = f.read(20)
    wal_mode = len(head) == 20 and head[18] == 2 and head[19] == 2
    wal, shm = _size(path + '-wal'), _size(path + '-shm')
    tmpdir = None
    target, params = path, 'mode=ro'
    if wal_mode and (wal is None or shm is None):
        if not wal:
            params = 'mode=ro&immutable=1'
        else:
            tmpdir = tempfile.mkdtemp(prefix='dbfix-check-')
            target = os.path.join(tmpdir, 'db')
            try:
                for suffix in ('', '-wal'):
                    fd = os.open(target + suffix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, 'wb') as out, open(path + suffix, 'rb') as src:
                        shutil.copyfileobj(src, out)
            except OSError:
                # a copy cut short (disk full, the -wal gone meanwhile) is not left behind
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
    uri = 'file:%s?%s' % (target.replace('?', '%3f').replace('#', '%23'), params)
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000.0, isolation_level=None)
        conn.execute('PRAGMA query_only=1')
    except sqlite3.Error:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return conn, tmpdir


def _db_problem(path):
    """Why ``path`` cannot be checked ('' when it is a readable SQLite file)."""
    if not os.path.lexists(path):
        return '%s does not exist' % path
    if not os.path.exists(path):
        return '%s is a dangling symlink (to %s)' % (path, os.readlink(path))
    if not os.path.isfile(path):
        return '%s is not a regular file' % path
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
    except OSError as e:
        return 'cannot read %s: %s' % (path, e.strerror)
    if head != SQLITE_MAGIC:
        return '%s is not an SQLite database (first bytes %r)' % (path, head)
    return ''


def check_schema(conn, expect):
    missing = []
    for table in sorted(expect):
        cols = [r[1] for r in conn.execute('PRAGMA main.table_info("%s")' % table.replace('"', '""')).fetchall()]
        if not cols:
            missing.append('table %s is missing' % table)
            continue
        lacks = [c for c in expect[table] if c not in cols]
        if lacks:
            missing.append('table %s lacks column%s %s' % (table, 's' if len(lacks) > 1 else '', ', '.join(lacks)))
    return ('fail', '; '.join(missing)) if missing else ('ok', '%d table(s) as expected' % len(expect))


def check_migrations(conn, migrations_dir, table):
    try:
        files = {v: (fn, sha) for v, fn, _full, sha, _text in M.scan(migrations_dir)}
    except M.MigrationError as e:
        return 'fail', e.msg
    cols = [r[1] for r in conn.execute('PRAGMA main.table_info("%s")' % table.replace('"', '""')).fetchall()]
    if not cols:
        if files:
            return 'fail', 'no tracking table %s: none of the %d migration(s) in %s is recorded as applied' % (table, len(files), migrations_dir)
        return 'ok', 'no migrations'
    for c in ('version', 'name', 'sha256'):
        if c not in cols:
            return 'fail', 'table %s has no %s column: it is not a sqlite_migrate tracking table (columns: %s)' % (table, c, ', '.join(cols))
    applied = {r[0]: (r[1], r[2]) for r in conn.execute('SELECT version, name, sha256 FROM "%s" ORDER BY version' % table.replace('"', '""'))}
    problems = []
    for v, (name, sha) in sorted(applied.items()):
        if v not in files:
            problems.append('applied migration %s (%s) has no file in %s' % (v, name, migrations_dir))
        elif files[v][1] != sha:
            problems.append('%s was edited after it was applied (recorded sha256 %s..., file now %s...)' % (files[v][0], str(sha)[:12], files[v][1][:12]))
    pending = [files[v][0] for v in sorted(files) if v not in applied]
    if pending:
        problems.append('not applied: %s' % ', '.join(pending))
    if problems:
        return 'fail', '; '.join(problems)
    return 'ok', '%d applied migration(s) match their files' % len(applied)


def check_quick(conn):
    rows = [r[0] for r in conn.execute('PRAGMA quick_check').fetchall()]
    if rows == ['ok']:
        return 'ok', 'ok'
    text = '; '.join(str(r) for r in rows[:5])
    return 'fail', text[:500]


def check_wal(real, limit):
    try:
        size = os.path.getsize(real + '-wal')
    except OSError:
        size = 0
    if size > limit:
        return 'fail', '%s-wal is %d bytes, over the bound of %d (a reader that never ends blocks checkpoints?)' % (real, size, limit)
    return 'ok', '%d bytes (bound %d)' % (size, limit)


def check_disk(real, backup_dir, reserve):
    where = backup_dir or os.path.dirname(real)
    try:
        st = os.statvfs(where)
    except OSError as e:
        return 'fail', 'cannot stat the backup folder %s: %s' % (where, e.strerror)
    free = st.f_bavail * st.f_frsize
    need = reserve
    for p in (real, real + '-wal'):
        try:
            need += os.path.getsize(p)
        except OSError:
            pass
    if free < need:
        return 'fail', '%s has %d bytes free, one more backup of %s needs %d' % (where, free, real, need)
    return 'ok', '%d bytes free, a backup needs %d' % (free, need)


def db_checks(target, cache):
    """Rows of the checks that look at the color's database file (shared between colors reaching one file)."""
    path = target['db_path']
    problem = _db_problem(path)
    names = ('schema', 'migrations', 'quick_check', 'wal_size', 'disk_free')
    if problem:
        return [row(target, c, 'fail', problem) for c in names]
    real = os.path.realpath(path)
    key = (real, json.dumps(target['expect_columns'], sort_keys=True), target['migrations_dir'], target['migrations_table'],
           target['wal_max_bytes'], target['backup_dir'], target['disk_reserve_bytes'])
    if key not in cache:
        results = {}
        tmpdir = None
        try:
            conn, tmpdir = _connect_ro(real, target['busy_timeout_ms'])
        except (sqlite3.Error, OSError) as e:
            results = {c: ('fail', 'cannot open %s read-only: %s' % (real, e)) for c in names[:3]}
            conn = None
        if conn is not None:
            try:
                cols, mdir = target['expect_columns'], target['migrations_dir']
                for name, fn in (('schema', lambda: check_schema(conn, cols) if cols else ('skip', 'no expect_columns')),
                                 ('migrations', lambda: check_migrations(conn, mdir, target['migrations_table'])
                                  if mdir else ('skip', 'no migrations_dir')),
                                 ('quick_check', lambda: check_quick(conn))):
                    try:
                        results[name] = fn()
                    except sqlite3.Error as e:
                        results[name] = ('fail', 'SQLite says "%s" reading %s' % (e, real))
            finally:
                conn.close()
                if tmpdir:
                    shutil.rmtree(tmpdir, ignore_errors=True)
        results['wal_size'] = check_wal(real, target['wal_max_bytes'])
        results['disk_free'] = check_disk(real, target['backup_dir'], target['disk_reserve_bytes'])
        cache[key] = results
    return [row(target, c, *cache[key][c]) for c in names]


def check_link(target):
    if not target['expect_shared']:
        return row(target, 'shared_link', 'skip', 'the pair is not expected to share one DB')
    path, shared = target['db_path'], target['shared_db']
    if not os.path.exists(shared):
        return row(target, 'shared_link', 'fail', 'the shared DB %s does not exist' % shared)
    if not os.path.islink(path):
        what = 'a regular file' if os.path.isfile(path) else ('missing' if not os.path.lexists(path) else 'not a link')
        return row(target, 'shared_link', 'fail', '%s is %s, not a link to the shared DB %s' % (path, what, shared))
    if not os.path.exists(path) or not os.path.samefile(path, shared):
        return row(target, 'shared_link', 'fail', '%s links to %s, not to the shared DB %s' % (path, os.readlink(path), shared))
    return row(target, 'shared_link', 'ok', '%s -> %s' % (path, shared))


# --------------------------------------------------------------------------- processes


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children(pid, proc_root='/proc'):
    """pid and all its descendants (a wrapper shell or a cluster worker holds the DB too)."""
    parents = {}
    for d in os.listdir(proc_root):
        if not d.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, d, 'stat')) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(')') + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _pm2_pids(target, timeout):
    home = target['pm2_home'] or P.pm2_home()
    if not P.daemon_running(home):
        return None, 'no pm2 daemon runs for PM2_HOME %s' % home
    env = {'PM2_HOME': home, 'HOME': os.path.dirname(home.rstrip('/')) or '/',
           'PATH': os.pathsep.join(filter(None, (os.path.dirname(target['pm2_executable']) if os.path.isabs(target['pm2_executable']) else '',
                                                 os.environ.get('PATH', ''), '/usr/local/bin:/usr/bin:/bin')))}
    kwargs = {}
    try:
        st = os.stat(home)
        if os.geteuid() == 0 and st.st_uid != 0:
            # pm2 as its owner: root must not create root-owned files in the app user's PM2_HOME
            kwargs = {'user': st.st_uid, 'group': st.st_gid, 'extra_groups': []}
    except OSError:
        pass
    try:
        proc = subprocess.run([target['pm2_executable'], 'jlist'], check=False, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd='/', **kwargs)
    except (OSError, subprocess.SubprocessError) as e:
        return None, 'pm2 jlist failed: %s' % e
    if proc.returncode != 0:
        return None, 'pm2 jlist exited %d' % proc.returncode
    try:
        procs = P.parse_jlist(proc.stdout)
    except P.JlistError as e:
        return None, 'pm2 jlist: %s' % e
    mine = [P.summary(p) for p in procs if p.get('name') == target['pm2_name']]
    if not mine:
        return None, 'pm2 (PM2_HOME %s) has no process named %s' % (home, target['pm2_name'])
    down = [m for m in mine if m['status'] != 'online' or not m['pid']]
    if down:
        return None, 'pm2 reports %s %s' % (target['pm2_name'], down[0]['status'])
    return [m['pid'] for m in mine], ''


def find_pids(target, timeout=30):
    """([pid, ...], '') of the color's app process(es) with their children, or (None, why)."""
    if target['pid_file']:
        try:
            with open(target['pid_file']) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            return None, 'cannot read a pid from %s: %s' % (target['pid_file'], e)
        if not _alive(pid):
            return None, 'pid %d from %s is not running' % (pid, target['pid_file'])
        pids = [pid]
    elif target['pm2_name']:
        pids, why = _pm2_pids(target, timeout)
        if pids is None:
            return None, why
    else:
        return None, 'neither pm2_name nor pid_file is set'
    out = []
    for p in pids:
        for c in _children(p):
            if c not in out:
                out.append(c)
    return out, ''


def _allowed_files(target):
    base = os.path.realpath(target['shared_db'] if target['expect_shared'] else target['db_path'])
    allowed = set()
    for p in (base, *(base + s for s in SIDECARS)):
        try:
            st = os.stat(p)
            allowed.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    return base, allowed


def _is_sqlite_fd(fd_path, target_path):
    if target_path.endswith(SIDECARS):
        return True
    try:
        with open(fd_path, 'rb') as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def check_open_files(target, pids):
    """No process of the color holds an SQLite file other than the one it should use; nobody holds the .OLD."""
    base, allowed = _allowed_files(target)
    problems = []
    for pid in pids:
        fd_dir = '/proc/%d/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ESRCH):
                continue
            problems.append('cannot read the open files of pid %d: %s' % (pid, e.strerror))
            continue
        for fd in fds:
            fd_path = os.path.join(fd_dir, fd)
            try:
                st = os.stat(fd_path)
                target_path = os.readlink(fd_path)
            except OSError:
                continue
            if not (st.st_mode & 0o170000 == 0o100000) or (st.st_dev, st.st_ino) in allowed:
                continue
            if _is_sqlite_fd(fd_path, target_path):
                problems.append('pid %d has %s open, an SQLite file other than %s' % (pid, target_path, base))
    old = [target['db_path'] + '.OLD'] + [target['db_path'] + '.OLD' + s for s in SIDECARS]
    found, _unreadable = OF.holders([p for p in old if os.path.exists(p)])
    for h in found:
        msg = 'pid %d has %s open' % (h['pid'], h['path'])
        if not any(msg in p for p in problems):
            problems.append(msg + ' (the copy set aside by phase 2)')
    if problems:
        return 'fail', '; '.join(problems)
    return 'ok', '%d process(es) hold only %s' % (len(pids), base)


def check_library(pids, cache):
    found = {}
    for pid in pids:
        try:
            libs = V.process_libraries(pid, cache=cache)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ESRCH):
                continue
            return 'fail', 'cannot read /proc/%d/maps: %s' % (pid, e.strerror)
        for lib in libs:
            found.setdefault((lib['path'], lib['version'], lib['deleted']), []).append(pid)
    if not found:
        return 'ok', 'no SQLite library mapped'
    bad, good = [], []
    for (path, version, deleted), lib_pids in sorted(found.items(), key=lambda kv: kv[0][0]):
        where = '%s%s (pid %s)' % (path, ' (deleted on disk)' if deleted else '', ', '.join(str(p) for p in lib_pids))
        a = V.affected(version) if version else None
        if a is False:
            good.append('SQLite %s in %s' % (version, where))
        elif a is None:
            bad.append('unknown SQLite version in %s; cannot rule out the WAL-reset bug (%s)' % (where, V.BUG_URL))
        else:
            bad.append('SQLite %s in %s has the WAL-reset bug; %s (nearest: %s)' % (version, where, V.UPGRADE_HINT, V.fixed_alternative(version)))
    if bad:
        return 'fail', '; '.join(bad)
    return 'ok', '; '.join(good)


def process_checks(target, settings, lib_cache):
    pids, why = find_pids(target, settings.get('pm2_timeout', 30))
    if pids is None:
        return [row(target, 'process', 'fail', why),
                row(target, 'open_files', 'skip', 'no running process'),
                row(target, 'sqlite_library', 'skip', 'no running process')]
    return [row(target, 'process', 'ok', 'pid %s' % ', '.join(str(p) for p in pids)),
            row(target, 'open_files', *check_open_files(target, pids)),
            row(target, 'sqlite_library', *check_library(pids, lib_cache))]


def run_checks(targets, settings=None):
    """Every row for every target, in CHECKS order per target."""
    settings = dict(SETTINGS_DEFAULTS, **(settings or {}))
    db_cache, lib_cache, rows = {}, {}, []
    for t in targets:
        by_check = {r['check']: r for r in db_checks(t, db_cache)}
        by_check['shared_link'] = check_link(t)
        for r in process_checks(t, settings, lib_cache):
            by_check[r['check']] = r
        rows.extend(by_check[c] for c in CHECKS)
    return rows


# --------------------------------------------------------------------------- reporting


def problems_of(rows):
    return [r for r in rows if r['state'] == 'fail']


def _label(value):
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def render_metrics(rows, now=None):
    """node_exporter textfile format. Only names and ok/fail go in: no detail, so no path or secret."""
    now = time.time() if now is None else now
    lines = ['# HELP %s Whether a bluegreen.dbfix health check passed (1) or failed (0).' % METRIC, '# TYPE %s gauge' % METRIC]
    for r in rows:
        if r['state'] == 'skip':
            continue
        value = 1 if r['state'] == 'ok' else 0
        lines.append('%s{pair="%s",color="%s",check="%s"} %d' % (METRIC, _label(r['pair']), _label(r['color']), _label(r['check']), value))
    lines += ['# HELP dbfix_check_problems Number of failed bluegreen.dbfix checks in the last run.',
              '# TYPE dbfix_check_problems gauge',
              'dbfix_check_problems %d' % len(problems_of(rows)),
              '# HELP dbfix_check_last_run_timestamp_seconds When the bluegreen.dbfix checks last ran (Unix time).',
              '# TYPE dbfix_check_last_run_timestamp_seconds gauge',
              'dbfix_check_last_run_timestamp_seconds %.3f' % now]
    return '\n'.join(lines) + '\n'


def write_atomic(path, text, mode):
    """Temp file in the same folder, fsync, rename: a scraper never sees half a file."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode('utf-8')
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def problem_line(r):
    return 'dbfix-monitor: pair=%s color=%s check=%s FAIL: %s' % (r['pair'], r['color'], r['check'], r['detail'])


def log_sink(settings):
    """'journal' when journald's socket exists, else 'syslog' when /dev/log exists, else 'stderr' (or as configured)."""
    choice = settings.get('log') or 'auto'
    if choice != 'auto':
        return choice
    if os.path.exists(settings['journal_socket']):
        return 'journal'
    if os.path.exists(settings['syslog_socket']):
        return 'syslog'
    return 'stderr'


def log_problems(rows, settings, stderr=None):
    stderr = stderr or sys.stderr
    sink = log_sink(settings)
    lines = [problem_line(r) for r in problems_of(rows)]
    if not lines or sink == 'none':
        return sink
    if sink in ('journal', 'syslog'):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(settings['journal_socket'] if sink == 'journal' else settings['syslog_socket'])
                for line in lines:
                    if sink == 'journal':
                        msg = 'MESSAGE=%s\nPRIORITY=3\nSYSLOG_IDENTIFIER=dbfix-monitor\n' % line.replace('\n', ' ')
                    else:
                        msg = '<11>dbfix-monitor[%d]: %s' % (os.getpid(), line.replace('\n', ' '))
                    s.send(msg.encode('utf-8'))
            finally:
                s.close()
            return sink
        except OSError as e:
            stderr.write('dbfix-monitor: cannot log to %s (%s); problems follow on stderr\n' % (sink, e))
    for line in lines:
        stderr.write(line + '\n')
    return 'stderr'


def _key(r):
    return '%s/%s/%s' % (r['pair'], r['color'], r['check'])


def read_state(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def state_change(rows, last):
    """(changed, new problem keys, resolved keys). No earlier state and no problem: nothing to say."""
    now = sorted(_key(r) for r in problems_of(rows))
    before = sorted(last.get('problems', [])) if last else []
    if last is None:
        return bool(now), now, []
    return now != before, [k for k in now if k not in before], [k for k in before if k not in now]


def send_webhook(url, payload, timeout):
    """POST ``payload`` as JSON (http.client: the checker runs outside Ansible, where open_url is not there)."""
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ValueError('webhook URL must be http:// or https://')
    conn_cls = http.client.HTTPSConnection if parts.scheme == 'https' else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
        conn.request('POST', path, body=json.dumps(payload).encode('utf-8'),
                     headers={'Content-Type': 'application/json', 'User-Agent': 'dbfix-monitor'})
        resp = conn.getresponse()
        resp.read(65536)
        return resp.status
    finally:
        conn.close()


def report(rows, settings, stderr=None, now=None):
    """Metrics file, log lines, webhook on a change of state. Returns a dict of what was done."""
    stderr = stderr or sys.stderr
    done = {'problems': len(problems_of(rows)), 'metrics_file': None, 'webhook': None}
    if settings.get('metrics_file'):
        write_atomic(settings['metrics_file'], render_metrics(rows, now), 0o644)
        done['metrics_file'] = settings['metrics_file']
    done['log'] = log_problems(rows, settings, stderr)
    state_file = settings.get('state_file')
    if state_file:
        last = read_state(state_file)
        changed, new, resolved = state_change(rows, last)
        keep = True
        if changed and settings.get('webhook_url'):
            payload = {'source': 'bluegreen.dbfix monitor', 'host': socket.gethostname(), 'ok': not problems_of(rows),
                       'new': new, 'resolved': resolved,
                       'problems': [{k: r[k] for k in ('pair', 'color', 'check', 'detail')} for r in problems_of(rows)]}
            try:
                done['webhook'] = send_webhook(settings['webhook_url'], payload, settings.get('webhook_timeout', 10))
            except Exception as e:  # a dead receiver must not stop the checks; try again next run
                keep = False
                # the URL may carry a token: name only the failure
                stderr.write('dbfix-monitor: webhook failed (%s); it is tried again on the next run\n' % type(e).__name__)
                done['webhook'] = 'failed'
        if keep and (changed or last is None):
            write_atomic(state_file, json.dumps({'problems': sorted(_key(r) for r in problems_of(rows)), 'time': time.time()}) + '\n', 0o600)
    return done


def main(argv=None):
    """dbfix-monitor [--config FILE] [--print]: exit 0 all ok, 1 problems, 2 cannot run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = '/etc/dbfix-monitor/monitor.json'
    show = False
    while argv:
        a = argv.pop(0)
        if a == '--config' and argv:
            config = argv.pop(0)
        elif a == '--print':
            show = True
        else:
            sys.stderr.write('usage: dbfix-monitor [--config FILE] [--print]\n')
            return 2
    try:
        settings, targets = load_settings(config)
    except ConfigError as e:
        sys.stderr.write('dbfix-monitor: %s\n' % e)
        return 2
    rows = run_checks(targets, settings)
    if show:
        for r in rows:
            sys.stdout.write('%s\t%s\t%s\t%s\t%s\n' % (r['pair'], r['color'], r['check'], r['state'], r['detail']))
    try:
        report(rows, settings)
    except OSError as e:
        sys.stderr.write('dbfix-monitor: cannot write the results: %s\n' % e)
        return 2
    return 1 if problems_of(rows) else 0
