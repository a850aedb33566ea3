# SPDX-License-Identifier: GPL-3.0-or-later
"""The CI gates themselves: a skip fails under CI=true, and a run that leaves things behind is caught.

Real pytest runs (a subprocess on a throwaway test file with this project's conftest) and real processes
and folders for scripts/leftovers.py.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LEFTOVERS = os.path.join(ROOT, 'scripts', 'leftovers.py')


def _inner_pytest(tmp_path, ci):
    (tmp_path / 'conftest.py').write_text(open(os.path.join(ROOT, 'tests', 'conftest.py')).read())
    (tmp_path / 'test_inner.py').write_text(
        'import pytest\n\n'
        'def test_ok():\n    pass\n\n'
        'def test_needs_tool():\n    pytest.skip("needs frobnicate")\n\n'
        '@pytest.mark.xfail(reason="known")\ndef test_xfail():\n    raise AssertionError\n')
    env = dict(os.environ, CI='true' if ci else '', DBFIX_SWEEP='')
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rfEs', str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120, check=False)


def test_a_skip_fails_under_ci(tmp_path):
    res = _inner_pytest(tmp_path, ci=True)
    assert res.returncode == 1, res.stdout
    assert '1 failed, 1 passed, 1 xfailed' in res.stdout
    assert 'test_needs_tool was skipped under CI=true (needs frobnicate)' in res.stdout


def test_a_skip_is_a_skip_outside_ci(tmp_path):
    res = _inner_pytest(tmp_path, ci=False)
    assert res.returncode == 0, res.stdout
    assert '1 passed, 1 skipped, 1 xfailed' in res.stdout


class _Pid:
    def __init__(self, pid):
        self.pid = pid


def _leftovers(cmd, snap, temp):
    env = dict(os.environ, DBFIX_LEFTOVER_TEMP_DIRS=str(temp))
    return subprocess.run([sys.executable, LEFTOVERS, cmd, str(snap)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_leftovers_names_a_pm2_like_daemon_and_a_temp_folder_then_passes_once_they_are_gone(tmp_path):
    temp = tmp_path / 'tmp'
    temp.mkdir()
    (temp / 'before').mkdir()
    snap = tmp_path / 'snap.json'
    assert _leftovers('snapshot', snap, temp).returncode == 0
    home = temp / 'dbfix-fault-x' / 'pm2home'
    home.mkdir(parents=True)
    # A daemonised process (its own session, reparented) with a PM2_HOME in a temp folder, as pm2's God Daemon is.
    # Double fork: the sleep is reparented away from this test, as pm2's daemon is.
    out = subprocess.run(['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], env=dict(os.environ, PM2_HOME=str(home)),
                         capture_output=True, text=True, start_new_session=True, timeout=30, check=True)
    proc = _Pid(int(out.stdout.strip()))
    try:
        time.sleep(0.2)
        res = _leftovers('check', snap, temp)
        assert res.returncode == 1, res.stdout
        assert 'pid %d: sleep 300 (PM2_HOME=%s' % (proc.pid, home) in res.stdout
        assert str(temp / 'dbfix-fault-x') in res.stdout
        assert str(temp / 'before') not in res.stdout
        assert 'leftovers: ' in res.stdout and ' failed' in res.stdout.splitlines()[-1]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        for _i in range(100):
            if not os.path.exists('/proc/%d' % proc.pid):
                break
            time.sleep(0.1)
    shutil.rmtree(temp / 'dbfix-fault-x')
    res = _leftovers('check', snap, temp)
    assert 'pid %d' % proc.pid not in res.stdout
    assert 'temp folders left behind' not in res.stdout


def _daemon(cwd, env):
    """A daemonised ``sleep 300`` (own session, reparented away), as pm2's God Daemon is; returns its pid."""
    out = subprocess.run(['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], cwd=str(cwd), env=env,
                         capture_output=True, text=True, start_new_session=True, timeout=30, check=True)
    return int(out.stdout.strip())


def _gone(pid, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open('/proc/%d/stat' % pid) as fh:
                if fh.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_the_session_sweep_under_xdist_stops_this_runs_leftovers_and_never_another_runs(tmp_path):
    """pytest -n 2 with DBFIX_SWEEP=1 (as scripts/test-pytest.sh): a test on a worker leaves a daemon in a new
    temp folder and one under its tmp_path; another run's daemon in a new temp folder (no session mark) lives on."""
    temp = tmp_path / 'tmp'
    temp.mkdir()
    pids = tmp_path / 'pids'
    (tmp_path / 'conftest.py').write_text(open(os.path.join(ROOT, 'tests', 'conftest.py')).read())
    (tmp_path / '_procs.py').write_text(open(os.path.join(ROOT, 'tests', '_procs.py')).read())
    (tmp_path / 'test_leaves.py').write_text(
        'import os, subprocess, tempfile\n\n'
        'def _d(cwd, env):\n'
        '    out = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], cwd=cwd, env=env,\n'
        '                         capture_output=True, text=True, start_new_session=True, check=True)\n'
        '    return out.stdout.strip()\n\n'
        'def test_leaves_daemons(tmp_path):\n'
        '    mine = tempfile.mkdtemp(prefix="mine-")\n'
        '    other = tempfile.mkdtemp(prefix="other-")\n'
        '    foreign = {k: v for k, v in os.environ.items() if k != "DBFIX_SWEEP_SESSION"}\n'
        '    with open(%r, "w") as fh:\n'
        '        fh.write(" ".join([_d(mine, dict(os.environ)), _d(str(tmp_path), dict(os.environ)), _d(other, foreign)]))\n'
        % str(pids))
    env = {k: v for k, v in os.environ.items() if k != 'DBFIX_SWEEP_SESSION'}
    env.update(CI='', DBFIX_SWEEP='1', TMPDIR=str(temp))
    res = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-n', '2', '-s',
                          '--basetemp', str(tmp_path / 'base'), str(tmp_path / 'test_leaves.py')],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)
    mine, under_base, other = (int(p) for p in pids.read_text().split())
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        assert '1 passed' in res.stdout
        assert _gone(mine), 'the daemon in the run\'s own new temp folder was not stopped: ' + res.stdout
        assert _gone(under_base), 'the daemon under basetemp was not stopped: ' + res.stdout
        assert 'conftest: stopped pid %d ' % mine in res.stdout
        assert 'conftest: stopped pid %d ' % under_base in res.stdout
        assert not _gone(other, seconds=0.5), 'another run\'s daemon was stopped: ' + res.stdout
        assert 'pid %d ' % other not in res.stdout
    finally:
        for pid in (mine, under_base, other):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _fake_checkout(tmp_path):
    """scripts/test-all.sh in a folder whose stage scripts are stand-ins: pytest and molecule each wait (bounded)
    for the other to have started, so they only both pass when they run at the same time."""
    root = tmp_path / 'co'
    (root / 'scripts').mkdir(parents=True)
    (root / '.venv' / 'bin').mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, 'scripts', 'test-all.sh'), root / 'scripts' / 'test-all.sh')
    marks = tmp_path / 'marks'
    marks.mkdir()
    wait_for = ('for _i in $(seq 100); do [ -e %s/$1 ] && break; sleep 0.1; done; '
                '[ -e %s/$1 ] || { echo "$1 never came"; exit 1; }' % (marks, marks))
    scripts = {
        'test-lint.sh': 'echo lint output; echo "lint: 3 passed, 0 failed, 0 skipped"',
        'sanity.sh': 'echo "sanity: 1 passed, 0 failed"',
        'test-pytest.sh': 'touch %s/pytest; w molecule || exit 1; echo "skip: tests/x.py::t - needs y"; '
                          'echo "pytest: 5 passed, 1 failed, 1 skipped"; exit 1' % marks,
        'test-molecule.sh': 'touch %s/molecule; w pytest || exit 1; echo molecule line 1; sleep 1; '
                            'echo molecule line 2; echo "molecule: 2 passed, 0 failed, 0 skipped"; touch %s/mol-done'
                            % (marks, marks),
    }
    for name, body in scripts.items():
        (root / 'scripts' / name).write_text('w() { %s; }\n%s\n' % (wait_for, body))
    (root / '.venv' / 'bin' / 'python').write_text(
        '#!/bin/sh\n[ "$2" = check ] || exit 0\n'
        'if [ -e %s/mol-done ] || [ "$DBFIX_STAGES" = "lint sanity" ]; then echo "leftovers: 1 passed, 0 failed, 0 skipped"; '
        'else echo "leftovers: 0 passed, 1 failed, 0 skipped (ran before molecule ended)"; exit 1; fi\n' % marks)
    (root / '.venv' / 'bin' / 'python').chmod(0o755)
    return root


def test_make_test_runs_molecule_beside_the_other_stages_and_keeps_summary_skips_and_exit_code(tmp_path):
    root = _fake_checkout(tmp_path)
    res = subprocess.run(['bash', str(root / 'scripts' / 'test-all.sh')], capture_output=True, text=True,
                         env=dict(os.environ, DBFIX_STAGES='', DBFIX_OVERLAP='1'), timeout=120, check=False)
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    tail = out[out.index('==== make test summary ===='):].splitlines()[1:]
    names = [line.split(':')[0] for line in tail[:5]]
    assert names == ['lint', 'sanity', 'pytest', 'molecule', 'leftovers'], out
    assert tail[0].startswith('lint: 3 passed, 0 failed, 0 skipped (') and tail[0].endswith(' s)')
    assert tail[1].startswith('sanity: 1 passed, 0 failed, 0 skipped (')
    assert tail[2].startswith('pytest: 5 passed, 1 failed, 1 skipped (')
    assert tail[3].startswith('molecule: 2 passed, 0 failed, 0 skipped (')
    assert tail[4].startswith('leftovers: 1 passed, 0 failed, 0 skipped (')
    assert tail[5:7] == ['skipped tests:', '  pytest: tests/x.py::t - needs y']
    assert tail[-1] == 'total: 12 passed, 1 failed, 1 skipped'
    # Molecule's output is printed whole, in one piece, after it ended.
    assert 'molecule line 1\nmolecule line 2\nmolecule: 2 passed' in out


def test_make_test_one_stage_after_the_other_when_asked(tmp_path):
    """DBFIX_OVERLAP=0: pytest waits in vain for molecule to start (fails), molecule then finds pytest's mark."""
    root = _fake_checkout(tmp_path)
    res = subprocess.run(['bash', str(root / 'scripts' / 'test-all.sh')], capture_output=True, text=True,
                         env=dict(os.environ, DBFIX_OVERLAP='0', DBFIX_STAGES='pytest molecule'), timeout=120,
                         check=False)
    assert res.returncode == 1
    assert 'molecule never came' in res.stdout
    assert '== pytest: 0 passed, 1 failed, 0 skipped (' in res.stdout
    assert '== molecule: 2 passed, 0 failed, 0 skipped (' in res.stdout
    assert 'started in the background' not in res.stdout
    assert res.stdout.splitlines()[-1] == 'total: 3 passed, 1 failed, 0 skipped'


def test_a_failed_scenario_ends_the_molecule_stage_with_its_failure_lines(tmp_path):
    """CI keeps only the tail of a run: the lines naming a scenario's failure (not a rescued one's ...ignoring,
    not a passing scenario's) come again right before the stage's summary line. Fake podman set-up, image and
    `molecule` (a shell script writing an Ansible-like log); the real scripts/test-molecule.sh."""
    root = tmp_path / 'checkout'
    (root / 'scripts').mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, 'scripts', 'test-molecule.sh'), root / 'scripts')
    (root / 'scripts' / 'podman-setup.sh').write_text('#!/bin/sh\nexit 0\n')
    (root / 'scripts' / 'build-image.sh').write_text('#!/bin/sh\necho localhost/fake:1\n')
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'molecule').write_text(
        '#!/bin/sh\n[ "$1" = test ] || exit 0\n'
        'if [ "$3" = bad ]; then\n'
        '  echo "fatal: [h]: FAILED! => {\\"msg\\": \\"expected, rescued\\"}"; echo "...ignoring"\n'
        '  for i in $(seq 1 200); do echo "ok: [h] filler $i"; done\n'
        '  echo "fatal: [h]: FAILED! => {\\"msg\\": \\"prober through nginx: failed 3\\"}"\n'
        '  echo "h : ok=5 changed=0 unreachable=0 failed=1"; exit 1\n'
        'fi\necho "ok: [h]"\n')
    for name in ('podman-setup.sh', 'build-image.sh'):
        (root / 'scripts' / name).chmod(0o755)
    (venv / 'bin' / 'molecule').chmod(0o755)
    for name in ('good', 'bad'):
        (root / 'molecule' / name).mkdir(parents=True)
        (root / 'molecule' / name / 'molecule.yml').write_text('platforms:\n  - name: %s-1\n' % name)
    res = subprocess.run(['bash', str(root / 'scripts' / 'test-molecule.sh')], capture_output=True, text=True,
                         env=dict(os.environ, VENV=str(venv), CI='', DBFIX_EMPTY_STORE=''), timeout=120, check=False)
    lines = res.stdout.splitlines()
    assert res.returncode == 1, res.stdout + res.stderr
    assert lines[-1] == 'molecule: 1 passed, 1 failed, 0 skipped', res.stdout
    end = lines[lines.index(next(x for x in lines if x.startswith('bad: failure lines of '))):]
    assert len(end) == 5 and 'expected, rescued' in end[1] and '...ignoring' not in ''.join(end), end
    assert 'prober through nginx: failed 3' in end[2] and 'failed=1' in end[3], end
    assert not any(x.startswith('good: failure lines') for x in lines), res.stdout
    assert not list((root / '.cache' / 'molecule-logs').glob('digest.*'))
