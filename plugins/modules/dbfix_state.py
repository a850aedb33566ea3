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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._dbfix_state import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
