# SPDX-License-Identifier: GPL-3.0-or-later
"""bluegreen.dbfix.dbfix_report through real ansible-playbook: both files written by the controller, atomically,
0644; missing folders made 0755, an existing folder's mode kept; bad input ends in a clear failure."""
from __future__ import annotations

import json
import os
import stat

from _fourstep import run_playbook

TASK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the report
      bluegreen.dbfix.dbfix_report:
        dest_dir: "{{ dest }}"
        basename: "{{ base }}"
        json_text: "{{ {'ok': true, 'hosts': {'blue': {'n': 1}}} | to_nice_json }}"
        markdown: "# report\\n"
      register: r
    - name: Show it
      ansible.builtin.debug:
        var: r
"""


def playbook(tmp_path):
    pb = tmp_path / 'report.yml'
    pb.write_text(TASK)
    return str(pb)


def test_missing_folders_made_files_written_0644(tmp_path):
    dest = tmp_path / 'a' / 'b'
    out = run_playbook(playbook(tmp_path), {'dest': str(dest), 'base': '20261201_101500-site'})
    assert 'changed=0' in out and 'failed=0' in out, out
    assert sorted(os.listdir(dest)) == ['20261201_101500-site.json', '20261201_101500-site.md'], 'no temporary file left'
    assert json.loads((dest / '20261201_101500-site.json').read_text()) == {'ok': True, 'hosts': {'blue': {'n': 1}}}
    assert (dest / '20261201_101500-site.md').read_text() == '# report\n'
    for f in dest.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755 & ~current_umask()


def test_an_existing_folder_keeps_its_mode(tmp_path):
    dest = tmp_path / 'private'
    dest.mkdir(mode=0o700)
    os.chmod(dest, 0o700)
    run_playbook(playbook(tmp_path), {'dest': str(dest), 'base': 'r'})
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700 and (dest / 'r.json').is_file()


def test_bad_input_fails_clearly_and_writes_nothing(tmp_path):
    afile = tmp_path / 'plain-file'
    afile.write_text('x')
    out = run_playbook(playbook(tmp_path), {'dest': str(afile / 'sub'), 'base': 'r'}, expect_rc=2)
    assert 'cannot write the run report into %s' % (afile / 'sub') in out and 'dbfix_report_dir' in out, out
    assert 'Traceback' not in out
    out = run_playbook(playbook(tmp_path), {'dest': str(tmp_path / 'd'), 'base': '../escape'}, expect_rc=2)
    assert "basename '../escape' is not a plain file name" in out, out
    assert not (tmp_path / 'd').exists() and not (tmp_path / 'escape.json').exists()


def current_umask():
    old = os.umask(0)
    os.umask(old)
    return old
