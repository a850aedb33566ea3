# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_service through real ansible-playbook on localhost with real pm2: the
four-step pattern (check -> real -> check -> real) for start, then stop and
absent, with a health gate, and no secret anywhere in the -v output.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PM2 = os.path.join(ROOT, 'tests', 'tools', 'node_modules', '.bin', 'pm2')
ECHO = os.path.join(HERE, 'node', 'echo_env.js')
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
SECRET = 'pm2-Playbook-Secret-91c2'

pytestmark = pytest.mark.skipif(not (os.path.exists(PM2) and os.path.exists(PLAYBOOK_BIN) and shutil.which('node')),
                                reason='needs node, pm2 (make node-tools) and ansible-playbook')

PLAYBOOK = textwrap.dedent('''\
    - name: Four steps for pm2_service
      hosts: localhost
      gather_facts: false
      module_defaults:
        group/bluegreen.dbfix.dbfix:
          executable: "{{ pm2 }}"
          pm2_home: "{{ pm2_home }}"
      vars:
        start_args: &start_args
          name: echo
          script: "{{ echo_js }}"
          args: ["PORT={{ port }}"]
          env:
            APP_SECRET: "{{ secret }}"
          wait: 1
          health_url: "http://127.0.0.1:{{ port }}/health"
          health_timeout: 15
      tasks:
        - name: Step 1, check mode
          bluegreen.dbfix.pm2_service: *start_args
          check_mode: true
          register: step1

        - name: List pm2 processes after check mode
          ansible.builtin.command: "{{ pm2 }} jlist"
          environment:
            PM2_HOME: "{{ pm2_home }}"
          changed_when: false
          register: list1

        - name: Step 1 would start, started nothing
          ansible.builtin.assert:
            that:
              - step1 is changed
              - step1.status == 'absent'
              - '"echo" not in list1.stdout'

        - name: Step 2, real run
          bluegreen.dbfix.pm2_service: *start_args
          register: step2

        - name: Ask the app for its secret over HTTP
          ansible.builtin.uri:
            url: "http://127.0.0.1:{{ port }}/env/APP_SECRET"
            return_content: true
          register: echoed
          no_log: true

        - name: Step 2 started it, healthy, env reached the process
          ansible.builtin.assert:
            that:
              - step2 is changed
              - step2.status == 'online'
              - step2.pid > 0
              - step2.health.status == 200
              - "'APP_SECRET' in step2.env_keys"
              - echoed.json.value == secret
            quiet: true

        - name: Step 3, check mode again
          bluegreen.dbfix.pm2_service: *start_args
          check_mode: true
          register: step3

        - name: Step 4, real run again
          bluegreen.dbfix.pm2_service: *start_args
          register: step4

        - name: Steps 3 and 4 changed nothing, same pid
          ansible.builtin.assert:
            that:
              - step3 is not changed
              - step4 is not changed
              - step4.pid == step2.pid

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
''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_four_steps_at_the_ansible_level(tmp_path):
    home = tempfile.mkdtemp(prefix='pm2p-', dir='/tmp')
    try:
        pb = tmp_path / 'pb.yml'
        pb.write_text(PLAYBOOK)
        extra = json.dumps({'pm2': PM2, 'pm2_home': home, 'echo_js': ECHO, 'port': free_port(), 'secret': SECRET,
                            'ansible_python_interpreter': sys.executable})
        proc = subprocess.run([PLAYBOOK_BIN, '-i', 'localhost,', '-c', 'local', '-v', str(pb), '-e', extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
        assert 'failed=0' in proc.stdout
        assert SECRET not in proc.stdout + proc.stderr
    finally:
        subprocess.run([PM2, 'kill'], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=60, check=False)
        shutil.rmtree(home, ignore_errors=True)
