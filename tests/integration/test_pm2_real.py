# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_service against real pm2 7.0.4 running real Node apps (tests/integration/node/).

Each test gets its own PM2_HOME (short path under /tmp: pm2's unix sockets must
fit in 107 bytes) and `pm2 kill` runs at teardown. Apps listen on free loopback
ports. The module runs in-process through the real exit_json/fail_json, so the
"no secret in results" checks include Ansible's own masking. Nothing is mocked.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.request

import pytest
from _pm2_helpers import kill_home, private_home, require_tools
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles
from ansible_collections.bluegreen.dbfix.plugins.modules import pm2_service

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PM2 = os.path.join(ROOT, 'tests', 'tools', 'node_modules', '.bin', 'pm2')
ECHO = os.path.join(HERE, 'node', 'echo_env.js')
CRASH = os.path.join(HERE, 'node', 'crash.js')
SECRET = 'pm2-secret-Value-7f3a'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def pm2_home():
    require_tools()      # a missing pm2 or node fails the test; nothing is skipped
    with private_home(prefix='pm2t-') as home:   # `pm2 kill`, then SIGKILL of the God daemon if still alive
        yield home


def run(args, check=False):
    # in-process runs share ansible-core's global warning list: start each run empty
    _warnings._global_warnings.clear()
    _warnings._global_deprecations.clear()
    args = dict(args, _ansible_check_mode=check)
    buf = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        pm2_service.main()
    out = buf.getvalue()
    assert SECRET not in out, 'secret value leaked into the module result'
    return json.loads(out)


def warnings(r):
    """Warning texts (ansible-core 2.19 returns structured warning objects in-process)."""
    out = []
    for w in r.get('warnings') or []:
        out.append(w if isinstance(w, str) else json.dumps(w))
    return out


def jlist(home):
    out = subprocess.run([PM2, 'jlist'], env=dict(os.environ, PM2_HOME=home), capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index('\n[') + 1:] if not out.startswith('[') else out)


def get(port, path):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open('http://127.0.0.1:%d%s' % (port, path), timeout=5) as r:
        return json.loads(r.read())


def get_eventually(port, path, timeout=10):
    end = time.monotonic() + timeout
    while True:
        try:
            return get(port, path)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def base(home, **kw):
    args = {'name': 'echo', 'executable': PM2, 'pm2_home': home, 'wait': 1}
    args.update(kw)
    return args


def test_lifecycle_start_idempotent_restart_stop_absent(pm2_home):
    port = free_port()
    start = base(pm2_home, script=ECHO, env={'PORT': str(port), 'APP_SECRET': SECRET})

    r = run(start, check=True)                                   # 1. check: would start, nothing happens
    assert r['changed'] and r['status'] == 'absent'
    assert r['commands'] == ['pm2 start %s --name echo' % ECHO]
    assert jlist(pm2_home) == []

    r = run(start)                                               # 2. real: starts, stays up
    assert r['changed'] and r['status'] == 'online' and r['pid'] > 0
    assert r['exec_mode'] == 'fork_mode' and r['instances'] == 1 and r['restarts'] == 0
    assert 'APP_SECRET' in r['env_keys'] and 'PORT' in r['env_keys']
    assert r['uptime_ms'] >= 1000                               # it was watched for `wait` seconds
    assert get_eventually(port, '/env/APP_SECRET')['value'] == SECRET   # the env reached the process
    pid = r['pid']

    r = run(start, check=True)                                   # 3. check again: nothing to do
    assert not r['changed'] and r['pid'] == pid
    r = run(start)                                               # 4. real again: nothing done
    assert not r['changed'] and r['pid'] == pid and r['commands'] == []

    r = run(base(pm2_home, state='restarted', save=True))
    assert r['changed'] and r['pid'] != pid and r['status'] == 'online'
    dump = os.path.join(pm2_home, 'dump.pm2')
    with open(dump) as f:
        assert [p['name'] for p in json.load(f)] == ['echo']
    assert os.stat(dump).st_mode & 0o777 == 0o600               # pm2 writes the env values there
    assert get_eventually(port, '/pid')['pid'] == r['pid']

    r = run(base(pm2_home, state='stopped'), check=True)
    assert r['changed'] and jlist(pm2_home)[0]['pm2_env']['status'] == 'online'
    r = run(base(pm2_home, state='stopped'))
    assert r['changed'] and r['status'] == 'stopped' and r['pid'] is None
    r = run(base(pm2_home, state='stopped'))
    assert not r['changed']

    r = run(base(pm2_home, state='started'))                     # a known stopped process starts again
    assert r['changed'] and r['status'] == 'online'

    r = run(base(pm2_home, state='absent', save=True))
    assert r['changed'] and r['status'] == 'absent' and r['commands'] == ['pm2 delete echo', 'pm2 save --force']
    assert jlist(pm2_home) == []
    with open(dump) as f:
        assert json.load(f) == []                                # the deletion is saved: resurrect won't bring it back
    assert os.stat(dump).st_mode & 0o777 == 0o600
    r = run(base(pm2_home, state='absent'))
    assert not r['changed']


def test_update_env_reaches_the_process(pm2_home):
    port = free_port()
    r = run(base(pm2_home, script=ECHO, env={'PORT': str(port), 'ALLOWED_ORIGINS': 'http://old'}))
    assert r['changed']
    assert get_eventually(port, '/env/ALLOWED_ORIGINS')['value'] == 'http://old'

    new_env = {'PORT': str(port), 'ALLOWED_ORIGINS': 'tauri://localhost', 'APP_SECRET': SECRET}
    r = run(base(pm2_home, env=new_env))                         # differs, but update_env is off: warn only
    assert not r['changed']
    assert any('ALLOWED_ORIGINS' in w and 'update_env' in w for w in warnings(r))
    assert 'tauri://localhost' not in json.dumps(r)
    assert get(port, '/env/ALLOWED_ORIGINS')['value'] == 'http://old'

    r = run(base(pm2_home, env=new_env, update_env=True))
    assert r['changed'] and '--update-env' in r['commands'][0]
    assert get_eventually(port, '/env/ALLOWED_ORIGINS')['value'] == 'tauri://localhost'
    assert get(port, '/env/APP_SECRET')['value'] == SECRET
    assert 'APP_SECRET' in r['env_keys']

    r = run(base(pm2_home, env=new_env, update_env=True))        # now equal: idempotent
    assert not r['changed']

    # restarted without update_env keeps pm2's stored env; with it, the new env applies
    r = run(base(pm2_home, state='restarted', env={'ALLOWED_ORIGINS': 'https://new'}))
    assert r['changed']
    assert get_eventually(port, '/env/ALLOWED_ORIGINS')['value'] == 'tauri://localhost'
    r = run(base(pm2_home, state='restarted', env={'ALLOWED_ORIGINS': 'https://new'}, update_env=True))
    assert get_eventually(port, '/env/ALLOWED_ORIGINS')['value'] == 'https://new'


def test_crash_loop_is_caught_with_error_log_and_no_secret(pm2_home):
    r = run(base(pm2_home, name='crashy', script=CRASH, env={'CRASH_AFTER_MS': '300', 'APP_SECRET': SECRET}, wait=3))
    assert r['failed'] and r['changed']
    assert 'crashy is not staying up' in r['msg']
    assert 'crash.js: fatal: cannot open database' in r['msg']     # the tail of its error log
    assert 'crashy-error.log' in r['msg']
    # pm2 itself still claims "online" between crashes; the module did not believe it
    statuses = {p['pm2_env']['status'] for p in jlist(pm2_home)}
    assert statuses & {'online', 'launching', 'waiting restart', 'errored', 'stopped'}


def test_app_that_exits_at_once_is_caught(pm2_home):
    r = run(base(pm2_home, name='exits', script=CRASH, env={'CRASH_AFTER_MS': '0'}, wait=2))
    assert r['failed'] and 'exits is not staying up' in r['msg']


def test_healthy_app_that_dies_inside_the_wait_fails(pm2_home):
    """The health check runs inside the stability window: an app that answers healthy at once and exits 0.8 s later
    (pm2 restarts it) must still fail the task - /proc shows its pid gone, pm2 is asked and names the restart."""
    port = free_port()
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port, 'EXIT_AFTER_MS=800'], wait=3,
                 health_url='http://127.0.0.1:%d/health' % port, health_timeout=20))
    assert r['failed'] and 'echo is not staying up' in r['msg'], r
    assert 'restarted' in r['msg'] or 'left the online state' in r['msg'] or 'errored' in r['msg'], r['msg']
    assert 'exiting as EXIT_AFTER_MS asks' in r['msg']        # its error log tail


def test_crash_loop_with_a_health_url_is_a_crash_not_a_health_timeout(pm2_home):
    """An app that dies before it ever answers ends the health poll when /proc shows its pid gone: the message is
    the crash (with its log), not "did not answer within health_timeout" 60 s later."""
    closed = free_port()
    r = run(base(pm2_home, name='crashy', script=CRASH, env={'CRASH_AFTER_MS': '300'}, wait=1,
                 health_url='http://127.0.0.1:%d/health' % closed, health_timeout=60))
    assert r['failed'] and 'crashy is not staying up' in r['msg'], r
    assert 'health check' not in r['msg']
    assert 'crash.js: fatal: cannot open database' in r['msg']


def test_without_proc_the_wait_asks_pm2_then_checks_health(pm2_home, monkeypatch):
    """Where /proc cannot show the app's start time (a process hidden from this user by hidepid; cannot be set up
    here without remounting /proc, so start_time is patched to say "unknown"), pm2 is asked after the wait and
    the health check follows: a healthy app passes, an app that exits inside the wait fails."""
    monkeypatch.setattr(_openfiles, 'start_time', lambda pid, proc_root='/proc': None)
    port = free_port()
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port], wait=0.5,
                 health_url='http://127.0.0.1:%d/health' % port, health_timeout=20))
    assert r['changed'] and not r.get('failed') and r['health']['status'] == 200, r
    r = run(base(pm2_home, name='dies', script=ECHO, args=['PORT=%d' % free_port(), 'EXIT_AFTER_MS=300'], wait=2,
                 health_url='http://127.0.0.1:%d/health' % port, health_timeout=20))
    assert r['failed'] and 'dies is not staying up' in r['msg'], r


def test_health_gate_passes_after_warm_up(pm2_home):
    port = free_port()
    # non-secret settings go in args: env values are masked everywhere in the output (port included)
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port, 'HEALTH_DELAY_MS=2500'], wait=0.5,
                 health_url='http://127.0.0.1:%d/health' % port, health_timeout=20))
    assert r['changed'] and r['health']['status'] == 200
    # the first polls saw 503 (warming up); only a later one passed
    assert r['health']['elapsed_ms'] > 0


def test_health_gate_fails_with_status_and_body(pm2_home):
    port = free_port()
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port, 'HEALTH_STATUS=500'], env={'APP_SECRET': SECRET}, wait=0.5,
                 health_url='http://127.0.0.1:%d/health' % port, health_timeout=2))
    assert r['failed']
    assert 'HTTP 500' in r['msg'] and 'health status set by HEALTH_STATUS' in r['msg'] and str(port) in r['msg']
    assert r['health']['status'] == 500


def test_health_gate_body_regex(pm2_home):
    """health_body_regex: a 200 whose body matches passes; a 200 whose body does not match fails at the deadline, saying so."""
    port = free_port()
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port], wait=0.5,
                 health_url='http://127.0.0.1:%d/health' % port, health_body_regex='"ready": ?true', health_timeout=30))
    assert not r.get('failed') and r['changed'] and r['health']['status'] == 200, r
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port], wait=0,
                 health_url='http://127.0.0.1:%d/health' % port, health_body_regex='"db":', health_timeout=1))
    assert r['failed'] and 'does not match health_body_regex' in r['msg'] and 'ready' in r['msg'], r['msg']


def test_health_gate_connection_refused(pm2_home):
    port, closed = free_port(), free_port()
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % port], wait=0.5,
                 health_url='http://127.0.0.1:%d/health' % closed, health_timeout=1))
    assert r['failed'] and 'did not answer HTTP 200' in r['msg'] and 'refused' in r['msg'].lower()


def test_reloaded_in_fork_mode_restarts_with_warning(pm2_home):
    port = free_port()
    pid = run(base(pm2_home, script=ECHO, env={'PORT': str(port)}))['pid']
    r = run(base(pm2_home, state='reloaded'))
    assert r['changed'] and r['pid'] != pid and r['commands'] == ['pm2 restart echo']
    assert any('fork mode' in w for w in warnings(r))


def test_reloaded_in_cluster_mode_is_a_reload(pm2_home, tmp_path):
    port = free_port()
    eco = tmp_path / 'ecosystem.config.js'
    eco.write_text(textwrap.dedent('''\
        module.exports = { apps: [{ name: 'api', script: %s, exec_mode: 'cluster', instances: 2,
                                    env: { PORT: '%d' } }] }
        ''' % (json.dumps(ECHO), port)))
    r = run(base(pm2_home, name='api', ecosystem=str(eco)))
    assert r['changed'] and r['exec_mode'] == 'cluster_mode' and r['instances'] == 2
    pids = sorted(p['pid'] for p in jlist(pm2_home))
    r = run(base(pm2_home, name='api', state='reloaded', ecosystem=str(eco)))
    assert r['changed'] and r['commands'][0].startswith('pm2 reload %s --only api' % eco)
    assert not warnings(r)
    assert sorted(p['pid'] for p in jlist(pm2_home)) != pids
    assert get_eventually(port, '/env/PORT')['value'] == str(port)


def test_unknown_process_errors(pm2_home):
    for state in ('stopped', 'restarted', 'reloaded'):
        r = run(base(pm2_home, name='ghost', state=state))
        assert r['failed'] and 'does not know a process named ghost' in r['msg'] and pm2_home in r['msg']
    r = run(base(pm2_home, name='ghost'))
    assert r['failed'] and 'give script or ecosystem' in r['msg']


def test_no_daemon_spawned_when_not_needed(pm2_home):
    for state in ('absent', 'started'):
        r = run(base(pm2_home, state=state, script=ECHO, args=['PORT=%d' % free_port()]), check=True)
        assert r['status'] == 'absent' and r['changed'] == (state == 'started')
    r = run(base(pm2_home, state='absent'))
    assert not r['changed'] and r['status'] == 'absent'
    r = run(base(pm2_home, state='stopped'))
    assert r['failed'] and 'does not know a process named echo' in r['msg']
    assert not os.path.exists(os.path.join(pm2_home, 'pm2.pid'))     # no daemon was started for any of these


def test_first_call_banner_is_handled(pm2_home):
    # a fresh PM2_HOME: the first pm2 call spawns a daemon and prints the banner on stdout
    r = run(base(pm2_home, script=ECHO, args=['PORT=%d' % free_port()]))
    assert r['changed'] and r['status'] == 'online'
    assert os.path.exists(os.path.join(pm2_home, 'pm2.pid'))
    # and the banner really goes to stdout on a fresh home (what the parser had to skip)
    fresh = tempfile.mkdtemp(prefix='pm2b-', dir='/tmp')
    try:
        out = subprocess.run([PM2, 'jlist'], env=dict(os.environ, PM2_HOME=fresh), capture_output=True, text=True, check=True).stdout
        assert 'Spawning PM2 daemon' in out and out.rstrip().endswith('[]')
    finally:
        kill_home(fresh)


def test_pm2_failure_is_reported_with_command(pm2_home, tmp_path):
    r = run(base(pm2_home, name='nofile', script=str(tmp_path / 'missing.js')))
    assert r['failed'] and 'pm2 start' in r['msg'] and 'nofile' in r['msg']


def test_ecosystem_without_that_app_fails_clearly(pm2_home, tmp_path):
    eco = tmp_path / 'ecosystem.config.js'
    eco.write_text("module.exports = { apps: [{ name: 'other', script: %s, args: ['PORT=%d'] }] }\n" % (json.dumps(ECHO), free_port()))
    r = run(base(pm2_home, name='api', ecosystem=str(eco)))
    assert r['failed'] and 'no process named api' in r['msg'] and str(eco) in r['msg']


def logging_pm2(tmp_path):
    """The real pm2 behind a shell shim that appends each call's arguments to a log (to count pm2 calls)."""
    log = tmp_path / 'pm2-calls.log'
    shim = tmp_path / 'pm2-logged'
    shim.write_text('#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n' % (log, PM2))
    shim.chmod(0o755)
    return str(shim), log


def test_stop_is_proven_from_proc_without_asking_pm2_again(pm2_home, tmp_path):
    """pm2 stop ends with the app's processes gone: /proc proves that, so no second `pm2 jlist` follows it."""
    port = free_port()
    r = run(base(pm2_home, script=ECHO, env={'PORT': str(port)}))
    pid = r['pid']
    assert os.path.exists('/proc/%d' % pid)
    shim, log = logging_pm2(tmp_path)
    r = run(base(pm2_home, state='stopped', executable=shim))
    assert r['changed'] and r['status'] == 'stopped' and r['pid'] is None
    assert not os.path.exists('/proc/%d' % pid), 'the stopped app still runs'
    assert jlist(pm2_home)[0]['pm2_env']['status'] == 'stopped'         # pm2 agrees
    assert log.read_text().splitlines() == ['jlist', 'stop echo']
    r = run(base(pm2_home, state='stopped', executable=shim))         # stopped already: one look, nothing done
    assert not r['changed'] and log.read_text().splitlines()[2:] == ['jlist']
