# SPDX-License-Identifier: GPL-3.0-or-later
"""spawn_lock really excludes a second holder (real flock, real processes)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_second_process_waits_until_the_lock_is_released(tmp_path):
    home = str(tmp_path / 'pm2home')
    fd = _pm2.spawn_lock(home)
    assert fd is not None
    probe = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2
        fd = _pm2.spawn_lock(%r)
        print('got', fd is not None)
    """ % (os.path.join(ROOT, '.collections'), home))
    child = subprocess.Popen([sys.executable, '-c', probe], stdout=subprocess.PIPE, text=True)
    try:
        # While we hold the lock the child must still be blocked.
        try:
            child.wait(timeout=1.5)
            blocked = False
        except subprocess.TimeoutExpired:
            blocked = True
        assert blocked, 'second holder did not wait for the lock'
    finally:
        os.close(fd)
    out, _err = child.communicate(timeout=30)
    assert out.strip() == 'got True'


def test_other_homes_do_not_share_a_lock(tmp_path):
    a = _pm2.spawn_lock(str(tmp_path / 'a'))
    b = _pm2.spawn_lock(str(tmp_path / 'b'))
    try:
        assert a is not None and b is not None
    finally:
        os.close(a)
        os.close(b)
