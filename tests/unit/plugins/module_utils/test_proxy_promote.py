# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of a promotion (_proxy, _promote): the upstream file, what a probe through the proxy means,
the watch's verdict (with a scripted probe sequence and a fake clock - the timing of real failures during a
reload cannot be produced on demand; the real proxy is in tests/integration/test_promote.py), and the gates."""
from __future__ import annotations

import http.server
import threading

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _promote, _proxy

GREEN = {'color': 'green', 'host': '127.0.0.1', 'port': 3001}
BLUE = {'color': 'blue', 'host': '127.0.0.1', 'port': 3000}


def test_render_and_marker():
    text = _proxy.render('/home/ubuntu/database-shared.db', '0.0.0.0', 80, GREEN, backup=BLUE)
    assert _proxy.production_of(text) == 'green'
    assert 'server 127.0.0.1:3001 max_fails=0;' in text and 'server 127.0.0.1:3000 backup max_fails=0;' in text
    assert 'listen 0.0.0.0:80;' in text and 'proxy_next_upstream error timeout http_502 http_503;' in text
    assert 'upstream dbfix_home-ubuntu-database-shared.db' not in text  # upstream names are identifiers
    assert 'upstream dbfix_home-ubuntu' not in text and 'upstream dbfix_home_ubuntu_database_shared_db {' in text
    assert 'backup' not in _proxy.render('p', '127.0.0.1', 8080, GREEN)
    assert _proxy.production_of('server {}') == '' and _proxy.production_of(None) == ''
    assert _proxy.conf_name('/srv/x y/db') == 'dbfix-srv-x-y-db.conf' and _proxy.conf_name('///') == 'dbfix-pair.conf'


@pytest.mark.parametrize('sample, why', [
    ({'status': 200, 'color': 'green', 'upstream': '127.0.0.1:3001'}, ''),
    ({'status': 200, 'color': 'green', 'upstream': ''}, ''),
    ({'error': 'ConnectionRefusedError: x'}, 'no answer'),
    ({'status': 502, 'color': 'green', 'upstream': '127.0.0.1:3001'}, 'HTTP 502'),
    ({'status': 200, 'color': 'blue', 'upstream': '127.0.0.1:3000'}, "'blue' configuration"),
    ({'status': 200, 'color': 'green', 'upstream': '127.0.0.1:3001, 127.0.0.1:3000'}, 'fell back'),
])
def test_sample_failure(sample, why):
    got = _proxy.sample_failure(sample, 'green', '127.0.0.1:3001')
    assert (why in got and got) if why else got == ''


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def scripted(samples):
    it = iter(samples)
    return lambda: dict(next(it), ms=1.0)


OK = {'status': 200, 'color': 'green', 'upstream': '127.0.0.1:3001', 'error': ''}
OLD = {'status': 200, 'color': 'blue', 'upstream': '127.0.0.1:3000', 'error': ''}


def test_watch_waits_for_the_new_generation_then_passes():
    c = Clock()
    v = _proxy.watch(scripted([OLD, OLD] + [OK] * 100), 'green', '127.0.0.1:3001', 200,
                     seconds=1.0, interval=0.1, switch_timeout=5, clock=c, sleep=c.sleep)
    assert v['ok'] and v['failures'] == 0 and v['probes'] >= 10 and v['switch_ms'] is not None


def test_watch_fails_on_first_bad_probe():
    c = Clock()
    bad = dict(OK, status=500)
    v = _proxy.watch(scripted([OK, OK, bad] + [OK] * 100), 'green', '127.0.0.1:3001', 200,
                     seconds=5.0, interval=0.1, switch_timeout=5, clock=c, sleep=c.sleep)
    assert not v['ok'] and v['failures'] == 1 and 'HTTP 500' in v['first_failure']


def test_watch_fails_when_nginx_never_switches():
    c = Clock()
    v = _proxy.watch(scripted([OLD] * 1000), 'green', '127.0.0.1:3001', 200,
                     seconds=1.0, interval=0.1, switch_timeout=2, clock=c, sleep=c.sleep)
    assert not v['ok'] and 'did not switch' in v['first_failure']


def test_watch_fails_at_once_on_fallback_or_no_answer():
    for first in (dict(OK, upstream='127.0.0.1:3001, 127.0.0.1:3000'), {'error': 'x', 'status': 0}):
        c = Clock()
        v = _proxy.watch(scripted([first] + [OK] * 10), 'green', '127.0.0.1:3001', 200,
                         seconds=1.0, interval=0.1, switch_timeout=5, clock=c, sleep=c.sleep)
        assert not v['ok'] and v['probes'] == 1


@pytest.fixture(scope='module')
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == '/ok' else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d' % srv.server_address[1]
    srv.shutdown()


def test_http_get_and_verdict(server):
    assert _promote.http_verdict(_promote.http_get(server + '/ok'), 200) == ''
    assert _promote.http_verdict(_promote.http_get(server + '/ok'), 200, '"status":"ok"') == ''
    assert 'does not match' in _promote.http_verdict(_promote.http_get(server + '/ok'), 200, 'healthy')
    assert 'HTTP 404' in _promote.http_verdict(_promote.http_get(server + '/nope'), 200)
    assert 'no answer' in _promote.http_verdict(_promote.http_get('ftp://x/'), 200)


def pm2(status='online', uptime_ms=60000, name='app-green', running=True):
    return {'daemon_running': running, 'pm2_home': '/h', 'processes': [
        {'name': name, 'status': status, 'uptime_ms': uptime_ms, 'restarts': 3}]}


@pytest.mark.parametrize('info, why', [
    (pm2(), ''),
    (pm2(uptime_ms=2000), 'must run 10'),
    (pm2(status='errored'), 'errored, not online'),
    (pm2(name='other'), 'does not know'),
    (pm2(running=False), 'no pm2 daemon'),
    ({}, 'no pm2 facts'),
])
def test_pm2_verdict(info, why):
    got = _promote.pm2_verdict(info, 'app-green', 10)
    assert (why in got) if why else got == ''


def test_gate_lists_every_failing_gate(server):
    schema = {'schema_ok': False, 'missing_columns': {'users': ['position']}}
    v = _promote.gate('green', health=_promote.http_get(server + '/nope'), health_status=200, health_body_regex='',
                      smoke=[_promote.http_get(server + '/ok')], smoke_status=200, pm2_info=pm2(uptime_ms=1),
                      pm2_name='app-green', stable_seconds=10, schema=schema, db='/srv/shared.db')
    assert not v['passed'] and [r.split(':')[0] for r in v['reasons']] == ['health', 'schema', 'pm2']
    assert 'users.position' in v['checks']['schema'] and v['checks']['smoke'] == 'ok'
    ok = _promote.gate('green', health=_promote.http_get(server + '/ok'), health_status=200, health_body_regex='',
                       smoke=[], smoke_status=200, pm2_info=pm2(), pm2_name='app-green', stable_seconds=10, schema={}, db='')
    assert ok['passed'] and ok['reasons'] == []
