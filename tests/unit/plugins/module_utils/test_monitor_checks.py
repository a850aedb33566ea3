# SPDX-License-Identifier: GPL-3.0-or-later
"""Each monitor check made to fail for real and then pass; the metrics file parsed with the Prometheus
text-format rules; the webhook sent once per change of state to a real HTTP receiver on 127.0.0.1; the
problem lines received on real journald-/syslog-style Unix sockets.

Real parts: SQLite files in tmp_path, migrations applied by the real sqlite_migrate module, app stand-ins
that are real processes (python3 with the host's libsqlite3, node with better-sqlite3) holding the DB open
and named by a pid file, a real tmpfs filled to its last block for the disk check.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from _fsfaults import fill, tmpfs

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _monitor as MON
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V

ROOT = Path(__file__).resolve().parents[4]
BETTER_SQLITE3 = ROOT / 'tests' / 'app' / 'node_modules' / 'better-sqlite3'


# --------------------------------------------------------------------------- a pair on disk


def make_db(path: Path, rows: int = 300) -> None:
    conn = sqlite3.connect(str(path))
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, position TEXT)')
    conn.executemany('INSERT INTO users (email, position) VALUES (?, ?)', [('u%d@x' % i, 'p' * 50) for i in range(rows)])
    conn.commit()
    conn.close()


@pytest.fixture
def pair(tmp_path):
    """A shared DB and two colors whose database.db links to it (the state phase 2 leaves)."""
    shared = tmp_path / 'shared' / 'database-shared.db'
    shared.parent.mkdir()
    make_db(shared)
    targets = []
    for color in ('blue', 'green'):
        d = tmp_path / color / 'server'
        d.mkdir(parents=True)
        (d / 'database.db').symlink_to(shared)
        targets.append(MON.normalize_target({
            'pair': 'p1', 'color': color, 'db_path': str(d / 'database.db'), 'shared_db': str(shared),
            'expect_columns': {'users': ['id', 'email', 'position']}}))
    return {'shared': shared, 'targets': targets, 'tmp': tmp_path}


def states(rows, check):
    return {r['color']: r['state'] for r in rows if r['check'] == check}


def detail(rows, check, color='green'):
    return next(r['detail'] for r in rows if r['check'] == check and r['color'] == color)


# --------------------------------------------------------------------------- app stand-ins


class App:
    """A real process holding a DB open, with a pid file (as an app not run by pm2 would have)."""

    def __init__(self, argv, pid_file: Path, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline().strip()
        assert line == 'ready', 'the stand-in app did not start: %r' % line
        pid_file.write_text('%d\n' % self.proc.pid)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def python_app(db: Path, pid_file: Path) -> App:
    """python3 with the host's libsqlite3 (3.40.1 on Debian 12), holding ``db`` open."""
    code = ('import sqlite3, sys, time\n'
            'c = sqlite3.connect(sys.argv[1]); c.execute("SELECT count(*) FROM sqlite_master").fetchone()\n'
            'print("ready", flush=True); time.sleep(300)\n')
    return App([sys.executable, '-c', code, str(db)], pid_file)


def node_app(db: Path, pid_file: Path) -> App:
    """node with better-sqlite3 (its own, statically linked SQLite), holding ``db`` open."""
    node = shutil.which('node')
    assert node, 'node is not on PATH (Debian package nodejs)'
    code = ('const D = require(process.argv[2]); const db = new D(process.argv[1], {fileMustExist: true});'
            'db.prepare("SELECT count(*) FROM sqlite_master").get(); console.log("ready"); setInterval(() => {}, 1000);')
    return App([node, '-e', code, str(db), str(BETTER_SQLITE3)], pid_file)


@pytest.fixture
def idle_pid(tmp_path):
    """A pid file naming a live process that maps no SQLite (an app whose process checks all pass)."""
    proc = subprocess.Popen(['sleep', '300'])
    pid_file = tmp_path / 'idle.pid'
    pid_file.write_text('%d\n' % proc.pid)
    yield pid_file
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- database checks


def test_healthy_pair_all_ok(pair):
    rows = MON.run_checks(pair['targets'])
    assert [r['check'] for r in rows[:len(MON.CHECKS)]] == list(MON.CHECKS)
    for check in ('schema', 'quick_check', 'shared_link', 'wal_size', 'disk_free'):
        assert states(rows, check) == {'blue': 'ok', 'green': 'ok'}, rows
    assert states(rows, 'migrations') == {'blue': 'skip', 'green': 'skip'}
    # no pid file, no pm2 name: the process is unknown, which is a problem
    assert states(rows, 'process') == {'blue': 'fail', 'green': 'fail'}


def test_schema_dropped_column_fails_then_passes(pair):
    shared = pair['shared']
    conn = sqlite3.connect(str(shared))
    conn.execute('ALTER TABLE users DROP COLUMN position')
    conn.commit()
    rows = MON.run_checks(pair['targets'])
    assert states(rows, 'schema') == {'blue': 'fail', 'green': 'fail'}
    assert detail(rows, 'schema') == 'table users lacks column position'
    conn.execute('ALTER TABLE users ADD COLUMN position TEXT')
    conn.commit()
    conn.close()
    assert states(MON.run_checks(pair['targets']), 'schema') == {'blue': 'ok', 'green': 'ok'}


def test_schema_missing_table(pair):
    t = dict(pair['targets'][0], expect_columns={'time_entries': ['id']})
    rows = MON.run_checks([t])
    assert detail(rows, 'schema', 'blue') == 'table time_entries is missing'


def test_migrations_edited_and_pending_fail_then_pass(pair):
    """Migrations applied by the real sqlite_migrate module; then an applied file is edited, then one is left pending."""
    from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
    from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module

    mdir = pair['tmp'] / 'migrations'
    mdir.mkdir()
    (mdir / '001_entries.sql').write_text('CREATE TABLE time_entries (id INTEGER PRIMARY KEY, minutes INTEGER);\n')
    (mdir / '002_index.sql').write_text('CREATE INDEX time_entries_minutes ON time_entries (minutes);\n')
    res = run_module(sqlite_migrate, {'path': str(pair['shared']), 'migrations_dir': str(mdir)})
    assert res.get('failed') is not True and res['changed'] is True, res
    targets = [dict(t, migrations_dir=str(mdir)) for t in pair['targets']]
    assert states(MON.run_checks(targets), 'migrations') == {'blue': 'ok', 'green': 'ok'}

    original = (mdir / '002_index.sql').read_bytes()
    (mdir / '002_index.sql').write_text('CREATE INDEX time_entries_minutes ON time_entries (minutes DESC);\n')
    rows = MON.run_checks(targets)
    assert states(rows, 'migrations') == {'blue': 'fail', 'green': 'fail'}
    assert '002_index.sql was edited after it was applied' in detail(rows, 'migrations')
    (mdir / '002_index.sql').write_bytes(original)
    assert states(MON.run_checks(targets), 'migrations') == {'blue': 'ok', 'green': 'ok'}

    (mdir / '003_more.sql').write_text('ALTER TABLE time_entries ADD COLUMN note TEXT;\n')
    rows = MON.run_checks(targets)
    assert detail(rows, 'migrations') == 'not applied: 003_more.sql'
    (mdir / '003_more.sql').unlink()
    (mdir / '001_entries.sql').unlink()
    assert 'applied migration 1 (001_entries.sql) has no file' in detail(MON.run_checks(targets), 'migrations')


def test_migrations_table_of_another_migrator(pair):
    conn = sqlite3.connect(str(pair['shared']))
    conn.execute('CREATE TABLE app_migrations (name TEXT PRIMARY KEY, applied_at TEXT)')
    conn.commit()
    conn.close()
    mdir = pair['tmp'] / 'm'
    mdir.mkdir()
    t = dict(pair['targets'][0], migrations_dir=str(mdir), migrations_table='app_migrations')
    assert 'not a sqlite_migrate tracking table' in detail(MON.run_checks([t]), 'migrations', 'blue')


def test_quick_check_corrupt_page_fails_then_passes(pair):
    shared = pair['shared']
    conn = sqlite3.connect(str(shared))
    conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    root, psize = conn.execute("SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master WHERE name='users'").fetchone()
    conn.close()
    offset = (root - 1) * psize
    with open(shared, 'r+b') as f:
        f.seek(offset)
        good = f.read(8)
        f.seek(offset)
        f.write(b'\xff' * 8)  # not a valid b-tree page type
    rows = MON.run_checks(pair['targets'])
    assert states(rows, 'quick_check') == {'blue': 'fail', 'green': 'fail'}, rows
    with open(shared, 'r+b') as f:
        f.seek(offset)
        f.write(good)
    assert states(MON.run_checks(pair['targets']), 'quick_check') == {'blue': 'ok', 'green': 'ok'}


def test_shared_link_repointed_fails_then_passes(pair):
    green = Path(pair['targets'][1]['db_path'])
    other = pair['tmp'] / 'elsewhere.db'
    make_db(other)
    green.unlink()
    green.symlink_to(other)
    rows = MON.run_checks(pair['targets'])
    assert states(rows, 'shared_link') == {'blue': 'ok', 'green': 'fail'}
    assert 'links to %s, not to the shared DB' % other in detail(rows, 'shared_link')
    green.unlink()
    shutil.copy(other, green)
    assert 'is a regular file, not a link' in detail(MON.run_checks(pair['targets']), 'shared_link')
    green.unlink()
    green.symlink_to(pair['shared'])
    assert states(MON.run_checks(pair['targets']), 'shared_link') == {'blue': 'ok', 'green': 'ok'}


def test_wal_size_over_bound_fails_then_passes(pair):
    targets = [dict(t, wal_max_bytes=64 * 1024) for t in pair['targets']]
    writer = sqlite3.connect(str(pair['shared']))
    writer.execute('PRAGMA wal_autocheckpoint=0')
    writer.executemany('INSERT INTO users (email, position) VALUES (?, ?)', [('w%d' % i, 'x' * 500) for i in range(500)])
    writer.commit()
    try:
        rows = MON.run_checks(targets)
        assert states(rows, 'wal_size') == {'blue': 'fail', 'green': 'fail'}
        assert 'over the bound of 65536' in detail(rows, 'wal_size')
        writer.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    finally:
        writer.close()
    assert states(MON.run_checks(targets), 'wal_size') == {'blue': 'ok', 'green': 'ok'}


def test_disk_free_full_filesystem_fails_then_passes(pair, tmp_path):
    with tmpfs(tmp_path / 'backups', 'size=2m') as backups:
        targets = [dict(t, backup_dir=str(backups)) for t in pair['targets']]
        assert states(MON.run_checks(targets), 'disk_free') == {'blue': 'ok', 'green': 'ok'}
        fill(backups)
        rows = MON.run_checks(targets)
        assert states(rows, 'disk_free') == {'blue': 'fail', 'green': 'fail'}
        assert 'one more backup of' in detail(rows, 'disk_free')
        os.unlink(backups / 'filler')
        assert states(MON.run_checks(targets), 'disk_free') == {'blue': 'ok', 'green': 'ok'}


def test_missing_db_fails_every_db_check(pair):
    t = dict(pair['targets'][0], db_path=str(pair['tmp'] / 'nope.db'), expect_shared=False)
    rows = MON.run_checks([t])
    assert all(r['state'] == 'fail' and 'does not exist' in r['detail'] for r in rows
               if r['check'] in ('schema', 'migrations', 'quick_check', 'wal_size', 'disk_free'))


@pytest.mark.parametrize('bad,fragment', [
    ({'color': ''}, 'needs color'),
    ({'db_path': 'relative.db'}, 'must be an absolute path'),
    ({'shared_db': ''}, 'expect_shared is true but shared_db is not set'),
    ({'expect_columns': {'users': 'id'}}, 'expect_columns must map'),
    ({'wal_max_bytes': -1}, 'wal_max_bytes must be a whole number'),
    ({'colour': 'blue'}, 'unknown keys colour'),
])
def test_bad_target_is_refused(bad, fragment):
    raw = dict({'pair': 'p', 'color': 'blue', 'db_path': '/x/db', 'shared_db': '/x/s'}, **bad)
    with pytest.raises(MON.ConfigError, match=re.escape(fragment)):
        MON.normalize_target(raw)


# --------------------------------------------------------------------------- process checks


def test_open_files_old_copy_fails_then_passes(pair, tmp_path):
    """The green app still has database.db.OLD open (it was not restarted after phase 2)."""
    green = dict(pair['targets'][1], pid_file=str(tmp_path / 'green.pid'))
    old = Path(green['db_path'] + '.OLD')
    shutil.copy(pair['shared'], old)
    app = node_app(old, tmp_path / 'green.pid')
    try:
        rows = MON.run_checks([green])
        assert states(rows, 'process') == {'green': 'ok'}
        d = detail(rows, 'open_files')
        assert states(rows, 'open_files') == {'green': 'fail'} and str(old) in d and 'pid %d' % app.proc.pid in d, d
    finally:
        app.stop()
    app = node_app(Path(green['db_path']), tmp_path / 'green.pid')
    try:
        rows = MON.run_checks([green])
        assert states(rows, 'open_files') == {'green': 'ok'}, rows
        assert states(rows, 'sqlite_library') == {'green': 'ok'}, rows
        assert 'better_sqlite3.node' in detail(rows, 'sqlite_library')
    finally:
        app.stop()
    rows = MON.run_checks([green])
    assert states(rows, 'process') == {'green': 'fail'} and 'is not running' in detail(rows, 'process')
    assert states(rows, 'open_files') == {'green': 'skip'}


def test_sqlite_library_old_version_fails_then_passes(pair, tmp_path):
    """An app on the host's libsqlite3 (3.40.1 on Debian 12, affected) against one on better-sqlite3 (fixed)."""
    assert V.affected(sqlite3.sqlite_version), 'this test needs a host SQLite with the WAL-reset bug (Debian 12: 3.40.1)'
    green = dict(pair['targets'][1], pid_file=str(tmp_path / 'green.pid'))
    app = python_app(Path(green['db_path']), tmp_path / 'green.pid')
    try:
        rows = MON.run_checks([green])
        d = detail(rows, 'sqlite_library')
        assert states(rows, 'sqlite_library') == {'green': 'fail'}, rows
        assert 'SQLite %s in ' % sqlite3.sqlite_version in d and 'libsqlite3' in d and 'WAL-reset bug' in d and '3.51.3' in d
        assert states(rows, 'open_files') == {'green': 'ok'}  # it holds the shared DB, through the link
    finally:
        app.stop()
    app = node_app(Path(green['db_path']), tmp_path / 'green.pid')
    try:
        assert states(MON.run_checks([green]), 'sqlite_library') == {'green': 'ok'}
    finally:
        app.stop()


# --------------------------------------------------------------------------- metrics


_NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(r'^(%s)(?:\{(%s(?:,%s)*)?,?\})? (\S+)(?: (-?\d+))?$' % (_NAME, _LABEL, _LABEL))


def parse_prometheus(text: str) -> dict:
    """A strict reader of the Prometheus text exposition format (0.0.4): every line a comment, HELP, TYPE or
    sample; TYPE before the samples of its metric and once; no duplicate series; float values; the file ends
    with a newline. Returns {(name, frozenset(labels)): value}."""
    assert text.endswith('\n'), 'the exposition must end with a line feed'
    types, samples, seen_names = {}, {}, []
    for n, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('#'):
            m = re.match(r'^# (HELP|TYPE) (%s) (.*)$' % _NAME, line)
            if m and m.group(1) == 'TYPE':
                assert m.group(3) in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), line
                assert m.group(2) not in types and m.group(2) not in seen_names, 'line %d: TYPE after samples or twice' % n
                types[m.group(2)] = m.group(3)
            continue
        assert line.strip(), 'line %d: empty line' % n
        m = _SAMPLE.match(line)
        assert m, 'line %d is not a valid sample: %r' % (n, line)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        assert re.match(r'^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)|[+-]?Inf|NaN)$', value), 'line %d: bad value %r' % (n, value)
        pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or '')
        assert len({k for k, dummy in pairs}) == len(pairs), 'line %d: a label twice' % n
        key = (name, frozenset(pairs))
        assert key not in samples, 'line %d: duplicate series' % n
        samples[key] = float(value)
        seen_names.append(name)
    return samples


def test_metrics_file_is_valid_and_atomic(pair, tmp_path):
    green = Path(pair['targets'][1]['db_path'])
    green.unlink()
    green.symlink_to(tmp_path / 'nowhere.db')
    rows = MON.run_checks(pair['targets'])
    rows.append({'pair': 'we"ird\\pair\nx', 'color': 'blue', 'check': 'schema', 'state': 'ok', 'detail': ''})
    prom = tmp_path / 'textfile' / 'dbfix.prom'
    prom.parent.mkdir()
    old_umask = os.umask(0o077)
    try:
        MON.report(rows, dict(MON.SETTINGS_DEFAULTS, metrics_file=str(prom), log='none'))
    finally:
        os.umask(old_umask)
    assert prom.stat().st_mode & 0o777 == 0o644
    assert os.listdir(prom.parent) == ['dbfix.prom'], 'the temp file must be renamed away'
    samples = parse_prometheus(prom.read_text())

    def ok(color, check, pair_name='p1'):
        return samples[('dbfix_check_ok', frozenset({('pair', pair_name), ('color', color), ('check', check)}))]
    assert ok('blue', 'shared_link') == 1 and ok('green', 'shared_link') == 0
    assert ok('green', 'schema') == 0 and ok('blue', 'schema') == 1
    assert ok('blue', 'schema', 'we\\"ird\\\\pair\\nx') == 1
    assert samples[('dbfix_check_problems', frozenset())] == len(MON.problems_of(rows))
    assert ('dbfix_check_ok', frozenset({('pair', 'p1'), ('color', 'blue'), ('check', 'migrations')})) not in samples  # skipped
    assert str(tmp_path) not in prom.read_text(), 'no detail (paths) in the metrics'


def test_strict_parser_rejects_bad_lines():
    for bad in ('x{a="1"} 1', 'x{a="1",a="2"} 1\n', 'x 1\nx 1\n', 'x{a=1} 1\n', 'x one\n', '# TYPE x gauge\nx 1\n# TYPE x gauge\n'):
        with pytest.raises(AssertionError):
            parse_prometheus(bad)


# --------------------------------------------------------------------------- webhook and state


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread, recording every POST body."""

    def __init__(self, status=200):
        self.posts = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                outer.posts.append((self.headers['Content-Type'], json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/hook?token=s3cret' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_webhook_once_per_change_and_quiet_when_healthy(pair, tmp_path, receiver, idle_pid):
    settings = dict(MON.SETTINGS_DEFAULTS, state_file=str(tmp_path / 'state.json'), webhook_url=receiver.url, log='none')
    targets = [dict(t, pid_file=str(idle_pid)) for t in pair['targets']]

    healthy = MON.run_checks(targets)
    assert not MON.problems_of(healthy), MON.problems_of(healthy)
    MON.report(healthy, settings)
    MON.report(MON.run_checks(targets), settings)
    assert receiver.posts == [], 'a healthy pair stays quiet'

    conn = sqlite3.connect(str(pair['shared']))
    conn.execute('ALTER TABLE users DROP COLUMN position')
    conn.commit()
    MON.report(MON.run_checks(targets), settings)
    MON.report(MON.run_checks(targets), settings)
    assert len(receiver.posts) == 1, 'one webhook for one change, not one per run'
    ctype, body = receiver.posts[0]
    assert ctype == 'application/json' and body['ok'] is False
    assert body['new'] == ['p1/blue/schema', 'p1/green/schema']
    assert {p['detail'] for p in body['problems']} == {'table users lacks column position'}

    conn.execute('ALTER TABLE users ADD COLUMN position TEXT')
    conn.commit()
    conn.close()
    MON.report(MON.run_checks(targets), settings)
    MON.report(MON.run_checks(targets), settings)
    assert len(receiver.posts) == 2 and receiver.posts[1][1]['ok'] is True
    assert receiver.posts[1][1]['resolved'] == ['p1/blue/schema', 'p1/green/schema']
    assert (tmp_path / 'state.json').stat().st_mode & 0o777 == 0o600


def test_webhook_failure_is_retried_next_run_and_hides_the_url(pair, tmp_path, capsys):
    dead = socket.socket()
    dead.bind(('127.0.0.1', 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there: connection refused, for real
    settings = dict(MON.SETTINGS_DEFAULTS, state_file=str(tmp_path / 'state.json'), log='none',
                    webhook_url='http://127.0.0.1:%d/hook?token=s3cret' % port, webhook_timeout=2)
    rows = [{'pair': 'p', 'color': 'blue', 'check': 'schema', 'state': 'fail', 'detail': 'x'}]
    done = MON.report(rows, settings)
    assert done['webhook'] == 'failed' and not (tmp_path / 'state.json').exists()
    err = capsys.readouterr().err
    assert 'webhook failed' in err and 's3cret' not in err and str(port) not in err
    r = Receiver()
    try:
        settings['webhook_url'] = r.url
        MON.report(rows, settings)
        assert len(r.posts) == 1
    finally:
        r.close()


# --------------------------------------------------------------------------- problem lines


def _dgram_server(path: Path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    return s


def test_problem_lines_go_to_journal_then_syslog_then_stderr(tmp_path, capsys):
    rows = [{'pair': 'p', 'color': 'green', 'check': 'schema', 'state': 'fail', 'detail': 'table users lacks column position'},
            {'pair': 'p', 'color': 'green', 'check': 'quick_check', 'state': 'ok', 'detail': 'ok'}]
    journal, syslog = tmp_path / 'journal.sock', tmp_path / 'log.sock'
    settings = dict(MON.SETTINGS_DEFAULTS, journal_socket=str(journal), syslog_socket=str(syslog))

    j = _dgram_server(journal)
    s = _dgram_server(syslog)
    try:
        assert MON.log_problems(rows, settings) == 'journal'
        msg = j.recv(65536).decode()
        assert 'MESSAGE=dbfix-monitor: pair=p color=green check=schema FAIL: table users lacks column position\n' in msg
        assert 'PRIORITY=3' in msg and 'SYSLOG_IDENTIFIER=dbfix-monitor' in msg
        j.close()
        journal.unlink()
        assert MON.log_problems(rows, settings) == 'syslog'
        msg = s.recv(65536).decode()
        assert re.match(r'^<11>dbfix-monitor\[\d+\]: pair=p color=green check=schema FAIL: ', msg.replace('dbfix-monitor: ', '', 1)), msg
    finally:
        j.close()
        s.close()
    syslog.unlink()
    assert MON.log_problems(rows, settings) == 'stderr'
    assert capsys.readouterr().err == 'dbfix-monitor: pair=p color=green check=schema FAIL: table users lacks column position\n'
    assert MON.log_problems(rows[1:], settings) == 'stderr' and capsys.readouterr().err == ''


def test_checker_main_exit_codes(pair, tmp_path, capsys, idle_pid):
    conf = tmp_path / 'conf'
    (conf / 'targets.d').mkdir(parents=True)
    pidf = idle_pid
    for t in pair['targets']:
        (conf / 'targets.d' / ('p1-%s.json' % t['color'])).write_text(json.dumps(dict(t, pid_file=str(pidf))))
    (conf / 'monitor.json').write_text(json.dumps({'metrics_file': str(tmp_path / 'm.prom'), 'log': 'stderr'}))
    assert MON.main(['--config', str(conf / 'monitor.json')]) == 0
    conn = sqlite3.connect(str(pair['shared']))
    conn.execute('ALTER TABLE users DROP COLUMN position')
    conn.commit()
    conn.close()
    assert MON.main(['--config', str(conf / 'monitor.json')]) == 1
    assert 'check=schema FAIL' in capsys.readouterr().err
    (conf / 'targets.d' / 'bad.json').write_text('{"pair": "x"')
    assert MON.main(['--config', str(conf / 'monitor.json')]) == 2
    assert 'bad.json cannot be read' in capsys.readouterr().err
    assert MON.main(['--config', str(tmp_path / 'missing.json')]) == 2
    assert MON.main(['--bogus']) == 2


def test_private_copy_cut_short_by_a_full_disk_leaves_no_folder(tmp_path, monkeypatch):
    """A crashed app's WAL DB (frames, no -shm) is read from a private copy; a full temp filesystem fails that
    copy, and the half-made 0700 folder is removed, not left behind in the temp folder."""
    live = tmp_path / 'live'
    live.mkdir()
    app = sqlite3.connect(live / 'database.db')
    app.execute('PRAGMA journal_mode=wal')
    app.execute('PRAGMA wal_autocheckpoint=0')
    app.execute('CREATE TABLE t (x TEXT)')
    app.executemany('INSERT INTO t VALUES (?)', [('x' * 500,)] * 200)
    app.commit()
    crashed = tmp_path / 'crashed'
    crashed.mkdir()
    for suffix in ('', '-wal'):      # what a crash leaves: the DB and its frames, no -shm
        shutil.copyfile(str(live / 'database.db') + suffix, str(crashed / 'database.db') + suffix)
    app.close()
    db = str(crashed / 'database.db')
    assert os.path.getsize(db + '-wal') > 0 and not os.path.exists(db + '-shm')
    with tmpfs(tmp_path / 'tmp', 'size=1m') as tmp:
        monkeypatch.setattr(tempfile, 'tempdir', str(tmp))
        fill(tmp)
        with pytest.raises(OSError):
            MON._connect_ro(db, 1000)
        assert sorted(p.name for p in tmp.iterdir()) == ['filler']
        os.unlink(tmp / 'filler')
        conn, private = MON._connect_ro(db, 1000)   # with room, the same DB is read from its copy
        try:
            assert conn.execute('SELECT count(*) FROM t').fetchone()[0] == 200
            assert private and os.path.dirname(private) == str(tmp)
        finally:
            conn.close()
            shutil.rmtree(private)
    assert sorted(p.name for p in crashed.iterdir()) == ['database.db', 'database.db-wal']
