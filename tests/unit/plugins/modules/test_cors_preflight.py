# SPDX-License-Identifier: GPL-3.0-or-later
"""cors_preflight against real local HTTP servers (an app that honours its list, one that answers ``*``, one that
ignores origins, one that is too slow, none at all)."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import cors_preflight
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(cors_preflight)
ALLOWED = ['tauri://localhost', 'https://app.example']


def serve(behaviour):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_OPTIONS(self):
            origin = self.headers.get('Origin', '')
            if behaviour == 'slow':
                time.sleep(3)
            self.send_response(204)
            if behaviour == 'list' and origin in ALLOWED:
                self.send_header('Access-Control-Allow-Origin', origin)
            elif behaviour == 'star':
                self.send_header('Access-Control-Allow-Origin', '*')
            elif behaviour == 'echo':
                self.send_header('Access-Control-Allow-Origin', origin)
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, 'http://127.0.0.1:%d/api/health' % srv.server_address[1]


@pytest.fixture
def app(request):
    srv, url = serve(request.param)
    yield url
    srv.shutdown()


@pytest.mark.parametrize('app', ['list'], indirect=True)
def test_an_app_that_honours_its_list_passes_in_one_run_also_in_check_mode(app):
    for check in (False, True):
        r = run({'url': app, 'allowed_origins': ALLOWED}, check=check)
        assert not r.get('failed') and r['changed'] is False, r
        assert r['allowed'] == {o: o for o in ALLOWED} and r['foreign_refused'] is True and r['problems'] == []
        assert [a['origin'] for a in r['answers']] == [*ALLOWED, 'https://not-allowed.example']
        assert all(a['status'] == 204 for a in r['answers'])


@pytest.mark.parametrize('app, words', [
    ('star', ['not allowed (Access-Control-Allow-Origin: *)', 'foreign origin https://not-allowed.example was allowed']),
    ('echo', ['foreign origin https://not-allowed.example was allowed (Access-Control-Allow-Origin: https://not-allowed.example)']),
    ('none', ['from tauri://localhost was not allowed (Access-Control-Allow-Origin: none)']),
], indirect=['app'])
def test_wrong_answers_fail_naming_the_url_the_origin_and_the_header(app, words):
    r = run({'url': app, 'allowed_origins': ALLOWED})
    assert r['failed'] and app in r['msg'] and 'restarted after they changed' in r['msg'] and 'dbfix_cors_verify_path' in r['msg'], r
    for w in words:
        assert w in r['msg'], r['msg']


@pytest.mark.parametrize('app', ['slow'], indirect=True)
def test_one_deadline_for_the_whole_check(app):
    t0 = time.monotonic()
    r = run({'url': app, 'allowed_origins': ALLOWED, 'timeout': 1.0})
    assert time.monotonic() - t0 < 2.5, 'three slow answers must not take three timeouts'
    assert r['failed'] and 'timed out' in r['msg'], r['msg']
    assert any('whole check had passed' in a['error'] for a in r['answers']), r['answers']


def test_nothing_listening_fails_clearly():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        url = 'http://127.0.0.1:%d/api/health' % s.getsockname()[1]
        r = run({'url': url, 'allowed_origins': ALLOWED[:1], 'timeout': 3})
    assert r['failed'] and 'no answer to the preflight from tauri://localhost' in r['msg'] and url in r['msg'], r


@pytest.mark.parametrize('args, words', [
    ({'url': '127.0.0.1:3000/x'}, 'is not an http(s) URL'),
    ({'url': 'http://127.0.0.1:1/', 'foreign_origin': 'tauri://localhost'}, 'is also in allowed_origins'),
    ({'url': 'http://127.0.0.1:1/', 'status': []}, 'status is empty'),
])
def test_bad_options_fail_before_any_request(args, words):
    r = run(dict({'allowed_origins': ALLOWED}, **args))
    assert r['failed'] and words in r['msg'] and 'answers' not in r, r
