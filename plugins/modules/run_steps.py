#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the work is done by the action plugin plugins/action/run_steps.py.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: run_steps
short_description: Run several bluegreen.dbfix modules on one host as one task
version_added: 0.1.0
description:
  - Runs the given steps (modules of this collection) on the host, in order, and stops at the first failure.
  - Used by the phase 2 role to keep the downtime window short. Each task costs a round of Ansible overhead, so
    the steps one host can do alone (stop its app, then seed the shared database or re-check its own database)
    run back to back in one task, and different hosts may run different steps in the same task.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
options:
  steps:
    description:
      - The steps, each a dict with C(module) (a module of C(bluegreen.dbfix), short or full name) and C(args).
    type: list
    elements: dict
    required: true
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: Runs on the controller as an action plugin, which executes each step's module on the host.
  async:
    support: none
    details: Cannot run asynchronously.
  bypass_host_loop:
    support: none
    details: Runs once per host, like a module.
  check_mode:
    support: full
    details: Each step runs in check mode when the task does.
  diff_mode:
    support: none
    details: The task shows no diff of its own; a step that returns one has it in its entry of RV(results).
  idempotent:
    support: full
    details: As idempotent as the steps it runs.
notes:
  - Only modules of C(bluegreen.dbfix) can be steps.
'''

EXAMPLES = r'''
- name: Stop the app, then seed the shared DB from its database
  bluegreen.dbfix.run_steps:
    steps:
      - module: pm2_service
        args:
          name: timetracking-blue
          state: stopped
      - module: sqlite_backup
        args:
          path: /home/ubuntu/TimeTracking-BLUE/server/database.db
          dest: /home/ubuntu/database-shared.db
'''

RETURN = r'''
results:
  description: The result of each step that ran, in order, with the module name in C(step).
  returned: always
  type: list
  elements: dict
  sample: [{"step": "bluegreen.dbfix.pm2_service", "changed": true, "status": "stopped"}]
msg:
  description: Which step failed and its message.
  returned: failure
  type: str
'''
