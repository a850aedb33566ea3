# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the pm2_service module (plugins/modules/pm2_service.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import http.client
import math
import os
import re
import socket
import threading
import time
import traceback
import urllib.parse

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _dotenv, _openfiles, _pm2

POLL = 0.25
# Upper bound for every duration option (a day): an infinite or absurd wait is a typo, not a plan.
MAX_SECONDS = 86400.0
# Bytes of a health answer's body read for the failure message (the body is never needed to pass).
HEALTH_BODY_CAP = 4096
# Seconds a failing health answer's body may take to arrive; a dribbling body is cut there.
HEALTH_BODY_SECONDS = 1.0
# How much of a healthy answer's body is read to match health_body_regex.
HEALTH_MATCH_CAP = 65536
REDIRECTS = (301, 302, 303, 307, 308)
DOTENV_CAP = 1 << 20


class _Watchdog(threading.Thread):
    """Shuts a connection's socket down at a deadline, so no read or write can outlive it.

    A socket timeout bounds each single read; a server that sends one byte per second never trips it.
    ``deadline`` may be moved (the body of a failing answer gets a shorter one).
    """

    def __init__(self, conn, deadline):
        super().__init__(daemon=True)
        self.conn = conn
        self.deadline = deadline
        self.fired = False
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(max(0.0, min(0.05, self.deadline - time.monotonic()))):
            if time.monotonic() >= self.deadline:
                sock = self.conn.sock
                self.fired = True
                if sock is not None:
                    try:
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    def stop(self):
        self._done.set()


def check_health_url(url):
    """Why ``url`` cannot be polled, or None."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return 'it contains white space or a control character'
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port   # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        return 'it is not a valid URL (%s)' % to_native(e)
    if parts.scheme not in ('http', 'https'):
        return 'only http:// and https:// URLs can be polled (found %s)' % (parts.scheme + '://' if parts.scheme else 'no scheme')
    if not parts.hostname:
        return 'it names no host'
    return None


class Pm2Service:
    """One task's work. ``known``: pm2's whole process list (jlist) as the caller read it in this process with no
    pm2 command since; the task then starts from it instead of asking pm2 again (shared_db_switch: the start
    after its stop, inside the app's downtime)."""

    def __init__(self, module, known=None):
        self.module = module
        self.known = known
        p = module.params
        self.p = p
        self.name = p['name']
        self.commands = []
        self.acted = False   # a failure after pm2 changed something still reports changed
        self.warnings = []
        self.env = {}
        self.secrets = set()
        self.all_procs = []
        self.validate()
        for k, v in (p['env'] or {}).items():
            self.env[str(k)] = '' if v is None else ('true' if v is True else 'false' if v is False else str(v))
        for v in self.env.values():
            if v:
                module.no_log_values.add(v)
        self.secrets = set(v for v in self.env.values() if v)
        self.pm2 = self._find_pm2()
        self.timeout_bin = module.get_bin_path('timeout')
        self.base_env = {'PM2_HOME': p['pm2_home']} if p['pm2_home'] else {}
        self.home = _pm2.pm2_home(p['pm2_home'])

    # -- input --------------------------------------------------------------
    def validate(self):
        """Refuse what pm2 would misread, before anything is run."""
        p = self.p
        why = _pm2.invalid_name(self.name)
        if why:
            self.fail('name %r cannot be a pm2 process name: %s. Give the name exactly as `pm2 jlist` shows it; '
                      'nothing was changed.' % (self.name, why))
        if p['ecosystem']:
            why = _pm2.name_problem(self.name)
            if why is None and (',' in self.name or ' ' in self.name):
                why = "pm2 splits --only at commas and spaces"
            if why:
                self.fail('name %r cannot be used with ecosystem %s: pm2 finds ecosystem apps by name, and %s. Rename '
                          'the app in the ecosystem file (letters, digits, "-", "_" and "." are safe), or start it '
                          'with script instead; nothing was changed.' % (self.name, p['ecosystem'], why))
        for key, v in (p['env'] or {}).items():
            k = str(key)
            if not k or '=' in k or '\0' in k:
                self.fail('env has a variable name %r that no process environment can hold (empty, or with "=" or a '
                          'NUL byte); fix the name; nothing was changed.' % k)
            if k == '__proto__':
                self.fail('env has the variable name __proto__, which pm2 (JavaScript) silently drops: the process '
                          'would never see it. Use another name; nothing was changed.')
            if isinstance(v, (dict, list)):
                self.fail('env.%s is a %s; environment values are strings (quote it, or give one variable per value); '
                          'nothing was changed.' % (k, 'mapping' if isinstance(v, dict) else 'list'))
            if v is not None and '\0' in str(v):
                self.fail('env.%s contains a NUL byte, which no process environment can hold; nothing was changed.' % k)
        for opt in ('wait', 'health_timeout', 'lock_timeout'):
            v = p[opt]
            if not (isinstance(v, float) or isinstance(v, int)) or not math.isfinite(v) or v < 0 or v > MAX_SECONDS:
                self.fail('%s must be a number of seconds from 0 to %d, got %r; nothing was changed.' % (opt, MAX_SECONDS, v))
        if not 100 <= p['health_status'] <= 599:
            self.fail('health_status must be an HTTP status from 100 to 599, got %r; nothing was changed.' % p['health_status'])
        if p['health_body_regex']:
            try:
                re.compile(p['health_body_regex'])
            except re.error as e:
                self.fail('health_body_regex %r is not a valid regular expression: %s. Fix it (Python re syntax); nothing '
                          'was changed.' % (p['health_body_regex'], e))
        if p['health_url'] is not None:
            why = check_health_url(p['health_url'])
            if why:
                self.fail('health_url %r cannot be polled: %s. Give an http:// or https:// URL such as '
                          'http://127.0.0.1:3000/api/health; nothing was changed.' % (p['health_url'], why))
        for opt in ('script', 'cwd', 'ecosystem', 'pm2_home', 'env_file', 'interpreter'):
            if p[opt] is not None and '\0' in p[opt]:
                self.fail('%s contains a NUL byte; nothing was changed.' % opt)
        for a in p['args'] or []:
            if '\0' in a:
                self.fail('args contains a NUL byte; nothing was changed.')

    # -- pm2 plumbing -------------------------------------------------------
    def fail(self, msg, **kw):
        self.module.fail_json(msg=_pm2.redact(msg, self.secrets), commands=self.commands, changed=self.acted, **kw)

    def _find_pm2(self):
        exe = self.p['executable']
        if '\0' in exe:
            self.module.fail_json(msg='executable contains a NUL byte; give the pm2 command or its path')
        if os.sep in exe:
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                return exe
            self.module.fail_json(msg='pm2 executable %s not found or not executable; %s' % (exe, _pm2.INSTALL_HINT))
        found = self.module.get_bin_path(exe)
        if not found:
            self.module.fail_json(msg='pm2 executable %r not found on PATH (%s); %s' % (exe, os.environ.get('PATH', ''), _pm2.INSTALL_HINT))
        return found

    def run(self, args, with_env=False, cwd=None, record=True, umask=None):
        env = dict(self.base_env)
        if with_env:
            env.update(self.env)
        if record:
            self.commands.append(' '.join(['pm2', *list(args)]))
        cmd = [self.pm2, *list(args)]
        if self.timeout_bin:
            # A pm2 CLI call can block for ever (a daemon that hangs, or two
            # daemons spawned at once); bound it so a run fails instead of hanging.
            cmd = [self.timeout_bin, '--kill-after=10', str(_pm2.CALL_TIMEOUT), *cmd]
        lock = None
        if not _pm2.daemon_running(self.home):
            try:
                lock = _pm2.spawn_lock(self.home, timeout=self.p['lock_timeout'])
            except _pm2.SpawnLockError as e:
                self.fail('pm2 %s for process %s not run: %s' % (' '.join(args), self.name, e))
        try:
            # expand_user_and_vars=False: a name or argument with "$X" or "~" must reach pm2 as written
            rc, out, err = self.module.run_command(cmd, environ_update=env, cwd=cwd, umask=umask, expand_user_and_vars=False)
        finally:
            if lock is not None:
                os.close(lock)
        if self.timeout_bin and rc in (124, 137):
            self.fail('pm2 %s for process %s did not answer within %d s (PM2_HOME=%s): its daemon may be hung. Check with '
                      '`PM2_HOME=%s pm2 ping`; if it does not answer, `pm2 kill` and run again (the apps are started from '
                      'script/cwd or the ecosystem file).' % (' '.join(args), self.name, _pm2.CALL_TIMEOUT, self.home, self.home))
        if rc != 0:
            detail = _pm2.strip_ansi((err or '') + (out or '')).strip()[-1500:]
            hint = '; pm2 runs on Node.js: is node installed and on PATH?' if rc == 127 else ''
            self.fail('pm2 %s failed for process %s (rc=%d, PM2_HOME=%s): %s%s' % (
                ' '.join(args), self.name, rc, self.home, _pm2.redact(detail, self.all_secrets(self.procs_cached())), hint))
        return out

    def jlist(self):
        out = self.run(['jlist'], record=False)
        try:
            procs = _pm2.parse_jlist(out)
        except _pm2.JlistError as e:
            self.fail('cannot read pm2 state for %s: %s; run `pm2 jlist` by hand to see what pm2 prints' % (self.name, e))
        self.all_procs = procs
        return procs

    def procs_cached(self):
        return [p for p in self.all_procs if str(p.get('name')) == self.name]

    def procs(self, all_procs=None):
        all_procs = self.jlist() if all_procs is None else all_procs
        # exact match: pm2 may store a number-like name as a number
        return [p for p in all_procs if str(p.get('name')) == self.name]

    # -- secrets --------------------------------------------------------------
    def dotenv_paths(self, procs):
        paths = []
        if self.p['env_file']:
            paths.append(self.p['env_file'])
        cwds = [self.p['cwd']] + [(p.get('pm2_env') or {}).get('pm_cwd') for p in procs]
        for c in cwds:
            if c:
                paths.append(os.path.join(c, '.env'))
        seen = []
        for x in paths:
            if x not in seen:
                seen.append(x)
        return seen

    def dotenv_values(self, procs):
        """Values of the app's .env file(s): env_file, else cwd/.env and pm2's working directory/.env."""
        vals = set()
        for path in self.dotenv_paths(procs):
            try:
                with open(path, 'rb') as f:
                    data = f.read(DOTENV_CAP)
                vals.update(v for v in _dotenv.parse(data.decode('utf-8', 'replace')).values() if v)
            except (OSError, ValueError, _dotenv.DotenvError):
                continue
        return vals

    def all_secrets(self, procs):
        """Every value we know to be secret: env, the app's .env values, pm2's stored environment of the process."""
        return _pm2.secret_values(procs, self.secrets | self.dotenv_values(procs))

    # -- waiting ------------------------------------------------------------
    def _crash_msg(self, procs, why):
        s = _pm2.summary(procs[0]) if procs else {'status': 'absent', 'err_log': None, 'restarts': 0}
        log = _pm2.redact(_pm2.tail(s.get('err_log')), self.all_secrets(procs))
        return ('pm2 process %s is not staying up: %s (status %s, %d restarts). Last lines of its error log %s '
                '(log tail masked: every value of env, of the app\'s .env and of pm2\'s environment for the process '
                'shows as ********):\n%s\nFix the cause shown in the log, then run the task again.'
                % (self.name, why, s['status'], s['restarts'], s.get('err_log') or '(none)', log))

    def wait_ready(self, before_pids=None):
        """Online (after a restart or reload: with new pids), healthy when ``health_url`` is set, and online for
        ``wait`` seconds; returns ``(procs, health result or None)``.

        pm2 is asked until the app is online; the health check then runs inside the stability window instead of
        after it, and /proc closes the window: every pid pm2 named still runs with the start time it had, so pm2
        neither restarted nor stopped it (a restart is a new process). While the health check polls, a pid that
        is gone ends it at once and pm2 is asked what happened (the crash message). Where /proc cannot tell (a
        process hidden from this user), pm2 is asked after the wait, and the health check follows as before."""
        procs, ref, since, up = self.wait_stable(before_pids, online_only=True)
        pids = [pid for _pm, pid, _restarts in ref]
        born = dict((pid, _openfiles.start_time(pid)) for pid in pids)
        if not self.p['health_url'] or not all(born.values()):
            procs = self.wait_stable(before_pids, ref=ref, since=since, up=up)
            return procs, (self.health() if self.p['health_url'] else None)

        def same():
            return all(_openfiles.start_time(pid) == born[pid] for pid in pids)

        def watch():
            if not same():   # pm2 says what happened (it restarted, stopped or errored) and the task fails
                self.wait_stable(before_pids, ref=ref, since=since, up=up)
        health = self.health(watch=watch)
        rest = max(0.0, float(self.p['wait'])) - up - (time.monotonic() - since)
        if rest > 0:
            time.sleep(rest + 0.02)
        if same():
            return procs, health
        return self.wait_stable(before_pids, ref=ref, since=since, up=up), health

    def wait_stable(self, before_pids=None, online_only=False, ref=None, since=None, up=0.0):
        """Wait until the process stays online for ``wait`` seconds; with ``before_pids``, also require new pids.

        ``online_only``: return ``(procs, ref, since, up)`` as soon as pm2 shows it online (``ref``: its
        (pm_id, pid, restarts), ``since``: when that was seen, ``up``: its uptime then). Given ``ref``/``since``/
        ``up`` from such a call, the wait goes on from there: any change since is a failure."""
        seconds = max(0.0, float(self.p['wait']))
        start = time.monotonic() if since is None else since
        deadline = start + seconds + max(10.0, seconds)
        while True:
            asked_ms = int(time.time() * 1000)
            procs = self.procs()
            if not procs:
                self.fail('pm2 has no process named %s (PM2_HOME=%s) after running %s; check that the script exists, or that '
                          'the ecosystem file defines an app with this name' % (self.name, self.home, ', '.join(self.commands) or 'nothing'))
            sums = [_pm2.summary(p, now_ms=asked_ms) for p in procs]
            statuses = set(s['status'] for s in sums)
            if 'errored' in statuses:
                self.fail(self._crash_msg(procs, 'pm2 marked it errored'))
            if 'stopped' in statuses:
                self.fail(self._crash_msg(procs, 'it stopped by itself'))
            now = time.monotonic()
            if statuses == {'online'} and all(s['pid'] for s in sums):
                key = tuple((s['pm_id'], s['pid'], s['restarts']) for s in sums)
                if ref is None:
                    ref, since = key, now
                    kept = sorted(set(s['pid'] for s in sums) & set(before_pids or ()))
                    if kept:
                        self.fail('pm2 reported %s done, but process %s still runs with pid %s from before: it was not '
                                  'restarted. Check `pm2 logs %s` and the pm2 daemon log (PM2_HOME=%s/pm2.log).'
                                  % (', '.join(self.commands), self.name, ', '.join(str(k) for k in kept), self.name, self.home))
                    if online_only:
                        return procs, ref, since, min(s['uptime_ms'] for s in sums) / 1000.0
                elif key != ref:
                    self.fail(self._crash_msg(procs, 'it restarted (new pid or restart count) %.1f s after coming online' % (now - since)))
                # How long it has been online by pm2's own clock (at the moment we asked), or since we first saw it:
                # on a loaded host one `pm2 jlist` can take seconds, which must not count against the app.
                up = min(s['uptime_ms'] for s in sums) / 1000.0
                if max(up, now - since) >= seconds:
                    return procs
                # Ask again once the rest of the wait has passed, not every POLL: each `pm2 jlist` is a
                # Node.js start (~0.3 s of CPU), and the next answer proves the same (same pids, same
                # restart count, online) for the whole wait.
                rest = seconds - max(up, now - since)
                if now <= deadline:
                    time.sleep(max(0.0, min(rest + 0.05, deadline - time.monotonic())))
                    continue
            elif ref is not None:
                self.fail(self._crash_msg(procs, 'it left the online state (%s) %.1f s after coming online' % (', '.join(sorted(statuses)), now - since)))
            if now > deadline:
                self.fail(self._crash_msg(procs, 'it did not stay online for %s s within %.0f s' % (self.p['wait'], deadline - start)))
            time.sleep(POLL)

    def _stopped_by_pid(self, procs, alive_before):
        """The stopped process list without asking pm2, when /proc proves it: every process of the app (and every
        child) that lived before the stop is gone now. None when that proof is not there (then pm2 is asked)."""
        if not procs or not alive_before or any(_openfiles.alive(pid) for pid in alive_before):
            return None
        by_id = dict((id(p), dict(p, pid=0, pm2_env=dict(p.get('pm2_env') or {}, status='stopped'))) for p in procs)
        self.all_procs = [by_id.get(id(p), p) for p in self.all_procs]
        return [by_id[id(p)] for p in procs]

    def verify_stopped(self, procs=None, alive_before=None):
        if procs is not None:
            stopped = self._stopped_by_pid(procs, alive_before)
            if stopped is not None:
                return stopped
        procs = self.procs()
        running = [_pm2.summary(p) for p in procs if (p.get('pm2_env') or {}).get('status') != 'stopped']
        if running:
            self.fail('pm2 reported %s done, but process %s is still %s (pm_id %s). Nothing else was touched; check '
                      '`pm2 describe` for it and the pm2 daemon log (PM2_HOME=%s/pm2.log).'
                      % (', '.join(self.commands), self.name, ', '.join(sorted(set(str(s['status']) for s in running))),
                         ', '.join(str(s['pm_id']) for s in running), self.home))
        return procs

    def verify_absent(self, old_ids):
        procs = self.procs()
        left = [p for p in self.all_procs if p.get('pm_id') in old_ids]
        if procs or left:
            self.fail('pm2 reported %s done, but process %s is still in its list (pm_id %s). Check `pm2 jlist` and the '
                      'pm2 daemon log (PM2_HOME=%s/pm2.log).'
                      % (', '.join(self.commands), self.name, ', '.join(str(p.get('pm_id')) for p in (procs or left)), self.home))
        return []

    # -- health -------------------------------------------------------------
    def _probe(self, url, deadline):
        """One GET of ``url`` (following up to 5 redirects), bounded as a whole by ``deadline``.

        Returns ``(status, body excerpt or None)``; raises OSError, http.client.HTTPException or ValueError.
        The body is read only for an unexpected status (for the message), at most HEALTH_BODY_CAP bytes
        and HEALTH_BODY_SECONDS.
        """
        want = self.p['health_status']
        for _hop in range(6):
            parts = urllib.parse.urlsplit(url)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError('no answer before the deadline')
            cls = http.client.HTTPSConnection if parts.scheme == 'https' else http.client.HTTPConnection
            conn = cls(parts.hostname, parts.port, timeout=remaining)
            dog = _Watchdog(conn, deadline)
            dog.start()
            try:
                path = parts.path or '/'
                if parts.query:
                    path += '?' + parts.query
                conn.request('GET', path, headers={'User-Agent': 'bluegreen.dbfix.pm2_service', 'Connection': 'close'})
                resp = conn.getresponse()
                if dog.fired:
                    # the deadline cut the headers short: http.client takes the cut for their end
                    raise TimeoutError('the answer\'s headers did not arrive before the deadline')
                status = resp.status
                location = resp.getheader('Location')
                if status in REDIRECTS and status != want and location:
                    url = urllib.parse.urljoin(url, location)
                    if check_health_url(url):
                        return status, b'(redirect to %s, which cannot be polled)' % url.encode('utf-8', 'replace')
                    continue
                if status == want and not self.p['health_body_regex']:
                    return status, None
                cap = HEALTH_MATCH_CAP if status == want else HEALTH_BODY_CAP
                # the excerpt may take up to HEALTH_BODY_SECONDS, and at least a moment even at the deadline
                dog.deadline = time.monotonic() + max(0.25, min(HEALTH_BODY_SECONDS, deadline - time.monotonic()))
                body = b''
                try:
                    while len(body) < cap and time.monotonic() < dog.deadline:
                        chunk = resp.read1(cap - len(body))
                        if not chunk:
                            break
                        body += chunk
                except (OSError, http.client.HTTPException, ValueError):
                    pass   # the excerpt is what arrived in time
                return status, body
            except (OSError, http.client.HTTPException, ValueError) as e:
                if dog.fired:
                    raise TimeoutError('no complete answer before the deadline (the server is too slow or sends its '
                                       'answer in dribbles)') from e
                raise
            finally:
                dog.stop()
                conn.close()
        return status, b'(more than 5 redirects)'

    def health(self, watch=None):
        """Poll ``health_url`` until it answers ``health_status`` (and ``health_body_regex``) or ``health_timeout``
        passes. ``watch`` is called before every attempt; it may end the task (the process died meanwhile)."""
        url = self.p['health_url']
        want = self.p['health_status']
        timeout = float(self.p['health_timeout'])
        start = time.monotonic()
        deadline = start + timeout
        last = 'no answer'
        last_status = None
        # Poll fast at first, then back off: a restarted Node app usually answers within a few hundred ms, and
        # every 100 ms saved here is 100 ms less downtime in phase 2's switch window (which ends with this gate).
        delay = 0.05
        first = True
        while True:
            # the whole poll, every connect, header and body read included, ends at the deadline
            # (the first attempt gets at least one second, so health_timeout=0 still asks once)
            attempt_deadline = max(deadline, time.monotonic() + 1.0) if first else deadline
            first = False
            if watch is not None:
                watch()
            try:
                status, body = self._probe(url, attempt_deadline)
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, body = None, None
                # an attempt cut short by the deadline says less than the answer before it: keep that one
                if not isinstance(e, TimeoutError) or last == 'no answer':
                    last = to_native(getattr(e, 'reason', None) or e) or type(e).__name__
                    last_status = None
            elapsed = time.monotonic() - start
            regex = self.p['health_body_regex']
            if status == want and (not regex or re.search(regex, (body or b'').decode('utf-8', 'replace'))):
                return {'status': status, 'elapsed_ms': int(elapsed * 1000)}
            if status == want:
                last_status = status
                last = 'HTTP %d, but the body does not match health_body_regex %r: %s' % (
                    status, regex, (body or b'')[:300].decode('utf-8', 'replace').strip() or '(empty)')
            elif status is not None:
                last_status = status
                last = 'HTTP %d, body: %s' % (status, (body or b'')[:300].decode('utf-8', 'replace').strip() or '(empty)')
            if time.monotonic() + 0.01 >= deadline:
                self.fail('health check of pm2 process %s failed: %s did not answer HTTP %d within %s s; last answer: %s. '
                          'If the app answers its health check with another status (or on another path), set health_status '
                          '(health_url) to what it answers when healthy; otherwise look at `pm2 logs %s` for why it is not healthy.'
                          % (self.name, url, want, self.p['health_timeout'], _pm2.redact(last, self.all_secrets(self.procs_cached())),
                             self.name),
                          health={'status': last_status, 'elapsed_ms': int(elapsed * 1000)})
            delay = min(0.5, delay * 1.5)
            # leave 10 ms for the next attempt rather than waking up exactly at the deadline
            time.sleep(min(delay, max(0.0, deadline - time.monotonic() - 0.02)))

    # -- actions ------------------------------------------------------------
    def _name_arg(self):
        # `--name -x` would make pm2 read -x as an option; `--name=-x` cannot be misread
        return ['--name=%s' % self.name] if self.name.startswith('-') else ['--name', self.name]

    def start_args(self):
        p = self.p
        if p['ecosystem']:
            if not os.path.isfile(p['ecosystem']):
                self.fail('ecosystem file %s does not exist (or is not a file); give the path of the ecosystem.config.js '
                          'that defines %s; nothing was changed.' % (p['ecosystem'], self.name))
            return ['start', p['ecosystem'], '--only', self.name], os.path.dirname(os.path.abspath(p['ecosystem']))
        if p['script']:
            if p['cwd'] and not os.path.isdir(p['cwd']):
                self.fail('cwd %s does not exist (or is not a directory); give the app folder of %s; nothing was changed.'
                          % (p['cwd'], self.name))
            args = ['start', p['script'], *self._name_arg()]
            if p['cwd']:
                args += ['--cwd', p['cwd']]
            if p['interpreter']:
                args += ['--interpreter', p['interpreter']]
            if p['args']:
                args += ['--', *list(p['args'])]
            return args, p['cwd']
        return None, None

    def targets(self, procs):
        """How pm2 commands address the process: by name when pm2 reads the name as exactly this process, else
        by each pm_id (refused when pm2 would read that id as another process's name or namespace)."""
        if _pm2.name_problem(self.name) is None:
            return [self.name]
        ids = sorted(set(_pm2.summary(p)['pm_id'] for p in procs), key=lambda x: (str(type(x)), x))
        for i in ids:
            for other in self.all_procs:
                if other.get('pm_id') in ids:
                    continue
                ns = (other.get('pm2_env') or {}).get('namespace')
                if str(other.get('name')) == str(i) or (ns is not None and str(ns) == str(i)):
                    why = _pm2.name_problem(self.name)
                    self.fail('cannot address pm2 process %r unambiguously: %s, so it must be addressed by its pm_id %s, '
                              'but pm2 reads %s as the name or namespace of process %r (pm_id %s). Rename one of them; '
                              'nothing was changed.' % (self.name, why, i, i, other.get('name'), other.get('pm_id')))
        return [str(i) for i in ids]

    def restart_cmds(self, verb, procs):
        p = self.p
        cwd = os.path.dirname(os.path.abspath(p['ecosystem'])) if p['ecosystem'] else p['cwd']
        if p['ecosystem']:
            if not os.path.isfile(p['ecosystem']):
                self.fail('ecosystem file %s does not exist (or is not a file); give the path of the ecosystem.config.js '
                          'that defines %s; nothing was changed.' % (p['ecosystem'], self.name))
            targets = [[p['ecosystem'], '--only', self.name]]
        else:
            targets = [[t] for t in self.targets(procs)]
            if cwd and not os.path.isdir(cwd):
                cwd = None
        extra = ['--update-env'] if p['update_env'] else []
        return [([verb, *t, *extra], cwd) for t in targets]

    def plan(self, procs):
        """Return ``(kind, [(args, cwd), ...], with_env)`` of the pm2 commands to run, or None when nothing is to do."""
        state = self.p['state']
        known = bool(procs)
        sums = [_pm2.summary(p) for p in procs]
        unknown_msg = ('pm2 does not know a process named %s (PM2_HOME=%s); give script or ecosystem to start it, '
                       'or check name and pm2_home' % (self.name, self.home))
        if state == 'absent':
            if not known:
                return None
            return 'delete', [(['delete', t], None) for t in self.targets(procs)], False
        if state == 'stopped':
            if not known:
                if self.p['script'] or self.p['ecosystem']:
                    return None   # documented: with script/ecosystem, a process pm2 does not run counts as stopped
                self.fail(unknown_msg)
            if all(s['status'] == 'stopped' for s in sums):
                return None
            return 'stop', [(['stop', t], None) for t in self.targets(procs)], False
        if not known:
            args, cwd = self.start_args()
            if args is None:
                self.fail(unknown_msg)
            return 'start', [(args, cwd)], True
        self.warn_definition(procs)
        if state == 'started':
            if all(s['status'] == 'online' for s in sums):
                differing = _pm2.env_differs(procs[0], self.env) if self.env else []
                if not differing:
                    return None
                if not self.p['update_env']:
                    self.warnings.append('pm2 process %s runs with a stored environment that differs from env for %s; '
                                         'set update_env: true to restart it with the new values' % (self.name, ', '.join(differing)))
                    return None
            return 'restart', self.restart_cmds('restart', procs), True
        verb = 'restart'
        if state == 'reloaded':
            if all(s['exec_mode'] == 'cluster_mode' for s in sums):
                verb = 'reload'
            else:
                self.warnings.append('pm2 process %s runs in fork mode, where pm2 cannot reload without downtime; '
                                     'it was restarted instead (use cluster mode for zero-downtime reloads)' % self.name)
        return verb, self.restart_cmds(verb, procs), True

    def warn_definition(self, procs):
        """Warn when pm2's stored script, interpreter or args differ from the options (pm2 restarts with its own)."""
        if self.p['ecosystem']:
            return
        env = procs[0].get('pm2_env') or {}
        differ = []
        if self.p['script']:
            want = os.path.normpath(os.path.join(self.p['cwd'] or env.get('pm_cwd') or '', self.p['script']))
            if env.get('pm_exec_path') and os.path.normpath(env['pm_exec_path']) != want:
                differ.append('script')
        if self.p['interpreter'] and env.get('exec_interpreter') not in (None, self.p['interpreter']):
            differ.append('interpreter')
        if self.p['args'] is not None and list(env.get('args') or []) != list(self.p['args']):
            differ.append('args')
        if differ:
            self.warnings.append('pm2 process %s keeps the %s it was started with, which differ from the task\'s; pm2 '
                                 'restarts it with its own. To apply them, remove it (state: absent) and start it again.'
                                 % (self.name, ', '.join(differ)))

    def check_dump_files(self):
        problems = _pm2.dump_problems(self.home)
        if problems:
            self.fail('refusing save: %s. Remove or fix it (pm2 saves every process environment, secrets included, '
                      'there); nothing was changed.' % '; '.join(problems))

    def save(self):
        # pm2 writes every process's environment (secrets included) to dump.pm2 and copies the old one to
        # dump.pm2.bak. Keep both private before, during and after: narrow existing files first, let the pm2
        # CLI (which writes them) create new ones under umask 077, and check again afterwards. The umask is
        # only set while a daemon runs: a daemon spawned by this call would pass it on to every app it starts.
        daemon = _pm2.daemon_running(self.home)
        _pm2.tighten_dump_files(self.home, create=not daemon)
        # --force: without it pm2 skips saving an empty list, and a deleted process would come back at resurrect
        self.run(['save', '--force'], umask=0o077 if daemon else None)
        _pm2.tighten_dump_files(self.home)

    def result(self, procs, changed):
        r = {'changed': changed, 'name': self.name, 'commands': self.commands}
        if procs:
            s = _pm2.summary(procs[0])
            r.update(status=s['status'], pid=s['pid'], pm_id=s['pm_id'], restarts=s['restarts'], uptime_ms=s['uptime_ms'],
                     exec_mode=s['exec_mode'], instances=len(procs), env_keys=_pm2.env_names(procs[0]))
        else:
            r.update(status='absent', pid=None, pm_id=None, restarts=0, uptime_ms=0, exec_mode='', instances=0, env_keys=[])
        return r

    def apply(self):
        if not _pm2.daemon_running(self.home) and (self.module.check_mode or self.p['state'] in ('absent', 'stopped', 'restarted', 'reloaded')):
            # no daemon, no processes: do not let `pm2 jlist` spawn one just to find that out
            procs = []
        elif self.known is not None:
            self.all_procs = list(self.known)
            procs = self.procs(self.all_procs)
        else:
            procs = self.procs()
        action = self.plan(procs)
        state = self.p['state']
        runs = state in ('started', 'restarted', 'reloaded')
        if action is None:
            health = None
            if runs:
                procs, health = self.wait_ready()   # pm2's "online" proves nothing: check that it stays up
            res = self.result(procs, False)
            if health is not None:
                res['health'] = health
            return res
        kind, cmds, with_env = action
        if self.module.check_mode:
            for args, _cwd in cmds:
                self.commands.append(' '.join(['pm2', *args]))
            if self.p['save']:
                self.commands.append('pm2 save --force')
            return self.result(procs, True)
        if self.p['save']:
            self.check_dump_files()
        before_pids = [s['pid'] for s in (_pm2.summary(p) for p in procs) if s['pid']]
        old_ids = set(_pm2.summary(p)['pm_id'] for p in procs)
        # A stop is proven from /proc when every pid pm2 named was a live process before it (with its children)
        # and none is after: one `pm2 jlist` less while the app is down. Otherwise pm2 is asked.
        alive_before = []
        if kind == 'stop' and before_pids and len(before_pids) == len(procs):
            tree = sorted(set(c for pid in before_pids for c in _openfiles.children(pid)))
            if all(_openfiles.alive(pid) for pid in before_pids):
                alive_before = tree
        for args, cwd in cmds:
            self.run(args, with_env=with_env, cwd=cwd)
            self.acted = True
        health = None
        if runs:
            # every start path ends with proof: online, stable, and (restart/reload) new pids
            procs, health = self.wait_ready(before_pids if kind in ('restart', 'reload') else None)
        elif kind == 'stop':
            procs = self.verify_stopped(procs, alive_before)
        else:
            procs = self.verify_absent(old_ids)
        if self.p['save']:
            self.save()
        res = self.result(procs, True)
        if health is not None:
            res['health'] = health
        return res


MODULE_KWARGS = dict(
    argument_spec=dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'restarted', 'reloaded', 'absent']),
        script=dict(type='path'),
        cwd=dict(type='path'),
        interpreter=dict(type='str'),
        args=dict(type='list', elements='str'),
        ecosystem=dict(type='path'),
        env=dict(type='dict', no_log=True),
        env_file=dict(type='path'),
        update_env=dict(type='bool', default=False),
        pm2_home=dict(type='path'),
        executable=dict(type='str', default='pm2'),
        wait=dict(type='float', default=2),
        health_url=dict(type='str'),
        health_status=dict(type='int', default=200),
        health_body_regex=dict(type='str', default=''),
        health_timeout=dict(type='float', default=30),
        lock_timeout=dict(type='float', default=60),
        save=dict(type='bool', default=False),
    ),
    mutually_exclusive=[('script', 'ecosystem')],
    supports_check_mode=True,
)


def run(module, known=None, seen=None):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS.

    ``known``: see Pm2Service. ``seen``: a list that receives pm2's whole process list as this task last saw it
    (for the next call in the same process, as its ``known``; only when no pm2 command runs in between)."""
    svc = None
    try:
        svc = Pm2Service(module, known=known)
        res = svc.apply()
        if seen is not None:
            seen[:] = svc.all_procs
    except Exception as e:   # pragma: no cover - last resort, keeps secrets out of the traceback text
        secrets = svc.secrets if svc is not None else set()
        module.fail_json(msg='pm2_service failed for %s: %s' % (module.params['name'], _pm2.redact(to_native(e), secrets)),
                         exception=_pm2.redact(traceback.format_exc(), secrets),
                         commands=svc.commands if svc is not None else [], changed=bool(svc and svc.acted))
    for w in svc.warnings:
        module.warn(w)
    module.exit_json(**res)
