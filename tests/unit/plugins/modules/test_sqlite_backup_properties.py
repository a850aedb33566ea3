# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: whatever sqlite_backup is given, it ends in a result or in fail_json with a message, never in a
traceback, and a failed or check-mode run leaves every file as it was (content, owner, mode, link target).

The inputs are real files of every kind a path can meet: databases in both journal modes, a crashed one with a
hot journal, a text file, an empty file, a directory, a FIFO, a dangling and a looping symlink, a folder others
can write, a missing path.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_backup
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module

CRASH = r'''
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('PRAGMA cache_size=1')
c.execute('BEGIN')
c.execute("UPDATE t SET v = 'torn'")
os.kill(os.getpid(), 9)
'''


def _db(path, mode='delete', rows=40):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
    c.execute('BEGIN')
    c.executemany('INSERT INTO t(v) VALUES (?)', [('x' * 300,)] * rows)
    c.execute('COMMIT')
    c.close()


def _template():
    d = tempfile.mkdtemp(prefix='dbfix-prop-tpl-')
    _db(os.path.join(d, 'rollback.db'))
    _db(os.path.join(d, 'wal.db'), 'wal')
    _db(os.path.join(d, 'crashed.db'), rows=400)
    p = subprocess.run([sys.executable, '-c', CRASH, os.path.join(d, 'crashed.db')], capture_output=True, timeout=60, check=False)
    assert p.returncode == -signal.SIGKILL
    with open(os.path.join(d, 'text.db'), 'w') as f:
        f.write('hello\n' * 50)
    open(os.path.join(d, 'empty.db'), 'wb').close()
    os.mkdir(os.path.join(d, 'dir.db'))
    os.mkdir(os.path.join(d, 'out'))
    os.mkdir(os.path.join(d, 'open'))
    os.chmod(os.path.join(d, 'open'), 0o777)
    _db(os.path.join(d, 'open', 'shared.db'))
    return d


TEMPLATE = None


def _work():
    global TEMPLATE
    if TEMPLATE is None:
        TEMPLATE = _template()
    w = tempfile.mkdtemp(prefix='dbfix-prop-')
    shutil.copytree(TEMPLATE, w, symlinks=True, dirs_exist_ok=True)
    os.chmod(os.path.join(w, 'open'), 0o777)
    os.mkfifo(os.path.join(w, 'fifo.db'))
    os.symlink(os.path.join(w, 'gone.db'), os.path.join(w, 'dangling.db'))
    os.symlink(os.path.join(w, 'loop2.db'), os.path.join(w, 'loop1.db'))
    os.symlink(os.path.join(w, 'loop1.db'), os.path.join(w, 'loop2.db'))
    os.symlink(os.path.join(w, 'text.db'), os.path.join(w, 'link-text.db'))
    os.symlink(os.path.join(w, 'wal.db'), os.path.join(w, 'link-wal.db'))
    return w


def _state(d):
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            s = os.lstat(p)
            body = None
            if stat.S_ISREG(s.st_mode) and not n.endswith('-shm'):
                with open(p, 'rb') as f:
                    body = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(s.st_mode):
                body = os.readlink(p)
            out[os.path.relpath(p, d)] = (body, s.st_uid, s.st_gid, stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode))
    return out


NAMES = ['rollback.db', 'wal.db', 'crashed.db', 'text.db', 'empty.db', 'dir.db', 'fifo.db', 'dangling.db', 'loop1.db',
         'link-text.db', 'link-wal.db', 'missing.db', 'open/shared.db', 'out', 'open', 'nodir/x.db']
GOOD = ['rollback.db', 'wal.db', 'crashed.db', 'link-wal.db']
text = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=12)
ints = st.one_of(st.integers(-5, 5), st.integers(min_value=-(2 ** 70), max_value=2 ** 70))


@st.composite
def arguments(draw):
    good = st.sampled_from(GOOD)
    args = {'path': draw(st.one_of(good, good, st.sampled_from(NAMES)))}
    if draw(st.booleans()):
        args['state'] = draw(st.sampled_from(['present', 'restored']))
        if args['state'] == 'restored' and draw(st.integers(0, 4)):
            args['src'] = draw(st.one_of(good, st.sampled_from(NAMES)))
    optional = {
        'src': st.sampled_from(NAMES),
        'dest_dir': st.sampled_from([*NAMES, '.']),
        'dest': st.sampled_from([*NAMES, 'out/new.db', 'rollback.db']),
        'timestamp': st.one_of(st.just('20260101_120000'), st.just('20260101_120000'), text),
        'keep': ints,
        'verify': st.sampled_from(['quick', 'full', 'none']),
        'checksum': st.booleans(),
        'skip_unchanged': st.booleans(),
        'busy_timeout': st.one_of(st.integers(0, 300), ints),
        'mode': st.one_of(st.sampled_from(['0600', '0644', 'u=rw', 'u+x,g-w', '0o600', '7777', '99']), text, ints),
        'owner': st.one_of(st.sampled_from(['root', '0', 'nobody', '4294967295']), text),
        'group': st.one_of(st.sampled_from(['root', '0']), text),
    }
    for k, strat in optional.items():
        if k not in args and draw(st.integers(0, 4)) == 0:
            args[k] = draw(strat)
    if 'dest' in args and 'dest_dir' in args and draw(st.integers(0, 3)):
        del args['dest']  # mostly valid combinations, so the runs reach the real work
    return args


def _absolute(w, args):
    out = dict(args)
    for k in ('path', 'src', 'dest_dir', 'dest'):
        if k in out:
            out[k] = os.path.join(w, out[k])
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments(), st.booleans())
def test_sqlite_backup_never_tracebacks_and_changes_nothing_when_it_fails(args, check):
    w = _work()
    try:
        before = _state(w)
        r = run_module(sqlite_backup, _absolute(w, args), check=check)
        assert isinstance(r, dict)
        assert 'exception' not in r and 'Traceback' not in str(r.get('msg', '')), r
        if r.get('failed'):
            assert isinstance(r.get('msg'), str) and len(r['msg']) > 20, r
            assert _state(w) == before, (args, r['msg'])
        elif check:
            assert _state(w) == before, args
        else:
            assert 'changed' in r
            # the source of a backup is never touched (a restore replaces only its target)
            if args.get('state', 'present') == 'present':
                src = os.path.relpath(os.path.realpath(os.path.join(w, args['path'])), w)
                assert _state(w).get(src) == before.get(src)
    finally:
        shutil.rmtree(w)


def teardown_module(module):
    if TEMPLATE is not None:
        shutil.rmtree(TEMPLATE, ignore_errors=True)
