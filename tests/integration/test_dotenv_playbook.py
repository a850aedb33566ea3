# SPDX-License-Identifier: GPL-3.0-or-later
"""dotenv_set through real ansible-playbook on localhost: the four-step pattern
(check -> real -> check -> real), a symlinked .env, and no secret in the output
even at -v with --diff. The written file is then read by the real dotenv packages.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORACLE = os.path.join(HERE, 'node', 'dotenv_oracle.js')
TOOLS = os.path.join(ROOT, 'tests', 'tools', 'node_modules')
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
SECRET = 'pb-Secret "quoted" # not a comment'
ORIGINS = 'tauri://localhost,https://tauri.localhost,http://localhost:1420,http://localhost:1421'

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason='needs ansible-playbook next to the test interpreter')

PLAYBOOK = textwrap.dedent('''\
    - name: Four steps for dotenv_set
      hosts: localhost
      gather_facts: false
      vars:
        env_link: "{{ workdir }}/app/.env"
        env_target: "{{ workdir }}/real.env"
        set_args: &set_args
          path: "{{ env_link }}"
          values:
            ALLOWED_ORIGINS: "%(origins)s"
            DB_PASSWORD: "{{ secret }}"
          backup: true
      tasks:
        - name: Checksum before
          ansible.builtin.stat:
            path: "{{ env_target }}"
          register: before

        - name: Step 1, check mode
          bluegreen.dbfix.dotenv_set: *set_args
          check_mode: true
          register: step1

        - name: Checksum after check mode
          ansible.builtin.stat:
            path: "{{ env_target }}"
          register: after1

        - name: Step 1 reported a change and wrote nothing
          ansible.builtin.assert:
            that:
              - step1 is changed
              - step1['keys'] | sort == ['ALLOWED_ORIGINS', 'DB_PASSWORD']
              - step1.changed_keys | sort == ['ALLOWED_ORIGINS', 'DB_PASSWORD']
              - after1.stat.checksum == before.stat.checksum

        - name: Step 2, real run
          bluegreen.dbfix.dotenv_set: *set_args
          register: step2

        - name: Read the link and the target
          ansible.builtin.stat:
            path: "{{ item }}"
            follow: false
          loop: ["{{ env_link }}", "{{ env_target }}"]
          register: after2

        - name: Step 2 changed the target, kept the link and the mode, made a backup
          ansible.builtin.assert:
            that:
              - step2 is changed
              - step2.backup_file is defined
              - after2.results[0].stat.islnk
              - after2.results[1].stat.checksum != before.stat.checksum
              - after2.results[1].stat.mode == '0600'

        - name: Step 3, check mode again
          bluegreen.dbfix.dotenv_set: *set_args
          check_mode: true
          register: step3

        - name: Step 4, real run again
          bluegreen.dbfix.dotenv_set: *set_args
          register: step4

        - name: Steps 3 and 4 changed nothing
          ansible.builtin.assert:
            that:
              - step3 is not changed
              - step4 is not changed
              - step4.backup_file is not defined
''') % {'origins': ORIGINS}

ORIGINAL = b'# TimeTracking server\r\nPORT=3000\r\nexport NODE_ENV=production\r\n#ALLOWED_ORIGINS=http://localhost:5173\r\nDB_PASSWORD="old-password-value"'


def test_four_steps_at_the_ansible_level(tmp_path):
    (tmp_path / 'app').mkdir()
    target = tmp_path / 'real.env'
    target.write_bytes(ORIGINAL)
    os.chmod(target, 0o600)
    (tmp_path / 'app' / '.env').symlink_to(target)
    pb = tmp_path / 'pb.yml'
    pb.write_text(PLAYBOOK)
    extra = json.dumps({'workdir': str(tmp_path), 'secret': SECRET, 'ansible_python_interpreter': sys.executable})
    proc = subprocess.run([PLAYBOOK_BIN, '-i', 'localhost,', '-c', 'local', '-v', '--diff', str(pb), '-e', extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert 'failed=0' in proc.stdout
    # the secret must not show up anywhere, including the -v results and the --diff output
    assert SECRET not in proc.stdout + proc.stderr
    assert 'old-password-value' not in proc.stdout + proc.stderr
    data = target.read_bytes()
    # other lines byte for byte, the commented-out line untouched
    assert data.startswith(b'# TimeTracking server\r\nPORT=3000\r\nexport NODE_ENV=production\r\n#ALLOWED_ORIGINS=http://localhost:5173\r\n')
    if shutil.which('node') and os.path.isdir(os.path.join(TOOLS, 'dotenv16')):
        payload = json.dumps([base64.b64encode(data).decode()])
        parsed = json.loads(subprocess.run(['node', ORACLE, TOOLS], input=payload, capture_output=True, text=True, check=True).stdout)[0]
        for parser in ('16', '17', '18', '18fast'):
            assert parsed[parser] == {'PORT': '3000', 'NODE_ENV': 'production', 'ALLOWED_ORIGINS': ORIGINS, 'DB_PASSWORD': SECRET}
