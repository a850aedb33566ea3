#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dbfix_state
short_description: Read and update the per-host record of what the bluegreen.dbfix phases did
version_added: "1.1.0"
description:
  - Reads the JSON state file a host keeps of what each phase did (backups, C(.OLD) files), merges O(update) into it
    and removes the O(remove) sections, writing the file only when its content changes (atomically, mode C(0600) for a
    new file, mode and owner kept for an existing one; its folder is created with mode C(0700)).
  - With O(db_path) and O(shared_db) it also says where the host's database stands (RV(db)), that is whether it is
    already a link to the shared database.
  - With O(fact) the resulting state is also published as a host fact of that name, so one task reads (or writes)
    the state for every later task.
  - The C(production) section (C(color), C(previous), C(since)) records which color of the pair is production; the
    C(bluegreen.dbfix.promote) role writes it and RV(production) returns its color.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Computes the new state and whether it changes, and writes nothing.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  path:
    description: The state file (JSON object).
    type: path
    required: true
  update:
    description: Sections to merge into the state (recursively, like C(combine(recursive=true))).
    type: dict
    default: {}
  remove:
    description: Top-level sections to remove from the state.
    type: list
    elements: str
    default: []
  db_path:
    description: The app's database path, for RV(db).
    type: path
  shared_db:
    description: The pair's shared database path, for RV(db).
    type: path
  fact:
    description: Name of a host fact to publish the resulting state as; empty publishes none.
    type: str
    default: ''
notes:
  - A state file that is not valid JSON (or not a JSON object) makes the module fail naming the file; it is never overwritten.
"""

EXAMPLES = r"""
- name: Read the state and where the database stands
  bluegreen.dbfix.dbfix_state:
    path: /home/ubuntu/TimeTracking-BLUE/.dbfix/state.json
    db_path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    shared_db: /home/ubuntu/database-shared.db
    fact: dbfix_state
  register: where

- name: Record what phase 2 did
  bluegreen.dbfix.dbfix_state:
    path: /home/ubuntu/TimeTracking-BLUE/.dbfix/state.json
    update:
      phase2:
        old_file: /home/ubuntu/TimeTracking-BLUE/server/database.db.OLD
"""

RETURN = r"""
state:
  description: The state after the update (what the file holds, or would hold in check mode).
  returned: always
  type: dict
exists:
  description: Whether the state file existed before this task.
  returned: always
  type: bool
production:
  description: The color the state records as production (its C(production.color)); null when none is recorded.
  returned: always
  type: str
  sample: green
db:
  description: Where the database stands.
  returned: when O(db_path) and O(shared_db) are set
  type: dict
  contains:
    exists:
      description: O(db_path) exists (following a link).
      type: bool
    islnk:
      description: O(db_path) is a symlink.
      type: bool
    linked:
      description: O(db_path) is a symlink that resolves to the shared database.
      type: bool
    shared_exists:
      description: O(shared_db) exists.
      type: bool
    shared_real:
      description: O(shared_db) with symlinks resolved.
      type: str
    inode:
      description: Inode of O(db_path) itself (not following a link); null when it does not exist.
      type: int
    dev:
      description: Device of O(db_path) itself (not following a link); null when it does not exist.
      type: int
"""

import copy
import json
import os

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
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


if __name__ == '__main__':
    main()
