#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: promote_gate
short_description: Decide whether a blue/green color may become production
version_added: "1.2.0"
description:
  - Evaluates every gate of a promotion and returns the verdict as data; it changes nothing.
  - The candidate's health URL must answer O(health_status) (and match O(health_body_regex)); every smoke URL must
    answer O(smoke_status); its pm2 process (from a M(bluegreen.dbfix.pm2_info) result) must be online and must not
    have restarted for O(stable_seconds); the shared database must hold the columns the candidate expects
    (from a M(bluegreen.dbfix.sqlite_info) result with C(expect_columns)).
  - A failing gate does not fail the task; RV(passed) is false and RV(reasons) names every failing gate, so the
    caller can refuse the promotion and report all of them at once.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Reads only (HTTP GETs); runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  color:
    description: The candidate color (for the messages).
    type: str
    required: true
  health_url:
    description: The candidate's own health URL (not through the proxy).
    type: str
    required: true
  health_status:
    description: The only HTTP status that counts as healthy.
    type: int
    default: 200
  health_body_regex:
    description: When set, the health body must match this regular expression.
    type: str
    default: ''
  smoke_urls:
    description: More URLs of the candidate that must answer O(smoke_status) (GET).
    type: list
    elements: str
    default: []
  smoke_status:
    description: The status every smoke URL must answer.
    type: int
    default: 200
  timeout:
    description: Seconds each HTTP request may take.
    type: float
    default: 5
  pm2_name:
    description: The candidate's pm2 process name.
    type: str
    required: true
  pm2_info:
    description: The registered result of M(bluegreen.dbfix.pm2_info) for the candidate's daemon.
    type: dict
    required: true
  stable_seconds:
    description: The candidate's pm2 process must have run this many seconds without a restart.
    type: float
    default: 10
  schema:
    description:
      - The registered result of M(bluegreen.dbfix.sqlite_info) on the shared database with the candidate's
        C(expect_columns). Empty skips the schema gate.
    type: dict
    default: {}
  db:
    description: The shared database path (for the messages).
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Read the candidate's pm2 process
  bluegreen.dbfix.pm2_info:
    name: [timetracking-green]
    open_files: false
  register: pm2

- name: Check the candidate's expected columns on the shared DB
  bluegreen.dbfix.sqlite_info:
    path: /home/ubuntu/database-shared.db
    expect_columns:
      users: [id, email, position]
  register: schema

- name: Gates
  bluegreen.dbfix.promote_gate:
    color: green
    health_url: http://127.0.0.1:3001/api/health
    smoke_urls: [http://127.0.0.1:3001/api/users/me]
    pm2_name: timetracking-green
    pm2_info: "{{ pm2 }}"
    stable_seconds: 10
    schema: "{{ schema }}"
    db: /home/ubuntu/database-shared.db
  register: gate

- name: Refuse a failing candidate
  ansible.builtin.fail:
    msg: "{{ gate.reasons | join('; ') }}"
  when: not gate.passed
"""

RETURN = r"""
passed:
  description: Whether every gate passed.
  returned: always
  type: bool
reasons:
  description: One line per failing gate (empty when RV(passed)).
  returned: always
  type: list
  elements: str
checks:
  description: Gate name (health, schema, pm2, smoke) to C(ok) or why it failed.
  returned: always
  type: dict
color:
  description: The candidate color.
  returned: always
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _promote


def main():
    module = AnsibleModule(
        argument_spec=dict(
            color=dict(type='str', required=True),
            health_url=dict(type='str', required=True),
            health_status=dict(type='int', default=200),
            health_body_regex=dict(type='str', default=''),
            smoke_urls=dict(type='list', elements='str', default=[]),
            smoke_status=dict(type='int', default=200),
            timeout=dict(type='float', default=5),
            pm2_name=dict(type='str', required=True),
            pm2_info=dict(type='dict', required=True),
            stable_seconds=dict(type='float', default=10),
            schema=dict(type='dict', default={}),
            db=dict(type='str', default=''),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['health_body_regex']:
        try:
            re.compile(p['health_body_regex'])
        except re.error as e:
            module.fail_json(msg='health_body_regex %r is not a valid regular expression (%s). Fix dbfix_health_body_regex.'
                             % (p['health_body_regex'], e))
    if not 0 < p['timeout'] <= 300:
        module.fail_json(msg='timeout %s is not between 0 and 300 seconds. Give a positive number of seconds.' % p['timeout'])
    if p['stable_seconds'] < 0:
        module.fail_json(msg='stable_seconds %s is negative. Give 0 or more seconds.' % p['stable_seconds'])
    if p['pm2_info'].get('failed'):
        module.fail_json(msg='The pm2_info result given for %s is a failed task (%s). Fix pm2 access first.'
                         % (p['pm2_name'], p['pm2_info'].get('msg', '?')))
    if p['schema'].get('failed'):
        module.fail_json(msg='The sqlite_info result given for %s is a failed task (%s). Fix the shared database first.'
                         % (p['db'], p['schema'].get('msg', '?')))
    health = _promote.http_get(p['health_url'], p['timeout'])
    smoke = [_promote.http_get(u, p['timeout']) for u in p['smoke_urls']]
    verdict = _promote.gate(p['color'], health=health, health_status=p['health_status'],
                            health_body_regex=p['health_body_regex'], smoke=smoke, smoke_status=p['smoke_status'],
                            pm2_info=p['pm2_info'], pm2_name=p['pm2_name'], stable_seconds=p['stable_seconds'],
                            schema=p['schema'], db=p['db'])
    module.exit_json(changed=False, **verdict)


if __name__ == '__main__':
    main()
