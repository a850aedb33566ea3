# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the dbfix_state module (plugins/modules/dbfix_state.py holds its documentation).

Here, not in the module, so that shared_db_switch can run it in its own process (module_utils/_inproc.py)."""

from __future__ import annotations

import copy
import json
import os

from ansible_collections.bluegreen.dbfix.plugins.module_utils._atomic import write_file


def merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read(module, path):
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        module.fail_json(msg='Cannot read the state file %s: %s. Run as a user that can read it.' % (path, e))
    try:
        state = json.loads(raw.decode('utf-8'))
    except ValueError as e:
        module.fail_json(msg='State file %s is not valid JSON (%s). It was left as it is; fix or move it away and run again '
                             '(the rollback role reads it).' % (path, e))
    if not isinstance(state, dict):
        module.fail_json(msg='State file %s holds a JSON %s, not an object. It was left as it is; fix or move it away and run again.'
                             % (path, type(state).__name__))
    return state


def write(module, path, state):
    folder = os.path.dirname(path) or '.'
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700)
        st = os.stat(path) if os.path.exists(path) else None
        data = (json.dumps(state, indent=4, sort_keys=True) + '\n').encode('utf-8')
        if st is None:
            write_file(path, data, 0o600)
        else:
            write_file(path, data, st.st_mode & 0o7777, st.st_uid, st.st_gid)
    except OSError as e:
        module.fail_json(msg='Cannot write the state file %s: %s. It was left as it was; make %s writable and run again.' % (path, e, folder))


def where(db_path, shared_db):
    real_shared = os.path.realpath(shared_db)
    islnk = os.path.islink(db_path)
    try:
        lst = os.lstat(db_path)
    except OSError:
        lst = None
    return {
        'exists': os.path.exists(db_path),
        'islnk': islnk,
        'linked': islnk and os.path.exists(db_path) and os.path.realpath(db_path) == real_shared,
        'shared_exists': os.path.exists(shared_db),
        'shared_real': real_shared,
        'inode': lst.st_ino if lst else None,
        'dev': lst.st_dev if lst else None,
    }


MODULE_KWARGS = dict(
    argument_spec=dict(
        path=dict(type='path', required=True),
        update=dict(type='dict', default={}),
        remove=dict(type='list', elements='str', default=[]),
        db_path=dict(type='path'),
        shared_db=dict(type='path'),
        fact=dict(type='str', default=''),
    ),
    required_together=[('db_path', 'shared_db')],
    supports_check_mode=True,
)


def run(module):
    """The module's work for an AnsibleModule (or an _inproc.SubModule) built from MODULE_KWARGS."""
    p = module.params
    before = read(module, p['path'])
    state = merge(before or {}, p['update'])
    for key in p['remove']:
        state.pop(key, None)
    changed = state != (before or {}) or (before is None and bool(p['update']))
    if changed and not module.check_mode:
        write(module, p['path'], state)
    production = state.get('production')
    result = dict(changed=changed, state=state, exists=before is not None,
                  production=production.get('color') if isinstance(production, dict) else None)
    if module._diff:
        result['diff'] = {'before': before or {}, 'after': state, 'before_header': p['path'], 'after_header': p['path']}
    if p['db_path']:
        result['db'] = where(p['db_path'], p['shared_db'])
    if p['fact']:
        result['ansible_facts'] = {p['fact']: state}
    module.exit_json(**result)
