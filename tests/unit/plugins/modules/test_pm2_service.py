# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_service pieces that need no pm2 daemon: jlist parsing, summaries, redaction,
log tails, and the errors raised before pm2 is ever called.

Real pm2 is exercised in tests/integration/test_pm2_real.py. The banner below
is what pm2 7.0.4 printed on stdout for its first `jlist` on a fresh PM2_HOME
(captured once, since a fresh daemon cannot be forced to print it on demand in a
unit test); the integration tests see the real one.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2, _pm2_service
from ansible_collections.bluegreen.dbfix.plugins.modules import pm2_service
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

BANNER = (
    '\n                        -------------\n\n'
    '__/\\\\\\\\\\\\\\\\\\\\\\\\\\____/\\\\\\\\____________/\\\\\\\\____/\\\\\\\\\\\\\\\\\\_____\n'
    '                        Runtime Edition\n\n'
    '        PM2 is a Production Process Manager for Node.js applications\n'
    '                     with a built-in Load Balancer.\n\n'
    '                Start and Daemonize any application:\n'
    '                $ pm2 start app.js\n\n'
    '                        -------------\n\n'
    '\x1b[32m[PM2] \x1b[39mSpawning PM2 daemon with pm2_home=/tmp/pm2-x\n'
    '\x1b[32m[PM2] \x1b[39mPM2 Successfully daemonized\n'
)

PROC = {
    'name': 'api', 'pm_id': 3, 'pid': 4242,
    'monit': {'memory': 1, 'cpu': 0},
    'pm2_env': {
        'status': 'online', 'restart_time': 2, 'unstable_restarts': 0, 'pm_uptime': 1_000_000,
        'exec_mode': 'fork_mode', 'pm_err_log_path': '/nonexistent/api-error.log',
        'DB_PASSWORD': 'top-level-copy-of-secret',
        'env': {'DB_PASSWORD': 'stored-secret-value', 'PORT': '4100', 'PATH': '/usr/bin', 'api': {}},
    },
}


@pytest.mark.parametrize('out', [
    '[]',
    BANNER + '[]\n',
    BANNER + json.dumps([PROC]) + '\n',
    'noise before [PM2] x\n' + json.dumps([PROC]) + '\ntrailing [WARN] noise\n',
    json.dumps([PROC], indent=2),
])
def test_parse_jlist_finds_the_array_among_noise(out):
    procs = _pm2.parse_jlist(out)
    assert isinstance(procs, list)
    if 'api' in out:
        assert procs[0]['pid'] == 4242


@pytest.mark.parametrize('out', ['', BANNER, '[PM2] only noise [1, 2]', '{"name": "x"}'])
def test_parse_jlist_without_array_raises(out):
    with pytest.raises(_pm2.JlistError, match='no process list'):
        _pm2.parse_jlist(out)


def test_summary_has_facts_and_no_environment():
    s = _pm2.summary(PROC, now_ms=1_002_500)
    assert s == {'name': 'api', 'pm_id': 3, 'pid': 4242, 'status': 'online', 'restarts': 2, 'unstable_restarts': 0,
                 'uptime_ms': 2500, 'exec_mode': 'fork_mode', 'err_log': '/nonexistent/api-error.log'}
    assert 'secret' not in json.dumps(s)


def test_env_names_are_names_only_and_differs_compares_values():
    assert _pm2.env_names(PROC) == ['DB_PASSWORD', 'PATH', 'PORT']
    assert _pm2.env_differs(PROC, {'PORT': '4100'}) == []
    assert _pm2.env_differs(PROC, {'PORT': '4101', 'NEW': 'x'}) == ['NEW', 'PORT']


def test_redact_masks_given_and_stored_secret_values():
    secrets = _pm2.secret_values([PROC], extra={'given-secret'})
    text = _pm2.redact('boom stored-secret-value and given-secret, PATH=/usr/bin', secrets)
    assert 'stored-secret-value' not in text and 'given-secret' not in text
    assert '/usr/bin' in text           # PATH is not a secret worth masking


def test_tail_reads_last_lines_and_explains_missing(tmp_path):
    log = tmp_path / 'err.log'
    log.write_text(''.join('line %d\n' % i for i in range(100)))
    t = _pm2.tail(str(log), max_lines=3)
    assert t == 'line 97\nline 98\nline 99'
    assert 'cannot read' in _pm2.tail(str(tmp_path / 'missing.log'))
    assert 'no error log' in _pm2.tail(None)


run = module_runner(pm2_service)


def test_missing_pm2_path_says_how_to_install(tmp_path):
    r = run({'name': 'x', 'executable': str(tmp_path / 'no' / 'pm2')})
    assert r['failed']
    assert str(tmp_path / 'no' / 'pm2') in r['msg'] and 'npm install -g pm2' in r['msg']


def test_missing_pm2_on_path_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))
    r = run({'name': 'x', 'executable': 'pm2-that-does-not-exist'})
    assert r['failed'] and 'not found on PATH' in r['msg'] and 'npm install -g pm2' in r['msg']


def test_script_and_ecosystem_exclusive():
    r = run({'name': 'x', 'script': 'a.js', 'ecosystem': 'e.config.js'})
    assert r['failed'] and 'mutually exclusive' in r['msg']


def _fake_pm2(tmp_path, body):
    """A stand-in pm2 executable (a real program, not a mock) for failures real pm2 will not produce on demand."""
    exe = tmp_path / 'pm2'
    exe.write_text('#!/bin/sh\n' + body + '\n')
    exe.chmod(0o755)
    return str(exe)


def test_unparseable_jlist_fails_clearly(tmp_path):
    exe = _fake_pm2(tmp_path, 'echo "[PM2] something went sideways"; echo "not json"')
    r = run({'name': 'api', 'executable': exe, 'pm2_home': str(tmp_path)})
    assert r['failed'] and 'cannot read pm2 state for api' in r['msg'] and 'no process list' in r['msg']


def test_pm2_error_exit_reported_without_env_values(tmp_path, monkeypatch):
    # jlist works, start fails and echoes the secret it was given (pm2 never does; an app wrapper might)
    exe = _fake_pm2(tmp_path, 'if [ "$1" = jlist ]; then echo "[]"; exit 0; fi\n'
                              'echo "[PM2][ERROR] daemon unreachable; env had $APP_TOKEN" >&2; exit 3')
    r = run({'name': 'api', 'executable': exe, 'pm2_home': str(tmp_path), 'state': 'started', 'script': 'x.js',
             'env': {'APP_TOKEN': 'tok-very-secret-123'}})
    assert r['failed'] and 'rc=3' in r['msg'] and 'daemon unreachable; env had ********' in r['msg']
    assert 'pm2 start x.js --name api' in r['msg']
    assert 'tok-very-secret-123' not in json.dumps(r)


def test_redact_masks_short_secrets_as_tokens_only():
    text = 'PIN=42 after 1042 ms; mode ab in about; Z crashed'
    out = _pm2.redact(text, {'42', 'ab', 'Z', 'long-secret'})
    assert out == 'PIN=******** after 1042 ms; mode ******** in about; ******** crashed'
    assert _pm2.redact('x long-secretlong-secret y', {'long-secret'}) == 'x **************** y'


def test_secret_values_keep_short_values_and_skip_plain_ones():
    proc = {'pm2_env': {'env': {'PIN': '7', 'TOKEN': 'abcdefgh', 'PATH': '/usr/bin', 'api': {}, 'N': 3}}}
    assert _pm2.secret_values([proc]) == {'7', 'abcdefgh', '3'}


@pytest.mark.parametrize('name', ['all', '-x', '--', '/a/', '/', '0', ' 12 ', '0x1f', '1e3', 'Infinity', '-Infinity', '.5',
                                  'a.json', 'x.config.js', 'a.yml'])
def test_names_pm2_reads_specially(name):
    assert _pm2.name_problem(name)


@pytest.mark.parametrize('name', ['api', 'timetracking-blue', 'my app', 'NaN', 'a1', '1a', 'a/b', 'ALL', 'v1.2'])
def test_names_pm2_reads_exactly(name):
    assert _pm2.name_problem(name) is None


@pytest.mark.parametrize('args,needle', [
    ({'name': ''}, 'it is empty'),
    ({'name': 'a\x00b'}, 'control character'),
    ({'name': 'api', 'env': {'__proto__': 'x'}}, '__proto__'),
    ({'name': 'api', 'env': {'A=B': 'x'}}, 'no process environment can hold'),
    ({'name': 'api', 'env': {'A': ['x']}}, 'env.A is a list'),
    ({'name': 'api', 'env': {'A': 'x\x00'}}, 'NUL byte'),
    ({'name': 'api', 'wait': float('inf')}, 'wait must be a number of seconds'),
    ({'name': 'api', 'health_timeout': float('nan')}, 'health_timeout must be'),
    ({'name': 'api', 'lock_timeout': -1}, 'lock_timeout must be'),
    ({'name': 'api', 'health_status': 99}, 'health_status must be'),
    ({'name': 'api', 'health_url': 'file:///etc/passwd'}, 'only http:// and https://'),
    ({'name': 'api', 'health_url': 'http://h:99999/'}, 'not a valid URL'),
    ({'name': 'api', 'health_url': 'http://a b/'}, 'white space'),
    ({'name': 'api', 'health_body_regex': '(unclosed'}, 'health_body_regex'),
    ({'name': 'all', 'ecosystem': '/x/ecosystem.config.js'}, 'cannot be used with ecosystem'),
    ({'name': 'a,b', 'ecosystem': '/x/ecosystem.config.js'}, 'splits --only'),
])
def test_bad_arguments_fail_before_pm2_is_run(tmp_path, args, needle):
    exe = _fake_pm2(tmp_path, 'touch "%s/ran"; echo "[]"' % tmp_path)
    r = run(dict(args, executable=exe, pm2_home=str(tmp_path / 'home')))
    assert r['failed'] and needle in r['msg'] and 'exception' not in r
    assert not (tmp_path / 'ran').exists() and not (tmp_path / 'home').exists()


# The stop proven from /proc (Pm2Service._stopped_by_pid), on real processes: when the proof is not there, the
# caller must fall back to asking pm2 (None), never report a still running app as stopped.

def _stop_proof(procs, all_procs, alive_before):
    svc = types.SimpleNamespace(all_procs=list(all_procs))
    return _pm2_service.Pm2Service._stopped_by_pid(svc, procs, alive_before), svc.all_procs


def _proc(name, pid):
    return {'name': name, 'pid': pid, 'pm_id': pid, 'pm2_env': {'status': 'online', 'pm_id': pid}}


def test_stop_proof_needs_every_process_gone():
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    alive = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        app, other = _proc('api', gone.pid), _proc('other', alive.pid)
        # one process of the tree still runs (a child that outlived the stop, a reused pid): no proof
        assert _stop_proof([app], [app, other], [gone.pid, alive.pid])[0] is None
        # nothing known alive before the stop (e.g. /proc hides other users' processes): no proof either
        assert _stop_proof([app], [app, other], [])[0] is None
        assert _stop_proof([], [other], [gone.pid])[0] is None
        # every process gone: stopped without asking pm2; other apps in the whole list are kept as they were
        stopped, all_procs = _stop_proof([app], [app, other], [gone.pid])
        assert stopped == [dict(app, pid=0, pm2_env=dict(app['pm2_env'], status='stopped'))]
        assert all_procs == [stopped[0], other] and app['pm2_env']['status'] == 'online'   # input not changed
    finally:
        alive.kill()
        alive.wait()
