# SPDX-License-Identifier: GPL-3.0-or-later
"""promote_gate as a whole module against a real local HTTP server: a passing and a refused candidate (the
verdict is data, the task does not fail), and bad inputs that fail naming what to fix."""
from __future__ import annotations

import http.server
import threading

import pytest
from _modrun import module_runner

from ansible_collections.bluegreen.dbfix.plugins.modules import promote_gate

run = module_runner(promote_gate)


@pytest.fixture(scope='module')
def url():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == '/api/health' else 404)
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d' % srv.server_address[1]
    srv.shutdown()


PM2 = {'daemon_running': True, 'processes': [{'name': 'tt-green', 'status': 'online', 'uptime_ms': 60000, 'restarts': 0}]}


def base(url, **kw):
    a = dict(color='green', health_url=url + '/api/health', pm2_name='tt-green', pm2_info=PM2)
    a.update(kw)
    return a


def test_passing_candidate(url):
    r = run(base(url, health_body_regex='"ok"', smoke_urls=[url + '/api/health']), check=True)
    assert r['passed'] and not r['changed'] and r['reasons'] == [] and set(r['checks'].values()) == {'ok'}


def test_refused_candidate_lists_every_gate(url):
    r = run(base(url, smoke_urls=[url + '/nope'], stable_seconds=3600,
                 schema={'schema_ok': False, 'missing_columns': {'users': ['position']}}, db='/srv/s.db'))
    assert not r.get('failed') and not r['passed']
    assert [x.split(':')[0] for x in r['reasons']] == ['schema', 'pm2', 'smoke'] and 'users.position' in r['reasons'][0]


@pytest.mark.parametrize('kw, words', [
    ({'health_body_regex': '('}, 'not a valid regular expression'),
    ({'timeout': 0}, 'not between 0 and 300'),
    ({'stable_seconds': -1}, 'is negative'),
    ({'pm2_info': {'failed': True, 'msg': 'boom'}}, 'is a failed task (boom)'),
    ({'schema': {'failed': True, 'msg': 'locked'}}, 'is a failed task (locked)'),
])
def test_bad_inputs(url, kw, words):
    r = run(base(url, **kw))
    assert r['failed'] and words in r['msg']
