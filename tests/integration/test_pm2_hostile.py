# SPDX-License-Identifier: GPL-3.0-or-later
"""pm2_service against hostile local users, secrets in crash logs, slow health endpoints and names pm2 reads
specially (issue 11, classes 4-8). Real pm2 7, real Node (and Python) apps, a real second user; each test has its
own PM2_HOME whose daemon is killed at teardown. Nothing is mocked.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import socketserver
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request

import pytest
from _pm2_helpers import CRASH_SECRETS, IDLE, PM2, as_user, free_port, jlist, pm2, private_home, require_tools, run_module, second_user, statuses

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _pm2
from ansible_collections.bluegreen.dbfix.plugins.modules import pm2_service


@pytest.fixture(autouse=True)
def _tools():
    require_tools()


@pytest.fixture
def home():
    with private_home() as h:
        yield h


def run(args, check=False):
    return run_module(pm2_service, args, check=check)


def base(home, **kw):
    args = {'name': 'echo', 'executable': PM2, 'pm2_home': home, 'wait': 0.5}
    args.update(kw)
    return args


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def old_lock_path(home):
    digest = hashlib.sha256(os.path.abspath(home).encode('utf-8')).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), '.dbfix-pm2-spawn-%s.lock' % digest)


HOLD = textwrap.dedent('''
    import fcntl, os, sys
    path = sys.argv[1] if len(sys.argv) > 1 else %r
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print('held', flush=True)
    sys.stdin.read()
''')


# -- class 4: the spawn lock -------------------------------------------------------------------------------------
def test_old_tmp_lock_held_by_another_user_no_longer_blocks(home, tmp_path):
    """The old predictable /tmp lock, created and held by a real second user, must not hang the module."""
    old = old_lock_path(home)
    with second_user() as pw:
        holder = as_user(pw, HOLD % old)
        try:
            assert holder.stdout.readline().strip() == 'held'
            assert os.stat(old).st_uid == pw.pw_uid
            t0 = time.monotonic()
            r = run(base(home, name='idle', script=IDLE, lock_timeout=5))
            assert not r.get('failed'), r.get('msg')
            assert r['status'] == 'online' and time.monotonic() - t0 < 60
            assert os.path.exists(os.path.join(home, _pm2.LOCK_NAME))
        finally:
            holder.kill()
            holder.wait(timeout=10)
            os.unlink(old)


def test_old_tmp_lock_symlink_planted_by_another_user_is_not_followed(home, tmp_path):
    victim = tmp_path / 'victim.conf'
    victim.write_text('precious\n')
    os.chmod(victim, 0o644)
    before = (sha(victim), os.stat(victim).st_mode, os.stat(victim).st_uid)
    old = old_lock_path(home)
    with second_user() as pw:
        p = as_user(pw, 'import os; os.symlink(%r, %r)' % (str(victim), old))
        assert p.wait(timeout=30) == 0
        try:
            r = run(base(home, name='idle', script=IDLE))
            assert not r.get('failed'), r.get('msg')
            assert (sha(victim), os.stat(victim).st_mode, os.stat(victim).st_uid) == before
        finally:
            os.unlink(old)


@pytest.mark.parametrize('plant', ['symlink', 'file'])
def test_lock_in_a_home_another_user_can_write_is_refused(tmp_path, plant):
    """PM2_HOME writable by a second user: a symlink or a file of theirs at the lock path is refused, not used."""
    victim = tmp_path / 'victim.conf'
    victim.write_text('precious\n')
    with private_home() as home, second_user() as pw:
        os.chmod(home, 0o777)
        lock = os.path.join(home, _pm2.LOCK_NAME)
        code = ('import os; os.symlink(%r, %r)' % (str(victim), lock) if plant == 'symlink'
                else 'import os; os.close(os.open(%r, os.O_CREAT | os.O_WRONLY, 0o666))' % lock)
        p = as_user(pw, code)
        assert p.wait(timeout=30) == 0
        before = sha(victim), os.stat(victim).st_mode
        r = run(base(home, name='idle', script=IDLE))
        assert r['failed'] and not r['changed']
        assert lock in r['msg'] and 'refusing the pm2 spawn lock' in r['msg']
        if plant == 'symlink':
            assert 'is a symlink' in r['msg'] and str(victim) in r['msg']
        else:
            assert 'owned by %s' % pw.pw_name in r['msg']
        assert (sha(victim), os.stat(victim).st_mode) == before
        assert not os.path.exists(os.path.join(home, 'pm2.pid'))   # pm2 was not run


def test_held_lock_times_out_naming_lock_and_holder(home):
    lock = _pm2.lock_path(home)
    holder = subprocess.Popen([sys.executable, '-c', HOLD % lock], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        t0 = time.monotonic()
        r = run(base(home, name='idle', script=IDLE, lock_timeout=2))
        took = time.monotonic() - t0
        assert r['failed'] and not r['changed'] and took < 15
        assert lock in r['msg'] and 'not free within 2.0 s' in r['msg'] and 'pid %d' % holder.pid in r['msg']
        assert not os.path.exists(os.path.join(home, 'pm2.pid'))
    finally:
        holder.kill()
        holder.wait(timeout=10)


# -- class 5: secrets ----------------------------------------------------------------------------------------------
def _watch_modes(paths, stop, seen):
    while not stop.is_set():
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            if st.st_mode & 0o077:
                seen.add((p, oct(st.st_mode & 0o777), st.st_size))
        time.sleep(0.0005)


def test_save_keeps_dump_and_backup_private_all_the_time(home):
    secret = 'dump-Secret-%d' % os.getpid()
    # a dump and backup left world-readable by an earlier `pm2 save` under umask 022
    pm2(home, 'start', IDLE, '--name', 'other', env={'OTHER_SECRET': secret})
    subprocess.run(['sh', '-c', 'umask 022; "$0" save --force >/dev/null && "$0" save --force >/dev/null', PM2],
                   env=dict(os.environ, PM2_HOME=home), check=True, timeout=120)
    dump, bak = os.path.join(home, 'dump.pm2'), os.path.join(home, 'dump.pm2.bak')
    assert os.stat(dump).st_mode & 0o777 == 0o644 and os.stat(bak).st_mode & 0o777 == 0o644
    os.chmod(dump, 0o600)
    os.unlink(bak)                               # the module must create the backup private too
    stop, seen = threading.Event(), set()
    watcher = threading.Thread(target=_watch_modes, args=([dump, bak], stop, seen), daemon=True)
    watcher.start()
    try:
        r = run(base(home, name='idle', script=IDLE, env={'APP_SECRET': secret}, save=True))
    finally:
        stop.set()
        watcher.join()
    assert not r.get('failed'), r.get('msg')
    assert r['commands'][-1] == 'pm2 save --force'
    for p in (dump, bak):
        assert os.stat(p).st_mode & 0o777 == 0o600, p
    with open(dump) as f:
        assert secret in f.read()                # the dump really holds the secret this test guards
    assert not seen, 'a dump file was readable by others during the run: %s' % sorted(seen)
    # and a wide pair left by hand is narrowed on the next save
    os.chmod(dump, 0o644)
    os.chmod(bak, 0o644)
    r = run(base(home, name='idle', state='restarted', save=True))
    assert not r.get('failed'), r.get('msg')
    assert os.stat(dump).st_mode & 0o777 == 0o600 and os.stat(bak).st_mode & 0o777 == 0o600


def test_save_refuses_a_symlinked_dump_before_acting(home, tmp_path):
    r = run(base(home, name='idle', script=IDLE))
    assert r['status'] == 'online'
    victim = tmp_path / 'victim'
    victim.write_text('keep\n')
    os.symlink(victim, os.path.join(home, 'dump.pm2'))
    pid = r['pid']
    r = run(base(home, name='idle', state='restarted', save=True))
    assert r['failed'] and not r['changed'] and 'refusing save' in r['msg'] and 'is a symlink' in r['msg']
    assert victim.read_text() == 'keep\n'
    assert jlist(home)[0]['pid'] == pid           # nothing was restarted


def test_crash_log_tail_masks_every_known_secret_whatever_its_length(home, tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    dotenv = {'DB_PASSWORD': 'hunter2-Long-Secret', 'SHORT_PIN': 'q7', 'ONE': 'Z', 'API_KEY': 'k3y'}
    (app / '.env').write_text(''.join('%s=%s\n' % kv for kv in dotenv.items()))
    # a process pm2 knows with values only pm2 stores (started by hand, not by this task)
    pm2(home, 'start', CRASH_SECRETS, '--name', 'leaky', '--cwd', str(app), '--no-autorestart',
        env={'PM2_ONLY_TOKEN': 'pm2-stored-Token-x1', 'PM2_SHORT': 'w9', 'CRASH_AFTER_MS': '400',
             'PRINT_VARS': 'PM2_ONLY_TOKEN,PM2_SHORT,TASK_SECRET,TASK_SHORT'})
    time.sleep(1.5)
    r = run(base(home, name='leaky', state='restarted', wait=2, update_env=True,
                 env={'TASK_SECRET': 'task-given-Secret-9', 'TASK_SHORT': 'ab', 'CRASH_AFTER_MS': '400',
                      'PRINT_VARS': 'PM2_ONLY_TOKEN,PM2_SHORT,TASK_SECRET,TASK_SHORT'}))
    assert r['failed'] and 'leaky is not staying up' in r['msg']
    msg = r['msg']
    assert 'log tail masked' in msg
    assert 'crash_secrets: fatal: cannot connect' in msg           # the log is still there to read
    assert '.env: DB_PASSWORD=********' in msg and '.env: SHORT_PIN=********' in msg
    assert 'PM2_ONLY_TOKEN=********' in msg and 'PM2_SHORT=********' in msg
    out = json.dumps(r)
    for v in ('hunter2-Long-Secret', 'pm2-stored-Token-x1', 'task-given-Secret-9'):
        assert v not in out
    for v in ('q7', 'Z', 'k3y', 'w9', 'ab'):
        assert not re.search(r'(?<![A-Za-z0-9])%s(?![A-Za-z0-9])' % v, msg), v


def test_env_file_option_masks_a_dotenv_outside_cwd(home, tmp_path):
    envf = tmp_path / 'shared.env'
    envf.write_text('SHARED_SECRET=sh4red-Value\nTINY=t1\n')
    (tmp_path / '.env').symlink_to(envf)
    r = run(base(home, name='crashy', script=CRASH_SECRETS, cwd=str(tmp_path), env_file=str(envf), wait=2,
                 args=[], env={'CRASH_AFTER_MS': '300'}))
    assert r['failed'] and 'log tail masked' in r['msg']
    assert 'SHARED_SECRET=********' in r['msg'] and 'TINY=********' in r['msg'] and 'sh4red-Value' not in r['msg']


# -- class 6: bounded health waits --------------------------------------------------------------------------------
class _Dribbler(http.server.BaseHTTPRequestHandler):
    mode = 'body'

    def log_message(self, *a):
        pass

    def do_GET(self):
        try:
            if self.mode == 'headers':
                self.wfile.write(b'HTTP/1.1 200 OK\r\n')
                for _dummy in range(120):
                    self.wfile.write(b'X')
                    self.wfile.flush()
                    time.sleep(1)
                return
            self.send_response(500 if self.mode == 'body' else 200)
            self.send_header('Content-Length', '1000000')
            self.end_headers()
            for _dummy in range(120):
                self.wfile.write(b'x')
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass


@pytest.fixture
def dribbler():
    servers = []

    def start(mode):
        handler = type('H', (_Dribbler,), {'mode': mode})
        srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return 'http://127.0.0.1:%d/health' % srv.server_address[1]
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize('mode', ['body', 'headers'])
def test_dribbling_health_endpoint_is_cut_at_the_deadline(home, dribbler, mode):
    url = dribbler(mode)
    r = run(base(home, name='idle', script=IDLE))
    assert r['status'] == 'online'
    timeout = 3
    t0 = time.monotonic()
    r = run(base(home, name='idle', script=IDLE, health_url=url, health_timeout=timeout, wait=0))
    took = time.monotonic() - t0
    assert r.get('failed') and 'did not answer HTTP 200 within 3' in r['msg'] and 'set health_status' in r['msg'] and 'pm2 logs' in r['msg'], r
    # the health check itself (module-measured), and the whole task with room for pm2's own calls on a busy machine
    assert r['health']['elapsed_ms'] < 2 * timeout * 1000
    assert took < 3 * timeout + 20, 'task took %.1f s with health_timeout %d' % (took, timeout)
    if mode == 'body':
        assert 'HTTP 500' in r['msg'] and len(r['msg']) < 2000


def test_healthy_status_needs_no_body(home, dribbler):
    url = dribbler('ok')           # 200 at once, then a body that never ends
    run(base(home, name='idle', script=IDLE))
    r = run(base(home, name='idle', script=IDLE, health_url=url, health_timeout=5))
    assert not r.get('failed'), r.get('msg')
    assert r['health']['status'] == 200 and r['health']['elapsed_ms'] < 5000


# -- class 8: names pm2 reads specially ------------------------------------------------------------------------------
def _start_idle(home, name):
    r = run(base(home, name=name, script=IDLE))
    assert not r.get('failed'), r.get('msg')
    assert r['status'] == 'online'
    return r


def test_special_names_touch_only_their_own_process(home):
    for n in ('a', 'b'):
        _start_idle(home, n)
    # `all` is no process here: stopping it must stop nothing
    r = run(base(home, name='all', state='stopped'))
    assert r['failed'] and 'does not know a process named all' in r['msg']
    r = run(base(home, name='all', state='stopped', script=IDLE))      # documented: nothing runs, so it is stopped
    assert not r.get('failed') and not r['changed'] and r['status'] == 'absent'
    assert statuses(home) == {'a': 'online', 'b': 'online'}
    # names pm2's CLI would misread, started, stopped and removed by pm_id
    for n in ('-x', '0', '/a/', 'my app', 'all', 'b.json', 'Infinity'):
        _start_idle(home, n)
    want = {'a': 'online', 'b': 'online', '-x': 'online', '0': 'online', '/a/': 'online', 'my app': 'online',
            'all': 'online', 'b.json': 'online', 'Infinity': 'online'}
    assert statuses(home) == want
    for n in ('-x', '0', '/a/', 'all', 'b.json', 'Infinity', 'my app'):
        r = run(base(home, name=n, state='stopped'))
        assert not r.get('failed'), (n, r.get('msg'))
        assert r['changed'] and r['status'] == 'stopped', n
        want[n] = 'stopped'
        assert statuses(home) == want, n
        if _pm2.name_problem(n):
            assert r['commands'] == ['pm2 stop %s' % r['pm_id']]
        r = run(base(home, name=n, state='stopped'))
        assert not r['changed']
    r = run(base(home, name='-x', state='restarted'))
    assert not r.get('failed') and r['status'] == 'online' and r['changed']
    want['-x'] = 'online'
    for n in ('-x', '0', 'all'):
        r = run(base(home, name=n, state='absent'))
        assert not r.get('failed') and r['changed'] and r['status'] == 'absent', n
        del want[n]
        assert statuses(home) == want, n


def test_namespaces_and_id_collisions(home):
    pm2(home, 'start', IDLE, '--name', 'worker', '--namespace', 'grp')
    _start_idle(home, 'grp2')
    # a namespace is not a process name: nothing in namespace grp may stop
    r = run(base(home, name='grp', state='stopped'))
    assert r['failed'] and 'does not know a process named grp' in r['msg']
    assert statuses(home) == {'worker': 'online', 'grp2': 'online'}
    # a process named like a number must not be confused with the pm_id it looks like, and vice versa
    r = _start_idle(home, '-y')
    victim = str(r['pm_id'])
    _start_idle(home, victim)          # a process named like -y's pm_id: `pm2 stop <id>` would hit it
    r = run(base(home, name='-y', state='stopped'))
    assert r['failed'] and not r['changed'] and 'unambiguously' in r['msg'] and victim in r['msg']
    assert set(statuses(home).values()) == {'online'}


def test_ecosystem_refuses_names_pm2_finds_by_pattern(home, tmp_path):
    eco = tmp_path / 'ecosystem.config.js'
    eco.write_text("module.exports = { apps: [{ name: 'all', script: %s }] }\n" % json.dumps(IDLE))
    for n in ('all', 'a,b', '-x', 'my app'):
        r = run(base(home, name=n, ecosystem=str(eco)))
        assert r['failed'] and not r['changed'] and 'cannot be used with ecosystem' in r['msg'], n
    assert not os.path.exists(os.path.join(home, 'pm2.pid'))


@pytest.mark.parametrize('name,why', [('', 'empty'), (' api', 'white space'), ('a\nb', 'control character')])
def test_names_that_cannot_be_pm2_names(home, name, why):
    r = run(base(home, name=name, script=IDLE))
    assert r['failed'] and why in r['msg'] and not os.path.exists(os.path.join(home, 'pm2.pid'))


# -- class 6 (start paths): a non-Node app keeps its interpreter, args and ecosystem -------------------------------
PY_APP = textwrap.dedent('''\
    import http.server, sys
    port = int(sys.argv[sys.argv.index('--port') + 1])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b'python ok')
        def log_message(self, *a):
            pass
    http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()
''')


def _cmdline(pid):
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        return f.read().rstrip(b'\0').split(b'\0')


def test_python_app_keeps_interpreter_and_args_on_every_start_path(home, tmp_path):
    script = tmp_path / 'app.py'
    script.write_text(PY_APP)
    port = free_port()
    args = base(home, name='pyapp', script=str(script), cwd=str(tmp_path), interpreter='python3',
                args=['--port', str(port)], health_url='http://127.0.0.1:%d/' % port, health_timeout=20)

    def check(r):
        assert not r.get('failed'), r.get('msg')
        assert r['status'] == 'online' and r['health']['status'] == 200
        cmd = _cmdline(r['pid'])
        assert b'python3' in os.path.basename(cmd[0]) and cmd[-2:] == [b'--port', str(port).encode()], cmd

    r = run(args)                                          # first start
    check(r)
    assert r['commands'][0].startswith('pm2 start %s --name pyapp' % script) and '--interpreter python3' in r['commands'][0]
    pm2(home, 'kill')                                      # the daemon dies and forgets the app
    r = run(dict(args, state='restarted'))                 # restart of a process pm2 forgot
    check(r)
    assert r['commands'][0].startswith('pm2 start ')
    r = run(dict(args, state='reloaded'))                  # reload (fork mode: a restart)
    check(r)
    pm2(home, 'kill')
    r = run(dict(args, state='started'))
    check(r)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open('http://127.0.0.1:%d/' % port, timeout=5) as resp:
        assert resp.read() == b'python ok'


def test_ecosystem_python_app_after_daemon_killed(home, tmp_path):
    script = tmp_path / 'app.py'
    script.write_text(PY_APP)
    port = free_port()
    eco = tmp_path / 'ecosystem.config.js'
    eco.write_text('module.exports = { apps: [{ name: "pyeco", script: %s, interpreter: "python3", args: ["--port", "%d"] }] }\n'
                   % (json.dumps(str(script)), port))
    args = base(home, name='pyeco', ecosystem=str(eco), health_url='http://127.0.0.1:%d/' % port, health_timeout=20)
    r = run(args)
    assert not r.get('failed'), r.get('msg')
    assert b'python3' in os.path.basename(_cmdline(r['pid'])[0])
    pm2(home, 'kill')
    r = run(dict(args, state='reloaded'))
    assert not r.get('failed'), r.get('msg')
    assert r['commands'][0] == 'pm2 start %s --only pyeco' % eco
    assert b'python3' in os.path.basename(_cmdline(r['pid'])[0]) and r['health']['status'] == 200


def test_changed_interpreter_of_a_known_process_is_warned(home, tmp_path):
    script = tmp_path / 'app.py'
    script.write_text(PY_APP)
    port = free_port()
    r = run(base(home, name='pyapp', script=str(script), interpreter='python3', args=['--port', str(port)]))
    assert not r.get('failed'), r.get('msg')
    r = run(base(home, name='pyapp', script=str(script), interpreter='python3', args=['--port', str(port + 1)],
                 state='restarted'))
    assert not r.get('failed')
    assert any('keeps the args' in json.dumps(w) for w in r.get('warnings') or [])
    assert stat.S_ISDIR(os.stat(home).st_mode)
