# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for bluegreen.dbfix.dbfix_report (documentation: plugins/modules/dbfix_report.py).

The report is the controller's file: it is written here, in the controller's process, instead of by a
``file`` task and a ``template`` loop (a module execution each, for files that never leave the controller).
"""

from __future__ import annotations

import os

from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic
from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError

SPEC = dict(
    dest_dir=dict(type='str', required=True),
    basename=dict(type='str', required=True),
    json_text=dict(type='str', required=True),
    markdown=dict(type='str', required=True),
)


def write_file(path, text):
    """Write ``text`` to ``path`` atomically with mode 0644 (the collection's one atomic file helper)."""
    _atomic.write_file(path, to_bytes(text, errors='surrogate_or_strict'), mode=0o644)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _dummy, p = self.validate_argument_spec(argument_spec=SPEC)
        base = p['basename']
        if not base or '/' in base or base in ('.', '..') or '\0' in base:
            return dict(result, failed=True, changed=False,
                        msg='basename %r is not a plain file name; give the report\'s name without a folder '
                            '(e.g. 20261201_101500-site)' % base)
        folder = os.path.abspath(os.path.expanduser(p['dest_dir']))
        paths = [os.path.join(folder, base + '.json'), os.path.join(folder, base + '.md')]
        try:
            # Missing folders are made 0755 (under the umask); an existing folder keeps its mode.
            os.makedirs(folder, mode=0o755, exist_ok=True)
            if not os.path.isdir(folder):
                raise NotADirectoryError('%s is not a folder' % folder)
            write_file(paths[0], p['json_text'] if p['json_text'].endswith('\n') else p['json_text'] + '\n')
            write_file(paths[1], p['markdown'])
        except (OSError, DbfixError) as e:
            return dict(result, failed=True, changed=False, files=[],
                        msg='cannot write the run report into %s: %s. Set dbfix_report_dir to a folder this controller '
                            'user can write (the managed hosts were not touched by this step).' % (folder, to_text(e)))
        # A new file per run: reporting is not a change to the managed hosts.
        return dict(result, changed=False, files=paths, dest_dir=folder)
