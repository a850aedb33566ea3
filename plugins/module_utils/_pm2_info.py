# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the pm2_info module (plugins/modules/pm2_info.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import os
import shutil

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles, _pm2


def find_pm2(module, exe):
    if os.sep in exe:
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
        module.fail_json(msg='pm2 executable %s not found or not executable. Install pm2 (npm install -g pm2) or set executable.' % exe)
    found = module.get_bin_path(exe)
    if not found:
        module.fail_json(msg='pm2 executable %r not found on PATH (%s). Install pm2 (npm install -g pm2) or give its absolute path '
                             'in executable.' % (exe, os.environ.get('PATH', '')))
    return found


def jlist(module, pm2, home):
    cmd = [pm2, 'jlist']
    timeout = shutil.which('timeout')
    if timeout:
        cmd = [timeout, '--kill-after=10', str(_pm2.CALL_TIMEOUT), *cmd]
    rc, out, err = module.run_command(cmd, environ_update={'PM2_HOME': home})
    if timeout and rc in (124, 137):
        module.fail_json(msg='pm2 jlist did not answer within %d s (PM2_HOME=%s): its daemon may be hung. Check with '
                             '`PM2_HOME=%s pm2 ping`.' % (_pm2.CALL_TIMEOUT, home, home))
    if rc != 0:
        module.fail_json(msg='pm2 jlist failed (rc=%d, PM2_HOME=%s): %s' % (rc, home, _pm2.strip_ansi((err or '') + (out or '')).strip()[-800:]))
    try:
        return _pm2.parse_jlist(out)
    except _pm2.JlistError as e:
        module.fail_json(msg='cannot read pm2 state (PM2_HOME=%s): %s; run `pm2 jlist` by hand to see what pm2 prints.' % (home, e))


def describe(proc, holds, with_files, with_env_keys=False):
    s = _pm2.summary(proc)
    env = proc.get('pm2_env') or {}
    entry = {
        'name': s['name'], 'pm_id': s['pm_id'], 'pid': s['pid'], 'status': s['status'], 'restarts': s['restarts'],
        'uptime_ms': s['uptime_ms'], 'cwd': env.get('pm_cwd') or '', 'script': env.get('pm_exec_path') or '',
        'interpreter': env.get('exec_interpreter') or '',
    }
    if with_env_keys:
        entry['env_keys'] = _pm2.env_names(proc)
    pids = _openfiles.children(s['pid']) if s['pid'] and s['status'] == 'online' else []
    files, unreadable = _openfiles.open_files(pids)
    entry['pids'] = pids
    entry['unreadable_pids'] = unreadable
    entry['holds'] = _openfiles.which_hold(files, holds)
    if with_files:
        entry['open_files'] = files
    return entry


MODULE_KWARGS = dict(
    argument_spec=dict(
        name=dict(type='list', elements='str', default=[]),
        pm2_home=dict(type='path'),
        executable=dict(type='str', default='pm2'),
        holds=dict(type='list', elements='path', default=[]),
        open_files=dict(type='bool', default=True),
        env_keys=dict(type='bool', default=False, no_log=False),
    ),
    supports_check_mode=True,
)


def run(module, seen=None):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS.

    ``seen``: a list that receives pm2's whole process list as read here (for a pm2_service call that follows
    in the same process with no pm2 command in between, as its ``known``)."""
    p = module.params
    home = _pm2.pm2_home(p['pm2_home'])
    result = dict(changed=False, pm2_home=home, daemon_running=False, processes=[], missing=list(p['name']))
    if not _pm2.daemon_running(home):
        # Asking pm2 would spawn a daemon: no daemon means no process.
        module.exit_json(**result)
    pm2 = find_pm2(module, p['executable'])
    procs = jlist(module, pm2, home)
    if seen is not None:
        seen[:] = procs
    result['daemon_running'] = True
    wanted = set(p['name'])
    result['processes'] = [describe(proc, p['holds'], p['open_files'], p['env_keys']) for proc in procs if not wanted or proc.get('name') in wanted]
    known = {proc['name'] for proc in result['processes']}
    result['missing'] = [n for n in p['name'] if n not in known]
    module.exit_json(**result)
