# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based: whatever pm2_service is given (names, env dicts, health URLs, durations, states), a run ends in
a result or a fail_json with a message, never a traceback (nor the module's last-resort handler).

Two levels, both with real pm2 (tests/tools/node_modules/.bin/pm2):

* check mode against a PM2_HOME without a daemon: argument validation and planning, fast, no pm2 call;
* real runs against a live daemon holding two processes (``a``, ``b``) for states that act on a name
  (stopped/absent/restarted): whatever the name (``all``, ``/a/``, ``-a``, ``0``, ...), ``a`` and ``b`` stay
  online unless the name is exactly theirs.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'integration'))
from _pm2_helpers import IDLE, PM2, kill_home, pm2, require_tools, run_module, statuses

from ansible_collections.bluegreen.dbfix.plugins.modules import pm2_service

TEXT = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=24)
SPECIAL_NAMES = ['all', '-x', '--name', '/a/', '/.*/', '0', '1', '0x1', '1e3', 'Infinity', ' 1 ', 'a.json', 'x.config.js',
                 'my app', 'a,b', '$HOME', '~root', 'a\nb', '__proto__', 'a' * 300]
NAMES = st.one_of(TEXT, st.sampled_from(SPECIAL_NAMES))
ENV_VALUES = st.one_of(TEXT, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True),
                       st.lists(TEXT, max_size=2), st.dictionaries(TEXT, TEXT, max_size=2))
ENVS = st.one_of(st.none(), st.dictionaries(st.one_of(TEXT, st.sampled_from(['__proto__', 'A=B', '', 'PATH'])), ENV_VALUES,
                                            max_size=4))
URLS = st.one_of(st.none(), TEXT, st.sampled_from(['http://127.0.0.1:1/', 'https://[::1]:99999/', 'ftp://x/', 'file:///etc/passwd',
                                                   'http://', 'http://a b/', 'http://127.0.0.1:8080/h?x=1', 'javascript:1',
                                                   'http://[::1/']))
DURATIONS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10 ** 9))


def _no_traceback(r):
    assert 'exception' not in r, r.get('exception')
    if r.get('failed'):
        assert r.get('msg') and not r['msg'].startswith('pm2_service failed for'), r.get('msg')


@pytest.fixture(scope='module')
def idle_home():
    require_tools()
    home = tempfile.mkdtemp(prefix='pm2hp-', dir='/tmp')
    try:
        yield home
    finally:
        kill_home(home)


ARGS = st.fixed_dictionaries({
    'name': NAMES, 'state': st.sampled_from(['started', 'stopped', 'restarted', 'reloaded', 'absent']),
    'wait': DURATIONS, 'health_timeout': DURATIONS, 'lock_timeout': DURATIONS, 'health_status': st.integers(-5, 1000),
    'save': st.booleans(),
}, optional={
    'env': ENVS, 'health_url': URLS, 'args': st.lists(TEXT, max_size=3), 'interpreter': TEXT, 'cwd': TEXT,
    'update_env': st.booleans(), 'env_file': TEXT,
})


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=ARGS, script=st.one_of(st.none(), st.just(IDLE), TEXT), eco=st.booleans())
def test_any_arguments_end_in_result_or_message_in_check_mode(a, script, eco):
    require_tools()
    home = tempfile.mkdtemp(prefix='pm2hq-', dir='/tmp')
    try:
        a = dict(a, executable=PM2, pm2_home=home)
        if script is not None:
            a['ecosystem' if eco else 'script'] = script
        r = run_module(pm2_service, a, check=True)
        _no_traceback(r)
        if not r.get('failed'):
            for k in ('wait', 'health_timeout', 'lock_timeout'):
                assert math.isfinite(a[k]) and 0 <= a[k] <= 86400, (k, a[k])
        assert not os.path.exists(os.path.join(home, 'pm2.pid')), 'check mode started a pm2 daemon'
        assert sorted(os.listdir(home)) == [], 'check mode wrote into PM2_HOME'
    finally:
        shutil.rmtree(home, ignore_errors=True)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=NAMES.filter(lambda n: n not in ('a', 'b')), state=st.sampled_from(['stopped', 'absent', 'restarted', 'reloaded']),
       with_script=st.booleans())
def test_any_name_touches_no_other_process_on_a_live_daemon(idle_home, name, state, with_script):
    if not statuses(idle_home):
        for n in ('a', 'b'):
            pm2(idle_home, 'start', IDLE, '--name', n)
    a = {'name': name, 'executable': PM2, 'pm2_home': idle_home, 'state': state, 'wait': 0}
    if with_script:
        a['script'] = IDLE
    r = run_module(pm2_service, a)
    _no_traceback(r)
    now = statuses(idle_home)
    assert now.get('a') == 'online' and now.get('b') == 'online', (name, state, now, r.get('msg'))
    # whatever the name started (restarted with script), remove it again so the next example starts clean
    extra = [n for n in now if n not in ('a', 'b')]
    if extra:
        assert extra == [name], (extra, name)
        r = run_module(pm2_service, {'name': name, 'executable': PM2, 'pm2_home': idle_home, 'state': 'absent'})
        assert not r.get('failed') and r['status'] == 'absent', r.get('msg')
