#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pm2_info
short_description: Read-only facts about pm2 processes, including the files each one holds open
version_added: "1.1.0"
description:
  - Lists pm2 processes (from C(pm2 jlist)) with their pm2 id, pid, status, restarts, working directory and script,
    and the regular files each process B(and its children) holds open, read from C(/proc/PID/fd) of the managed host.
  - Answers "which file does this app really have open" from the operating system, without asking the app.
    Files are matched by device and inode, so a file opened through a symlink (or a hard link) is found too.
  - Never starts a pm2 daemon. When no daemon runs for O(pm2_home), the result says so and lists no process.
  - Never returns a process's environment (it may hold secrets).
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description:
      - Names of the pm2 processes to describe. Empty describes every process of the daemon.
      - A name pm2 does not know is listed in RV(missing), not an error.
    type: list
    elements: str
    default: []
  pm2_home:
    description: C(PM2_HOME) of the daemon to ask; empty means C($PM2_HOME) or C(~/.pm2) of the user the module runs as.
    type: path
  executable:
    description: pm2 command (looked up on C(PATH)) or its absolute path.
    type: str
    default: pm2
  holds:
    description:
      - Files to look for among the open files of each process and its children. For each of them the result's
        RV(processes[].holds) lists the pids that hold that file's inode (empty when none does, or the file does not exist).
    type: list
    elements: path
    default: []
  open_files:
    description: List every regular file each process and its children hold open (RV(processes[].open_files)).
    type: bool
    default: true
  env_keys:
    description:
      - Also return the names (never the values) of the variables in the environment pm2 saved for each process, as
        RV(processes[].env_keys). Off by default, so the environment stays out of results unless asked for.
    type: bool
    default: false
notes:
  - A process of another user can only be inspected as that user or root; such pids are listed in
    RV(processes[].unreadable_pids) rather than guessed.
seealso:
  - module: bluegreen.dbfix.pm2_service
"""

EXAMPLES = r"""
- name: Which database does the app have open?
  bluegreen.dbfix.pm2_info:
    name: [timetracking-blue]
    pm2_home: /home/ubuntu/.pm2
    holds:
      - /home/ubuntu/database-shared.db
      - /home/ubuntu/TimeTracking-BLUE/server/database.db.OLD
  register: info

- name: Fail unless the app holds the shared database
  ansible.builtin.assert:
    that: info.processes[0].holds['/home/ubuntu/database-shared.db'] | length > 0
"""

RETURN = r"""
daemon_running:
  description: Whether a pm2 daemon runs for RV(pm2_home). When false, nothing was asked and RV(processes) is empty.
  returned: always
  type: bool
pm2_home:
  description: The C(PM2_HOME) that was used.
  returned: always
  type: str
processes:
  description: One entry per pm2 process (in pm2's order), without its environment.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: pm2 name.
      type: str
    pm_id:
      description: pm2 id.
      type: int
    pid:
      description: Operating-system pid (null when the process is not running).
      type: int
    status:
      description: pm2 status (online, stopped, errored, launching, ...).
      type: str
    restarts:
      description: pm2's restart counter.
      type: int
    uptime_ms:
      description: Milliseconds since pm2 last started it (0 unless online).
      type: int
    cwd:
      description: Working directory pm2 runs it in.
      type: str
    script:
      description: Script pm2 runs.
      type: str
    interpreter:
      description: Interpreter pm2 runs the script with.
      type: str
    env_keys:
      description:
        - Names of the variables in the environment pm2 saved for the process (never their values); only with
          O(env_keys=true). A name here overrides the app's C(.env) for Node's dotenv.
      type: list
      elements: str
    pids:
      description: The process's pid and the pids of all its children.
      type: list
      elements: int
    open_files:
      description: Regular files held open by RV(processes[].pids) (only with O(open_files=true)).
      type: list
      elements: dict
      contains:
        pid:
          description: Holding pid.
          type: int
        path:
          description: Path as C(/proc/PID/fd) shows it (ends in C( (deleted)) for a removed file).
          type: str
        dev:
          description: Device number.
          type: int
        ino:
          description: Inode number.
          type: int
    holds:
      description: For each path of O(holds), the pids of RV(processes[].pids) that hold its inode.
      type: dict
    unreadable_pids:
      description: Pids whose open files could not be read (permission); what they hold is unknown.
      type: list
      elements: int
missing:
  description: Names of O(name) pm2 does not know.
  returned: always
  type: list
  elements: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
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
    p = module.params
    home = _pm2.pm2_home(p['pm2_home'])
    result = dict(changed=False, pm2_home=home, daemon_running=False, processes=[], missing=list(p['name']))
    if not _pm2.daemon_running(home):
        # Asking pm2 would spawn a daemon: no daemon means no process.
        module.exit_json(**result)
    pm2 = find_pm2(module, p['executable'])
    procs = jlist(module, pm2, home)
    result['daemon_running'] = True
    wanted = set(p['name'])
    result['processes'] = [describe(proc, p['holds'], p['open_files'], p['env_keys']) for proc in procs if not wanted or proc.get('name') in wanted]
    known = {proc['name'] for proc in result['processes']}
    result['missing'] = [n for n in p['name'] if n not in known]
    module.exit_json(**result)


if __name__ == '__main__':
    main()
