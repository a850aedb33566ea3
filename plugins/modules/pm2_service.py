#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pm2_service
short_description: Start, stop, restart or reload a pm2 process and wait until it is really up
version_added: 1.0.0
description:
  - Manages one process of the L(pm2,https://pm2.keymetrics.io/) process manager by name.
  - Reads pm2's state from C(pm2 jlist) (robust to the banner pm2 prints when it starts its daemon and to other
    noise around the JSON).
  - "pm2 shows C(online) even for an app that crashes right after starting. After starting, restarting or reloading,
    this module therefore requires the process to stay C(online) with the same pid and no new restarts for
    O(wait) seconds; a crash loop or an C(errored) status fails the task with the tail of the process's error log."
  - Optionally polls an HTTP health URL from the managed host until it answers with O(health_status).
  - "Never returns the process environment: pm2 includes it in C(jlist), this module returns only facts about the
    process and the I(names) of the stored variables (RV(env_keys)). Values given in O(env) are secret: they are
    passed to pm2 through the environment, never on the command line, and masked in all output."
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
options:
  name:
    description:
      - The pm2 process name.
    type: str
    required: true
  state:
    description:
      - V(started) starts the process if it is not online (a known stopped or errored process is restarted; an
        unknown one is started from O(script) or O(ecosystem)). An online process is left alone, unless O(env)
        differs from pm2's stored environment and O(update_env=true).
      - V(stopped) stops an online process. V(absent) deletes the process from pm2.
      - V(restarted) and V(reloaded) always act (they are not idempotent, by design). V(reloaded) is a zero-downtime
        C(pm2 reload) in cluster mode only; in fork mode pm2 cannot reload, so the process is restarted and a warning
        says so.
      - V(stopped), V(restarted) and V(reloaded) fail for a process pm2 does not know, unless O(script) or
        O(ecosystem) is given (then V(restarted)/V(reloaded) start it).
    type: str
    choices: [started, stopped, restarted, reloaded, absent]
    default: started
  script:
    description:
      - Script to start when pm2 does not know the process yet (C(pm2 start SCRIPT --name NAME)).
      - Relative paths are relative to O(cwd).
    type: path
  cwd:
    description:
      - Working directory of the process (and of the C(pm2 start) command).
    type: path
  interpreter:
    description:
      - Interpreter for O(script) (C(--interpreter)), for example C(node) or C(none) for a binary.
    type: str
  args:
    description:
      - Arguments passed to O(script).
    type: list
    elements: str
  ecosystem:
    description:
      - An ecosystem file (C(ecosystem.config.js)) that defines the process. Used with C(--only NAME) to start an
        unknown process and for V(restarted)/V(reloaded), so changes in the file take effect.
    type: path
  env:
    description:
      - Environment variables for the process. Values are secret; they reach pm2 through the environment of the
        pm2 command, and are masked in every result, warning and error.
      - Applied when pm2 starts a process it does not know yet, and on restart/reload when O(update_env=true)
        (pm2 keeps a process's stored environment otherwise).
      - Because the values are masked everywhere in the task output, a value that also appears elsewhere (a port
        number in O(health_url), for example) shows as C(********) there too. Put settings that are not secret in
        O(args) or the O(ecosystem) file.
    type: dict
  update_env:
    description:
      - Pass C(--update-env) on restart/reload, so pm2 replaces its stored environment with the current one
        (including O(env)).
      - With O(state=started), an online process whose stored environment differs from O(env) is restarted with
        C(--update-env); with V(false) it is left alone and a warning names the differing variables.
    type: bool
    default: false
  pm2_home:
    description:
      - C(PM2_HOME) for the pm2 commands (which pm2 daemon to talk to). Default is pm2's own (C(~/.pm2)).
    type: path
  executable:
    description:
      - The pm2 command, a name looked up on C(PATH) or a path.
    type: str
    default: pm2
  wait:
    description:
      - Seconds the process must stay C(online) with the same pid and restart count before the module returns
        (after V(started), V(restarted) and V(reloaded); also checked for an already online process).
      - V(0) only waits until pm2 reports C(online).
    type: float
    default: 2
  health_url:
    description:
      - An HTTP(S) URL polled from the managed host (no proxy) after the process is stable, until it answers with
        O(health_status) or O(health_timeout) passes.
    type: str
  health_status:
    description:
      - The HTTP status that counts as healthy.
    type: int
    default: 200
  health_timeout:
    description:
      - Seconds to keep polling O(health_url) before failing with the last status and a body excerpt.
    type: float
    default: 30
  save:
    description:
      - Run C(pm2 save --force) after a change, so pm2's resurrect (for example at boot) brings back the current
        process list (C(--force) so that removing the last process is saved too).
      - pm2 writes every process's environment, O(env) values included, to C(PM2_HOME/dump.pm2); the module makes
        that file readable by its owner only.
    type: bool
    default: false
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Reports the action that would be taken; nothing is started, stopped or saved.
  diff_mode:
    support: none
    details: Process state is not a file; use the returned facts instead.
  idempotent:
    support: partial
    details: V(started), V(stopped) and V(absent) are idempotent; V(restarted) and V(reloaded) always act.
notes:
  - dotenv does not override variables that already exist in the process environment. If RV(env_keys) lists a
    variable that the app also reads from C(.env), a C(.env) edit has no effect until pm2's stored value is updated
    (O(update_env)) or removed.
requirements:
  - pm2 on the managed host (C(npm install -g pm2)).
seealso:
  - module: bluegreen.dbfix.dotenv_set
"""

EXAMPLES = r"""
- name: Start the API under pm2 and wait until it is really up and healthy
  bluegreen.dbfix.pm2_service:
    name: timetracking-blue
    script: server.js
    cwd: /home/ubuntu/TimeTracking-BLUE/server
    env:
      PORT: "3000"
    wait: 3
    health_url: http://127.0.0.1:3000/api/health
    save: true

- name: Restart with the new environment (pm2 restart --update-env)
  bluegreen.dbfix.pm2_service:
    name: timetracking-blue
    state: restarted
    update_env: true
    health_url: http://127.0.0.1:3000/api/health

- name: Zero-downtime reload in cluster mode
  bluegreen.dbfix.pm2_service:
    name: api
    state: reloaded
    ecosystem: /srv/api/ecosystem.config.js

- name: Remove a process
  bluegreen.dbfix.pm2_service:
    name: old-worker
    state: absent
    save: true
"""

RETURN = r"""
name:
  description: The process name.
  returned: always
  type: str
  sample: timetracking-blue
status:
  description: pm2's status after the task (C(online), C(stopped), C(errored), ...), or C(absent).
  returned: always
  type: str
  sample: online
pid:
  description: Process id of the (first) instance; null when not running.
  returned: always
  type: int
  sample: 12345
pm_id:
  description: pm2's id of the (first) instance; null when absent.
  returned: always
  type: int
  sample: 0
restarts:
  description: pm2's restart counter of the (first) instance.
  returned: always
  type: int
  sample: 1
uptime_ms:
  description: Milliseconds since the (first) instance came online; 0 when not online.
  returned: always
  type: int
  sample: 2150
exec_mode:
  description: pm2's execution mode, as pm2 reports it in C(jlist), C(fork_mode) or C(cluster_mode); empty when absent.
  returned: always
  type: str
  sample: fork_mode
instances:
  description: Number of pm2 instances with this name (more than one in cluster mode).
  returned: always
  type: int
  sample: 1
env_keys:
  description:
    - Sorted names (never values) of the variables in pm2's stored environment for the process.
  returned: always
  type: list
  elements: str
  sample: [ALLOWED_ORIGINS, HOME, NODE_ENV, PATH, PORT]
health:
  description: Result of the health check.
  returned: when O(health_url) was checked
  type: dict
  contains:
    status:
      description: HTTP status of the last answer.
      type: int
      sample: 200
    elapsed_ms:
      description: Milliseconds from the first request until the healthy answer.
      type: int
      sample: 120
commands:
  description: The pm2 commands run (or that would run in check mode) to change state. Never contain O(env) values.
  returned: always
  type: list
  elements: str
  sample: ["pm2 restart timetracking-blue --update-env"]
"""

import os
import time
import traceback
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2

POLL = 0.25


class Pm2Service:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.name = p['name']
        self.env = {}
        for k, v in (p['env'] or {}).items():
            self.env[str(k)] = '' if v is None else ('true' if v is True else 'false' if v is False else str(v))
        for v in self.env.values():
            if v:
                module.no_log_values.add(v)
        self.secrets = set(v for v in self.env.values() if v)
        self.commands = []
        self.acted = False   # a failure after pm2 changed something still reports changed
        self.warnings = []
        self.pm2 = self._find_pm2()
        self.timeout_bin = module.get_bin_path('timeout')
        self.base_env = {'PM2_HOME': p['pm2_home']} if p['pm2_home'] else {}
        self.home = _pm2.pm2_home(p['pm2_home'])

    # -- pm2 plumbing -------------------------------------------------------
    def fail(self, msg, **kw):
        self.module.fail_json(msg=_pm2.redact(msg, self.secrets), commands=self.commands, changed=self.acted, **kw)

    def _find_pm2(self):
        exe = self.p['executable']
        if os.sep in exe:
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                return exe
            self.module.fail_json(msg='pm2 executable %s not found or not executable; %s' % (exe, _pm2.INSTALL_HINT))
        found = self.module.get_bin_path(exe)
        if not found:
            self.module.fail_json(msg='pm2 executable %r not found on PATH (%s); %s' % (exe, os.environ.get('PATH', ''), _pm2.INSTALL_HINT))
        return found

    def run(self, args, with_env=False, cwd=None, record=True):
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
        lock = None if _pm2.daemon_running(self.home) else _pm2.spawn_lock(self.home)
        try:
            rc, out, err = self.module.run_command(cmd, environ_update=env, cwd=cwd)
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
                ' '.join(args), self.name, rc, self.home, _pm2.redact(detail, self.secrets), hint))
        return out

    def jlist(self):
        out = self.run(['jlist'], record=False)
        try:
            return _pm2.parse_jlist(out)
        except _pm2.JlistError as e:
            self.fail('cannot read pm2 state for %s: %s; run `pm2 jlist` by hand to see what pm2 prints' % (self.name, e))

    def procs(self, all_procs=None):
        all_procs = self.jlist() if all_procs is None else all_procs
        return [p for p in all_procs if p.get('name') == self.name]

    # -- waiting ------------------------------------------------------------
    def _crash_msg(self, procs, why):
        s = _pm2.summary(procs[0]) if procs else {'status': 'absent', 'err_log': None, 'restarts': 0}
        secrets = _pm2.secret_values(procs, self.secrets)
        log = _pm2.redact(_pm2.tail(s.get('err_log')), secrets)
        return ('pm2 process %s is not staying up: %s (status %s, %d restarts). Last lines of its error log %s:\n%s\n'
                'Fix the cause shown in the log, then run the task again.'
                % (self.name, why, s['status'], s['restarts'], s.get('err_log') or '(none)', log))

    def wait_stable(self):
        seconds = max(0.0, float(self.p['wait']))
        start = time.monotonic()
        deadline = start + seconds + max(10.0, seconds)
        ref = None
        since = None
        while True:
            procs = self.procs()
            if not procs:
                self.fail('pm2 has no process named %s (PM2_HOME=%s) after running %s; check that the script exists, or that '
                          'the ecosystem file defines an app with this name' % (self.name, self.home, ', '.join(self.commands) or 'nothing'))
            sums = [_pm2.summary(p) for p in procs]
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
                elif key != ref:
                    self.fail(self._crash_msg(procs, 'it restarted (new pid or restart count) %.1f s after coming online' % (now - since)))
                elif now - since >= seconds:
                    return procs
            elif ref is not None:
                self.fail(self._crash_msg(procs, 'it left the online state (%s) %.1f s after coming online' % (', '.join(sorted(statuses)), now - since)))
            if now > deadline:
                self.fail(self._crash_msg(procs, 'it did not stay online for %s s within %.0f s' % (self.p['wait'], deadline - start)))
            time.sleep(POLL)

    def health(self):
        url = self.p['health_url']
        want = self.p['health_status']
        timeout = max(0.0, float(self.p['health_timeout']))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        start = time.monotonic()
        last = 'no answer'
        status = None
        # Poll fast at first, then back off: a restarted Node app usually answers within a few hundred ms, and
        # every 100 ms saved here is 100 ms less downtime in phase 2's switch window (which ends with this gate).
        delay = 0.05
        while True:
            remaining = timeout - (time.monotonic() - start)
            try:
                with opener.open(url, timeout=max(1.0, min(5.0, remaining))) as resp:
                    status, body = resp.status, resp.read(4096)
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read(4096) if e.fp else b''
            except (urllib.error.URLError, OSError, ValueError) as e:
                status, body = None, None
                last = to_native(getattr(e, 'reason', e))
            elapsed = time.monotonic() - start
            if status == want:
                return {'status': status, 'elapsed_ms': int(elapsed * 1000)}
            if status is not None:
                last = 'HTTP %d, body: %s' % (status, body[:300].decode('utf-8', 'replace').strip() or '(empty)')
            if elapsed >= timeout:
                self.fail('health check of pm2 process %s failed: %s did not answer HTTP %d within %s s; last answer: %s'
                          % (self.name, url, want, self.p['health_timeout'], _pm2.redact(last, self.secrets)),
                          health={'status': status, 'elapsed_ms': int(elapsed * 1000)})
            delay = min(0.5, delay * 1.5)
            time.sleep(min(delay, max(0.0, timeout - elapsed)))

    # -- actions ------------------------------------------------------------
    def start_args(self):
        p = self.p
        if p['ecosystem']:
            return ['start', p['ecosystem'], '--only', self.name], os.path.dirname(os.path.abspath(p['ecosystem']))
        if p['script']:
            args = ['start', p['script'], '--name', self.name]
            if p['cwd']:
                args += ['--cwd', p['cwd']]
            if p['interpreter']:
                args += ['--interpreter', p['interpreter']]
            if p['args']:
                args += ['--', *list(p['args'])]
            return args, p['cwd']
        return None, None

    def restart_args(self, verb):
        p = self.p
        target = [p['ecosystem'], '--only', self.name] if p['ecosystem'] else [self.name]
        args = [verb, *target]
        if p['update_env']:
            args.append('--update-env')
        return args, (os.path.dirname(os.path.abspath(p['ecosystem'])) if p['ecosystem'] else p['cwd'])

    def plan(self, procs):
        """Return ``(args, cwd, with_env)`` of the pm2 command to run, or None when nothing is to do."""
        state = self.p['state']
        known = bool(procs)
        sums = [_pm2.summary(p) for p in procs]
        unknown_msg = ('pm2 does not know a process named %s (PM2_HOME=%s); give script or ecosystem to start it, '
                       'or check name and pm2_home' % (self.name, self.home))
        if state == 'absent':
            return (['delete', self.name], None, False) if known else None
        if state == 'stopped':
            if not known:
                self.fail(unknown_msg)
            return (['stop', self.name], None, False) if any(s['status'] != 'stopped' for s in sums) else None
        if not known:
            args, cwd = self.start_args()
            if args is None:
                self.fail(unknown_msg)
            return args, cwd, True
        if state == 'started':
            if all(s['status'] == 'online' for s in sums):
                differing = _pm2.env_differs(procs[0], self.env) if self.env else []
                if not differing:
                    return None
                if not self.p['update_env']:
                    self.warnings.append('pm2 process %s runs with a stored environment that differs from env for %s; '
                                         'set update_env: true to restart it with the new values' % (self.name, ', '.join(differing)))
                    return None
                args, cwd = self.restart_args('restart')
                return args, cwd, True
            args, cwd = self.restart_args('restart')
            return args, cwd, True
        verb = 'restart'
        if state == 'reloaded':
            if all(s['exec_mode'] == 'cluster_mode' for s in sums):
                verb = 'reload'
            else:
                self.warnings.append('pm2 process %s runs in fork mode, where pm2 cannot reload without downtime; '
                                     'it was restarted instead (use cluster mode for zero-downtime reloads)' % self.name)
        args, cwd = self.restart_args(verb)
        return args, cwd, True

    def save(self):
        # --force: without it pm2 skips saving an empty list, and a deleted process would come back at resurrect
        self.run(['save', '--force'])
        dump = os.path.join(self.home, 'dump.pm2')
        try:
            if os.stat(dump).st_mode & 0o077:
                os.chmod(dump, 0o600)   # the dump holds every process's environment, secrets included
        except OSError:
            pass

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
        else:
            procs = self.procs()
        action = self.plan(procs)
        state = self.p['state']
        runs = state in ('started', 'restarted', 'reloaded')
        if action is None:
            if runs:
                procs = self.wait_stable()   # pm2's "online" proves nothing: check that it stays up
            res = self.result(procs, False)
            if runs and self.p['health_url']:
                res['health'] = self.health()
            return res
        args, cwd, with_env = action
        if self.module.check_mode:
            self.commands.append(' '.join(['pm2', *args]))
            if self.p['save']:
                self.commands.append('pm2 save --force')
            res = self.result(procs, True)
            return res
        self.run(args, with_env=with_env, cwd=cwd)
        self.acted = True
        health = None
        if runs:
            procs = self.wait_stable()
            if self.p['health_url']:
                health = self.health()
        if self.p['save']:
            self.save()
        res = self.result(self.procs() if not runs else procs, True)
        if health is not None:
            res['health'] = health
        return res


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='started', choices=['started', 'stopped', 'restarted', 'reloaded', 'absent']),
            script=dict(type='path'),
            cwd=dict(type='path'),
            interpreter=dict(type='str'),
            args=dict(type='list', elements='str'),
            ecosystem=dict(type='path'),
            env=dict(type='dict', no_log=True),
            update_env=dict(type='bool', default=False),
            pm2_home=dict(type='path'),
            executable=dict(type='str', default='pm2'),
            wait=dict(type='float', default=2),
            health_url=dict(type='str'),
            health_status=dict(type='int', default=200),
            health_timeout=dict(type='float', default=30),
            save=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('script', 'ecosystem')],
        supports_check_mode=True,
    )
    svc = Pm2Service(module)
    try:
        res = svc.apply()
    except Exception as e:   # pragma: no cover - last resort, keeps secrets out of the traceback text
        svc.fail('pm2_service failed for %s: %s' % (svc.name, _pm2.redact(to_native(e), svc.secrets)), exception=traceback.format_exc())
    for w in svc.warnings:
        module.warn(w)
    module.exit_json(**res)


if __name__ == '__main__':
    main()
