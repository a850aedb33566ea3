# SPDX-License-Identifier: GPL-3.0-or-later
"""spawn_lock really excludes a second holder (real flock, real processes)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

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


def test_lock_lives_in_pm2_home_created_private(tmp_path):
    home = tmp_path / 'new' / 'pm2'
    fd = _pm2.spawn_lock(str(home))
    try:
        assert fd is not None
        assert _pm2.lock_path(str(home)) == str(home / _pm2.LOCK_NAME)
        assert os.stat(home).st_mode & 0o777 == 0o700
        st = os.stat(home / _pm2.LOCK_NAME)
        assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    finally:
        os.close(fd)


def test_symlink_at_lock_path_is_refused_and_not_followed(tmp_path):
    home = tmp_path / 'pm2'
    home.mkdir()
    target = tmp_path / 'target'
    os.symlink(target, home / _pm2.LOCK_NAME)           # dangling: following it would create the target
    with pytest.raises(_pm2.SpawnLockError, match='is a symlink'):
        _pm2.spawn_lock(str(home))
    assert not target.exists()


def test_fifo_at_lock_path_is_refused_without_hanging(tmp_path):
    home = tmp_path / 'pm2'
    home.mkdir()
    os.mkfifo(home / _pm2.LOCK_NAME)
    with pytest.raises(_pm2.SpawnLockError, match='not a regular file'):
        _pm2.spawn_lock(str(home), timeout=1)


def test_held_lock_times_out_naming_the_holder(tmp_path):
    home = str(tmp_path / 'pm2')
    held = _pm2.spawn_lock(home)
    try:
        t0 = time.monotonic()
        with pytest.raises(_pm2.SpawnLockError) as e:
            _pm2.spawn_lock(home, timeout=0.5)          # a second open file description: flock conflicts
        assert time.monotonic() - t0 < 5
        assert _pm2.lock_path(home) in str(e.value) and 'pid %d' % os.getpid() in str(e.value)
    finally:
        os.close(held)
