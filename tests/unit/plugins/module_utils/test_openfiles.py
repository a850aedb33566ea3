# SPDX-License-Identifier: GPL-3.0-or-later
"""_openfiles.alive, start_time and children, on real processes (pm2_service proves a stop with them: a wrong "gone" would
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


def test_start_time_names_one_process():
    """start_time: stable for a running process, different for a later process, None once it is gone, a zombie,
    or unreadable (pm2_service's wait trusts /proc only when it gives an answer)."""
    me = _openfiles.start_time(os.getpid())
    assert isinstance(me, int) and me == _openfiles.start_time(os.getpid())
    with open('/proc/self/stat') as f:
        assert me == int(f.read().rsplit(')', 1)[1].split()[19])
    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        child = _openfiles.start_time(p.pid)
        assert child is not None and child >= me
    finally:
        p.kill()
        p.wait()
    assert _openfiles.start_time(p.pid) is None
    assert _openfiles.start_time('not-a-pid') is None
    assert _openfiles.start_time(os.getpid(), proc_root='/nonexistent') is None
    z = subprocess.Popen([sys.executable, '-c', 'pass'])
    deadline = time.monotonic() + 10
    while _openfiles.alive(z.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert os.path.exists('/proc/%d' % z.pid) and _openfiles.start_time(z.pid) is None   # a zombie
    finally:
        z.wait()
