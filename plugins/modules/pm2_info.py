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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._pm2_info import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
