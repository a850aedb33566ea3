# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_service through real ansible-playbook on localhost with real pm2: the
four-step pattern (check -> real -> check -> real) for start, then stop and
absent, with a health gate, and no secret anywhere in the -v output.
"""
from __future__ import annotations

import os
import socket
import tempfile

from _fourstep import PLAYBOOK_BIN, ROOT, run_four_steps
from _pm2_helpers import kill_home, require_tools

HERE = os.path.dirname(os.path.abspath(__file__))
PM2 = os.path.join(ROOT, 'tests', 'tools', 'node_modules', '.bin', 'pm2')
ECHO = os.path.join(HERE, 'node', 'echo_env.js')
SECRET = 'pm2-Playbook-Secret-91c2'


MODULE_DEFAULTS = {'group/bluegreen.dbfix.dbfix': {'executable': '{{ pm2 }}', 'pm2_home': '{{ pm2_home }}'}}

START_ARGS = {
    'name': 'echo',
    'script': '{{ echo_js }}',
    'args': ['PORT={{ port }}'],
    'env': {'APP_SECRET': '{{ secret }}'},
    'wait': 1,
    'health_url': 'http://127.0.0.1:{{ port }}/health',
    'health_timeout': 15,
}

PROOF = '''
    - name: List pm2 processes after check mode
      ansible.builtin.command: "{{ pm2 }} jlist"
      environment:
        PM2_HOME: "{{ pm2_home }}"
      changed_when: false
      register: list1

    - name: Step 1 would start, started nothing
      ansible.builtin.assert:
        that:
          - step1.status == 'absent'
          - '"echo" not in list1.stdout'
'''

EFFECT = '''
    - name: Ask the app for its secret over HTTP
      ansible.builtin.uri:
        url: "http://127.0.0.1:{{ port }}/env/APP_SECRET"
        return_content: true
      register: echoed
      no_log: true

    - name: Step 2 started it, healthy, env reached the process
      ansible.builtin.assert:
        that:
          - step2.status == 'online'
          - step2.pid > 0
          - step2.health.status == 200
          - "'APP_SECRET' in step2.env_keys"
          - echoed.json.value == secret
        quiet: true
'''

AGAIN = '''
    - name: Step 4 kept the process of step 2
      ansible.builtin.assert:
        that:
          - step4.pid == step2.pid
'''

# After the four steps for start: stop and absent, each twice.
STOP_AND_REMOVE = '''
    - name: Stop twice
      bluegreen.dbfix.pm2_service:
        name: echo
        state: stopped
      register: stop
      loop: [1, 2]

    - name: Remove twice
      bluegreen.dbfix.pm2_service:
        name: echo
        state: absent
      register: gone
      loop: [1, 2]

    - name: Stop and remove are idempotent
      ansible.builtin.assert:
        that:
          - stop.results[0] is changed and stop.results[0].status == 'stopped'
          - stop.results[1] is not changed
          - gone.results[0] is changed and gone.results[0].status == 'absent'
          - gone.results[1] is not changed
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_four_steps_at_the_ansible_level(tmp_path):
    require_tools()      # a missing pm2 or node fails the test; nothing is skipped
    assert os.path.exists(PLAYBOOK_BIN), 'ansible-playbook missing at %s' % PLAYBOOK_BIN
    home = tempfile.mkdtemp(prefix='pm2p-', dir='/tmp')
    try:
        steps = run_four_steps(tmp_path, 'bluegreen.dbfix.pm2_service', START_ARGS, module_defaults=MODULE_DEFAULTS, proof=PROOF,
                               effect=EFFECT, again=AGAIN, after=STOP_AND_REMOVE, options=('-v',),
                               extra_vars={'pm2': PM2, 'pm2_home': home, 'echo_js': ECHO, 'port': free_port(), 'secret': SECRET})
        assert SECRET not in steps.output
    finally:
        kill_home(home)   # `pm2 kill`, then SIGKILL of the God daemon if still alive
