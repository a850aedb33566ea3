#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cors_preflight
short_description: Prove an app's CORS settings with real preflight requests
version_added: "1.3.0"
description:
  - Sends one CORS preflight (C(OPTIONS) with C(Origin) and C(Access-Control-Request-Method)) to O(url) from each of
    O(allowed_origins) and one from O(foreign_origin), all in one module run, and fails unless every allowed origin is
    answered with one of O(status) and echoed back exactly in C(Access-Control-Allow-Origin), and the foreign origin is
    answered without being echoed (nor C(*)).
  - A C(*) does not count as allowing an origin (browsers refuse it for requests with credentials).
  - The requests go from the managed host, so O(url) is usually the app's own C(http://127.0.0.1:PORT/...).
  - It reads only; bodies of the answers are not returned.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Sends the same requests in check mode (they change nothing).
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  url:
    description: The URL the preflight requests go to (C(http) or C(https)).
    type: str
    required: true
  allowed_origins:
    description: Origins that must be allowed.
    type: list
    elements: str
    required: true
  foreign_origin:
    description: An origin that must be refused. It must not be one of O(allowed_origins).
    type: str
    default: https://not-allowed.example
  request_method:
    description: The method the preflights ask for (C(Access-Control-Request-Method)).
    type: str
    default: GET
  status:
    description: HTTP statuses an allowed origin's preflight may be answered with.
    type: list
    elements: int
    default: [200, 204]
  timeout:
    description: Seconds all the requests together may take (one deadline for the whole check).
    type: float
    default: 10
seealso:
  - module: bluegreen.dbfix.dotenv_set
  - module: bluegreen.dbfix.pm2_service
"""

EXAMPLES = r"""
- name: Prove the allowed origins and that a foreign one is refused
  bluegreen.dbfix.cors_preflight:
    url: http://127.0.0.1:3000/api/health
    allowed_origins:
      - tauri://localhost
      - https://app.example.com
  register: preflight

- name: Show what the app answered
  ansible.builtin.debug:
    var: preflight.allowed
"""

RETURN = r"""
allowed:
  description: Each allowed origin and the C(Access-Control-Allow-Origin) the app answered for it (empty when none).
  returned: always
  type: dict
  sample: {"tauri://localhost": "tauri://localhost"}
foreign_refused:
  description: Whether the foreign origin was answered and neither echoed nor allowed with C(*).
  returned: always
  type: bool
  sample: true
answers:
  description: One entry per request, in order (C(origin), C(status), C(allow_origin), C(ms), C(error)); the foreign origin last.
  returned: always
  type: list
  elements: dict
  sample: [{"origin": "tauri://localhost", "status": 204, "allow_origin": "tauri://localhost", "ms": 3.1, "error": ""}]
problems:
  description: What is wrong, one line each (empty when the check passed).
  returned: always
  type: list
  elements: str
  sample: []
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _cors, _http


def run(p):
    deadline = time.monotonic() + max(0.0, p['timeout'])
    origins = [*dict.fromkeys(p['allowed_origins']), p['foreign_origin']]
    answers = {}
    rows = []
    for origin in origins:
        left = deadline - time.monotonic()
        if left <= 0:
            a = dict(url=p['url'], status=0, headers={}, body='', ms=0.0,
                     error='not sent: the %g s timeout for the whole check had passed' % p['timeout'])
        else:
            a = _http.request(p['url'], 'OPTIONS', timeout=left, user_agent='bluegreen.dbfix-cors',
                              headers={'Origin': origin, 'Access-Control-Request-Method': p['request_method']})
        answers[origin] = a
        rows.append(dict(origin=origin, status=a['status'], allow_origin=_cors.allow_origin(a), ms=a['ms'], error=a['error']))
    v = _cors.verdict(p['url'], answers, origins[:-1], p['foreign_origin'], tuple(p['status']))
    return dict(changed=False, allowed=v['allowed'], foreign_refused=v['foreign_refused'], answers=rows, problems=v['problems'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type='str', required=True),
            allowed_origins=dict(type='list', elements='str', required=True),
            foreign_origin=dict(type='str', default='https://not-allowed.example'),
            request_method=dict(type='str', default='GET'),
            status=dict(type='list', elements='int', default=[200, 204]),
            timeout=dict(type='float', default=10),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p['url'].startswith(('http://', 'https://')):
        module.fail_json(msg='url %r is not an http(s) URL; give the full URL the preflights go to, e.g. '
                             'http://127.0.0.1:3000/api/health' % p['url'])
    if p['foreign_origin'] in p['allowed_origins']:
        module.fail_json(msg='foreign_origin %s is also in allowed_origins; pick an origin the app must refuse'
                             % p['foreign_origin'])
    if not p['status']:
        module.fail_json(msg='status is empty; give the HTTP statuses an allowed preflight may be answered with, e.g. [200, 204]')
    res = run(p)
    if res['problems']:
        module.fail_json(msg='CORS preflight check failed: %s. Check the origins the app reads (its .env) and that it '
                             'was restarted after they changed; if this URL does not handle CORS at all, send the preflights '
                             'to a route that does (the cors role: dbfix_cors_verify_path) or leave the check out '
                             '(dbfix_cors_verify: false).' % '; '.join(res['problems']), **res)
    module.exit_json(**res)


if __name__ == '__main__':
    main()
