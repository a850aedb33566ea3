# SPDX-License-Identifier: GPL-3.0-or-later
"""_openfiles.alive and children, on real processes (pm2_service proves a stop with them: a wrong "gone" would
let the switch go on while the app still writes its own DB)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles


def test_a_running_process_is_alive():
    assert _openfiles.alive(os.getpid())
    assert _openfiles.alive(str(os.getpid()))


def test_a_reaped_process_is_gone():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    assert not _openfiles.alive(p.pid)


def test_a_zombie_is_not_alive():
    """An exited child not yet reaped still has /proc/PID, in state Z; it holds no files, so it counts as gone."""
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open('/proc/%d/stat' % p.pid) as f:
            if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                break
        time.sleep(0.02)
    else:
        raise AssertionError('the child never became a zombie')
    try:
        assert os.path.exists('/proc/%d' % p.pid)
        assert not _openfiles.alive(p.pid)
    finally:
        p.wait()


def test_bad_pids_are_not_alive(tmp_path):
    assert not _openfiles.alive('not-a-pid')
    assert not _openfiles.alive(os.getpid(), proc_root=str(tmp_path))   # no such /proc: nothing is proven alive


def test_children_finds_the_whole_tree():
    """A shell that started a sleeping grandchild: children() names the shell and the grandchild."""
    p = subprocess.Popen(['sh', '-c', 'sleep 30 & echo $!; wait'], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(p.stdout.readline())
        tree = _openfiles.children(p.pid)
        assert p.pid in tree and grandchild in tree and tree == sorted(tree)
    finally:
        p.kill()
        p.wait()
        subprocess.run(['kill', str(grandchild)], check=False)
