# SPDX-License-Identifier: GPL-3.0-or-later
"""The CORS verdict (module_utils/_cors.py), as a truth table, and one HTTP request (_http.request) against a real
local server."""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _cors, _http

URL = 'http://127.0.0.1:1/x'
A, B, F = 'tauri://localhost', 'https://app.example', 'https://not-allowed.example'


def ans(status=204, acao=None, error=''):
    return {'status': 0 if error else status, 'error': error,
            'headers': {} if acao is None else {'access-control-allow-origin': acao}}


# (answer for A, answer for F, ok, foreign_refused, words in the problem)
TABLE = [
    (ans(204, A), ans(204), True, True, ''),
    (ans(200, A), ans(403), True, True, ''),
    (ans(200, ' %s ' % A), ans(200, ''), True, True, ''),          # whitespace around the header value
    (ans(204, '*'), ans(204), False, True, 'not allowed (Access-Control-Allow-Origin: *)'),
    (ans(204), ans(204), False, True, 'not allowed (Access-Control-Allow-Origin: none)'),
    (ans(204, B), ans(204), False, True, 'Access-Control-Allow-Origin: %s' % B),
    (ans(404, A), ans(204), False, True, 'answered HTTP 404, expected 200 or 204'),
    (ans(error='ConnectionRefusedError: x'), ans(204), False, True, 'no answer to the preflight from %s' % A),
    (ans(204, A), ans(204, F), False, False, 'foreign origin %s was allowed' % F),
    (ans(204, A), ans(204, '*'), False, False, 'Access-Control-Allow-Origin: *'),
    (ans(204, A), ans(error='TimeoutError: x'), False, False, 'no answer to the preflight from the foreign origin'),
]


@pytest.mark.parametrize('a, f, ok, refused, words', TABLE)
def test_verdict_truth_table(a, f, ok, refused, words):
    v = _cors.verdict(URL, {A: a, F: f}, [A], F)
    assert v['ok'] is ok and v['foreign_refused'] is refused
    assert v['allowed'] == {A: _cors.allow_origin(a)}
    if ok:
        assert v['problems'] == []
    else:
        assert len(v['problems']) == 1 and v['problems'][0].startswith(URL + ': ') and words in v['problems'][0], v


def test_every_allowed_origin_is_judged_and_an_unasked_one_fails():
    v = _cors.verdict(URL, {A: ans(204, A), F: ans(204)}, [A, B], F)
    assert not v['ok'] and v['allowed'] == {A: A, B: ''} and 'from %s (not asked)' % B in v['problems'][0]


@pytest.fixture(scope='module')
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_OPTIONS(self):
            origin = self.headers.get('Origin', '')
            self.send_response(204)
            if origin == A and self.headers.get('Access-Control-Request-Method') == 'GET':
                self.send_header('Access-Control-Allow-Origin', origin)
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d/api/health?x=1' % srv.server_address[1]
    srv.shutdown()


def test_request_returns_status_and_lower_case_headers(server):
    a = _http.request(server, 'OPTIONS', headers={'Origin': A, 'Access-Control-Request-Method': 'GET'})
    assert a['status'] == 204 and a['error'] == '' and a['headers']['access-control-allow-origin'] == A
    assert _http.request(server, 'OPTIONS', headers={'Origin': F})['headers'].get('access-control-allow-origin') is None


def test_request_never_raises():
    with socket.socket() as s:          # a port nobody listens on: bound, not listening
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        refused = _http.request('http://127.0.0.1:%d/' % port, timeout=2)
    assert refused['status'] == 0 and 'ConnectionRefused' in refused['error']
    assert _http.request('ftp://127.0.0.1/')['error'] == 'not an http(s) URL'
    assert _http.request('http://127.0.0.1:99999/')['status'] == 0      # a port out of range: an error, not a traceback
