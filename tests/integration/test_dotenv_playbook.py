# SPDX-License-Identifier: GPL-3.0-or-later
"""dotenv_set through real ansible-playbook on localhost: the four-step pattern
(check -> real -> check -> real), a symlinked .env owned by the app's own user (a real second user, made with
useradd) whose owner, group and mode are kept, and no secret in the output even at -v with --diff. The written
file is then read by the real dotenv packages.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest
from _fourstep import PLAYBOOK_BIN, ROOT, run_four_steps

from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, 'node', 'dotenv_oracle.js')
TOOLS = os.path.join(ROOT, 'tests', 'tools', 'node_modules')
SECRET = 'pb-Secret "quoted" # not a comment'
ORIGINS = 'tauri://localhost,https://tauri.localhost,http://localhost:1420,http://localhost:1421'


PLAY_VARS = {'env_link': '{{ workdir }}/app/.env', 'env_target': '{{ workdir }}/real.env'}

SET_ARGS = {
    'path': '{{ env_link }}',
    'values': {'ALLOWED_ORIGINS': ORIGINS, 'DB_PASSWORD': '{{ secret }}'},
    'backup': True,
}

BEFORE = '''
    - name: Checksum before
      ansible.builtin.stat:
        path: "{{ env_target }}"
      register: before
'''

PROOF = '''
    - name: Checksum after check mode
      ansible.builtin.stat:
        path: "{{ env_target }}"
      register: after1

    - name: Step 1 named both keys and wrote nothing
      ansible.builtin.assert:
        that:
          - step1['keys'] | sort == ['ALLOWED_ORIGINS', 'DB_PASSWORD']
          - step1.changed_keys | sort == ['ALLOWED_ORIGINS', 'DB_PASSWORD']
          - after1.stat.checksum == before.stat.checksum
'''

EFFECT = '''
    - name: Read the link and the target
      ansible.builtin.stat:
        path: "{{ item }}"
        follow: false
      loop: ["{{ env_link }}", "{{ env_target }}"]
      register: after2

    - name: Step 2 changed the target, kept the link and the mode, made a backup
      ansible.builtin.assert:
        that:
          - step2.backup_file is defined
          - after2.results[0].stat.islnk
          - after2.results[1].stat.checksum != before.stat.checksum
          - after2.results[1].stat.mode == '0640'
          - after2.results[1].stat.pw_name == app_user
          - after2.results[1].stat.gr_name == app_user
'''

AGAIN = '''
    - name: Step 4 made no second backup
      ansible.builtin.assert:
        that:
          - step4.backup_file is not defined
'''

ORIGINAL = b'# TimeTracking server\r\nPORT=3000\r\nexport NODE_ENV=production\r\n#ALLOWED_ORIGINS=http://localhost:5173\r\nDB_PASSWORD="old-password-value"'


@pytest.fixture
def app_user():
    with local_user('dbfixpb') as u:
        yield u


def test_four_steps_at_the_ansible_level(tmp_path, app_user):
    assert os.path.exists(PLAYBOOK_BIN), 'needs ansible-playbook next to the test interpreter'
    assert shutil.which('node') and os.path.isdir(os.path.join(TOOLS, 'dotenv16')), 'needs node and make node-tools'
    (tmp_path / 'app').mkdir()
    target = tmp_path / 'real.env'
    target.write_bytes(ORIGINAL)
    os.chown(target, app_user.uid, app_user.gid)
    os.chmod(target, 0o640)
    (tmp_path / 'app' / '.env').symlink_to(target)
    steps = run_four_steps(tmp_path, 'bluegreen.dbfix.dotenv_set', SET_ARGS, play_vars=PLAY_VARS, before=BEFORE, proof=PROOF,
                           effect=EFFECT, again=AGAIN, extra_vars={'secret': SECRET, 'app_user': app_user.name}, options=('-v', '--diff'), timeout=300)
    # the secret must not show up anywhere, including the -v results and the --diff output
    assert SECRET not in steps.output
    assert 'old-password-value' not in steps.output
    # the backup of step 2 holds the file as it was, byte for byte
    with open(steps.results[1]['backup_file'], 'rb') as f:
        assert f.read() == ORIGINAL
    st = os.stat(steps.results[1]['backup_file'])
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (app_user.uid, app_user.gid, 0o640)
    data = target.read_bytes()
    # other lines byte for byte, the commented-out line untouched
    assert data.startswith(b'# TimeTracking server\r\nPORT=3000\r\nexport NODE_ENV=production\r\n#ALLOWED_ORIGINS=http://localhost:5173\r\n')
    payload = json.dumps([base64.b64encode(data).decode()])
    parsed = json.loads(subprocess.run(['node', ORACLE, TOOLS], input=payload, capture_output=True, text=True, check=True,
                                       timeout=120).stdout)[0]
    for parser in ('16', '17', '18', '18fast'):
        assert parsed[parser] == {'PORT': '3000', 'NODE_ENV': 'production', 'ALLOWED_ORIGINS': ORIGINS, 'DB_PASSWORD': SECRET}
