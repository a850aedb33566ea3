# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a short list of this collection's modules on one host, in order, as one task.

Why: in phase 2 every task between stopping the apps and their health being
back is downtime, and each task costs a full round of Ansible overhead for all
hosts. Steps that one host can do alone (stop its app, then seed the shared DB
or re-check its own DB) run here back to back, and different hosts may run
different steps in the same task.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

PREFIX = 'bluegreen.dbfix.'


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('steps',))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        steps = self._task.args.get('steps')
        if not isinstance(steps, list) or not steps:
            raise AnsibleActionFail('run_steps needs steps: a non-empty list of {module, args} (modules of bluegreen.dbfix).')
        checked = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or not isinstance(step.get('module'), str):
                raise AnsibleActionFail('run_steps: step %d must be a dict with a module name; found %r.' % (i + 1, step))
            name = step['module']
            if not name.startswith(PREFIX):
                name = PREFIX + name
            if name[len(PREFIX):] not in ('pm2_service', 'sqlite_backup', 'sqlite_info', 'sqlite_migrate', 'shared_db_link', 'dotenv_set'):
                raise AnsibleActionFail('run_steps: step %d runs %s; only bluegreen.dbfix modules are allowed.' % (i + 1, step['module']))
            args = step.get('args') or {}
            if not isinstance(args, dict):
                raise AnsibleActionFail('run_steps: args of step %d (%s) must be a dict.' % (i + 1, name))
            # ansible-core < 2.19 leaves omit's placeholder inside nested data: drop it here.
            omit = (task_vars or {}).get('omit')
            if isinstance(omit, str):
                args = dict((k, v) for k, v in args.items() if v != omit)
            checked.append((name, args))

        results = []
        result.update(changed=False, results=results)
        try:
            for name, args in checked:
                res = self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
                res['step'] = name
                results.append(res)
                if res.get('changed'):
                    result['changed'] = True
                if res.get('failed'):
                    result['failed'] = True
                    result['msg'] = '%s failed: %s' % (name, to_text(res.get('msg', 'no message')))
                    break
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
