# SPDX-License-Identifier: GPL-3.0-or-later
"""proxy_upstream against a real nginx (Debian's, a plain process with its own prefix in tmp_path, loopback
ports) and two real HTTP backends: four steps, a refused configuration leaves the file as it was, a failing
watch reverts, bad inputs fail naming what to do."""
from __future__ import annotations

import hashlib
import http.server
import sys
import threading
import time
from pathlib import Path

import pytest
from _modrun import module_runner

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _proxy
from ansible_collections.bluegreen.dbfix.plugins.modules import proxy_upstream

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / 'integration'))
from _nginx import Nginx  # the same harness the integration tests use

run = module_runner(proxy_upstream)


def backend(code):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'x')

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def ng(tmp_path):
    n = Nginx(tmp_path / 'nginx').start()
    good, bad = backend(200), backend(500)
    yield n, good.server_address[1], bad.server_address[1]
    n.stop()
    good.shutdown()
    bad.shutdown()


def free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def args(n, port, prod, **kw):
    a = dict(name='pair1', conf_dir=str(n.conf_dir), listen_address='127.0.0.1', listen_port=port, production=prod,
             nginx=str(Path('/usr/sbin/nginx')), nginx_prefix=str(n.prefix), nginx_conf=str(n.conf))
    a.update(kw)
    return a


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


def test_four_steps_then_switch_with_watch(ng):
    n, good, _bad = ng
    port = free_port()
    blue = {'color': 'blue', 'port': good}
    a = args(n, port, blue)
    conf = n.conf_dir / 'dbfix-pair1.conf'
    r = run(a, check=True, diff=True)
    assert r['changed'] and not conf.exists() and 'blue' in r['diff']['after']
    r = run(a)
    assert r['changed'] and r['reloaded'] and _proxy.production_of(conf.read_text()) == 'blue'
    assert not run(a, check=True)['changed']
    r = run(a)
    assert not r['changed'] and not r['reloaded']
    # `nginx -s reload` only signals the master: the new listener on PORT is bound a moment later (seen once in a
    # loaded `make test`: connection refused right after the module returned). Wait for it, 10 s at most.
    deadline = time.monotonic() + 10
    s = _proxy.probe('127.0.0.1', port, '/')
    while s['status'] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        s = _proxy.probe('127.0.0.1', port, '/')
    assert s['status'] == 200 and s['color'] in ('blue', '')  # the old generation may still answer for a moment
    # Switch to "green" (the same good backend on another address is not possible, so route to it as green).
    green = {'color': 'green', 'host': 'localhost', 'port': good}
    r = run(args(n, port, green, watch_backup=blue, watch_seconds=0.5))
    assert r['changed'] and r['previous'] == 'blue' and r['production'] == 'green' and r['watch']['ok']
    assert 'backup' not in conf.read_text()


def test_failing_watch_puts_the_previous_file_back(ng):
    n, good, bad = ng
    port = free_port()
    blue = {'color': 'blue', 'port': good}
    assert run(args(n, port, blue))['changed']
    conf = n.conf_dir / 'dbfix-pair1.conf'
    before = sha(conf)
    r = run(args(n, port, {'color': 'green', 'port': bad}, watch_backup=blue, watch_seconds=1))
    assert r['failed'] and r['reverted'] and 'HTTP 500' in r['msg'] and sha(conf) == before
    assert sorted(p.name for p in n.conf_dir.iterdir()) == ['dbfix-pair1.conf']


def test_refused_configuration_leaves_the_file(ng):
    n, good, bad = ng
    port = free_port()
    conf = n.conf_dir / 'dbfix-pair1.conf'
    assert run(args(n, port, {'color': 'blue', 'port': good}))['changed']
    before = sha(conf)
    # Another file nginx includes is broken: nginx -t refuses the whole configuration.
    (n.conf_dir / 'zz-broken.conf').write_text('this is not nginx;\n')
    r = run(args(n, port, {'color': 'green', 'port': bad}))
    assert r['failed'] and 'nginx -t refused' in r['msg'] and sha(conf) == before
    (n.conf_dir / 'zz-broken.conf').unlink()


def test_not_running_nginx_fails_and_restores(tmp_path):
    n = Nginx(tmp_path / 'nginx')
    n.start()
    n.stop()
    r = run(args(n, free_port(), {'color': 'blue', 'port': 3000}))
    assert r['failed'] and 'reload failed' in r['msg'] and not (n.conf_dir / 'dbfix-pair1.conf').exists()
    r = run(args(n, free_port(), {'color': 'blue', 'port': 3000}, start=True))
    try:
        assert r['changed'] and r['reloaded'] and n.pid()
    finally:
        n.stop()


@pytest.mark.parametrize('kw, words', [
    ({'listen_port': 0}, 'listen_port 0'),
    ({'production': {'color': 'bl ue', 'port': 3000}}, 'a color is a word'),
    ({'probe_path': 'health'}, 'must start with /'),
    ({'watch_backup': {'color': 'green', 'port': 3000}}, 'is the production address'),
    ({'conf_dir': '/nonexistent/conf.d'}, 'is not a folder'),
    ({'watch_seconds': -1}, 'out of range'),
])
def test_bad_inputs(tmp_path, kw, words):
    n = Nginx(tmp_path / 'nginx')
    n.conf_dir.mkdir(parents=True)
    r = run(dict(args(n, 8080, {'color': 'blue', 'port': 3000}), **kw))
    assert r['failed'] and words in r['msg']
    assert list(n.conf_dir.iterdir()) == []
