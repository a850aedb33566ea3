# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for bluegreen.dbfix.shared_db_switch (documentation: plugins/modules/shared_db_switch.py).

The step runs in ONE module execution on the managed host (module_utils/_switch.py runs the modules it needs
in that process). What only the controller knows is the task's ``module_defaults`` for those modules (by
name and through the ``group/bluegreen.dbfix.dbfix`` action group): this action resolves them and passes
them on as ``sub_defaults``, so each module call in the step behaves as if it were its own task.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

try:  # ansible-core >= 2.19
    from ansible.executor.module_common import _apply_action_arg_defaults as _with_defaults
except ImportError:  # pragma: no cover - ansible-core 2.18
    from ansible.executor.module_common import get_action_args_with_defaults as _old_defaults

    def _with_defaults(action, task, args, templar):
        return _old_defaults(action, args, task.module_defaults, templar, action_groups=task._parent._play._action_groups)

PREFIX = 'bluegreen.dbfix.'
# The modules a step runs (module_utils/_switch.py MODULES; a unit test keeps the two equal).
MODULES = ('dbfix_state', 'pm2_info', 'pm2_service', 'shared_db_link', 'sqlite_backup', 'sqlite_info')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if self._task.check_mode:
            result.update(changed=False, step=args.get('step'), role=args.get('role', 'other'),
                          msg='check mode: the %s step stops, links and starts apps, so it did nothing' % args.get('step'))
            return result
        subs = {}
        for name in MODULES:
            defaults = _with_defaults(PREFIX + name, self._task, {}, self._templar)
            if defaults:
                subs[name] = defaults
        if subs:
            args['sub_defaults'] = dict(subs, **(args.get('sub_defaults') or {}))
        try:
            result.update(self._execute_module(module_name=PREFIX + 'shared_db_switch', module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
