# SPDX-License-Identifier: GPL-3.0-or-later
"""Backups of a LIVE database: real writer processes keep committing while we copy.

Every backup must pass integrity_check, satisfy the writers' checksum invariant
and hold exactly a prefix of the final commit sequence (no gap, no torn commit).
Runs in WAL mode (with a separate process forcing checkpoints during the copies,
the case that can rewrite pages under the copy) and in rollback-journal mode, for
the fast snapshot copy and for the Connection.backup fallback.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _snapshot as SN
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S

WRITER = r'''
import os, random, sqlite3, sys, time
path, wid, mode, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = sqlite3.connect(path, timeout=60, isolation_level=None)
c.execute('PRAGMA busy_timeout=60000')
rnd = random.Random(wid)
n = 0
while not os.path.exists(stop):
    amount = rnd.randint(1, 1000)
    c.execute('BEGIN IMMEDIATE')
    bal = c.execute('SELECT balance FROM acct WHERE id=1').fetchone()[0]
    c.execute('INSERT INTO ledger(writer, amount, total) VALUES (?,?,?)', (wid, amount, bal + amount))
    c.execute('UPDATE acct SET balance=? WHERE id=1', (bal + amount,))
    # churn pages all over the file so checkpoints rewrite many pages
    for k in range(4):
        c.execute('UPDATE filler SET data=randomblob(600), v=v+1 WHERE id=?', (rnd.randint(1, 20000),))
    c.execute('UPDATE acct SET balance=balance WHERE id=1')
    c.execute('COMMIT')
    n += 1
    if mode != 'wal':
        # rollback-journal writers exclude readers while committing; leave readers a gap as real apps do
        time.sleep(0.002)
print(n)
'''

CHECKPOINTER = r'''
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
while not os.path.exists(sys.argv[2]):
    c.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchall()
    time.sleep(0.002)
'''


def make_db(path, journal_mode):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % journal_mode)
    c.execute('CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)')
    c.execute('INSERT INTO acct VALUES (1, 0)')
    c.execute('CREATE TABLE ledger(seq INTEGER PRIMARY KEY, writer INT, amount INT, total INT)')
    c.execute('CREATE TABLE filler(id INTEGER PRIMARY KEY, v INT, data BLOB)')
    c.execute('CREATE INDEX filler_v ON filler(v)')
    c.execute('BEGIN')
    c.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x<20000) "
              "INSERT INTO filler SELECT x, 0, randomblob(600) FROM n")
    c.execute('COMMIT')
    c.close()


def check_backup(path, final_ledger):
    conn = sqlite3.connect('file:%s?immutable=1' % path, uri=True)
    try:
        assert conn.execute('PRAGMA integrity_check').fetchall() == [('ok',)], path
        bal = conn.execute('SELECT balance FROM acct WHERE id=1').fetchone()[0]
        rows = conn.execute('SELECT seq, writer, amount, total FROM ledger ORDER BY seq').fetchall()
    finally:
        conn.close()
    # invariant: balance is the running total of every committed ledger row
    assert bal == sum(r[2] for r in rows)
    if rows:
        assert rows[-1][3] == bal
    # a prefix of the commit sequence: exactly the first N rows of the final ledger, no gap
    assert rows == final_ledger[:len(rows)]
    return len(rows)


def start(cmd):
    return subprocess.Popen([sys.executable, '-c', *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_all(stop, procs):
    """Tell the writers and checkpointers to stop; [(stdout, stderr)] of each once it has."""
    open(stop, 'w').close()
    return [p.communicate(timeout=120) for p in procs]


def final_ledger(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute('SELECT seq, writer, amount, total FROM ledger ORDER BY seq').fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize('journal_mode,allow_fast', [('wal', True), ('wal', False), ('delete', True), ('delete', False)])
def test_backups_of_live_db_are_consistent(tmp_path, journal_mode, allow_fast):
    db = str(tmp_path / 'live.db')
    stop = str(tmp_path / 'stop')
    make_db(db, journal_mode)
    procs = [start([WRITER, db, str(w), journal_mode, stop]) for w in range(3)]
    if journal_mode == 'wal':
        procs.append(start([CHECKPOINTER, db, stop]))
    backups = []
    methods = set()
    progress_during_copy = 0
    try:
        time.sleep(0.3)
        for i in range(25 if journal_mode == 'wal' else 12):
            out = str(tmp_path / ('b%02d.db' % i))
            before = _ledger_count(db)
            info = SN.snapshot_copy(db, out, 60000, verify='none', allow_fast=allow_fast)
            after = _ledger_count(db)
            methods.add(info['method'])
            if after > before:
                progress_during_copy += 1
            assert S.sha256_file(out) == info['sha256']
            backups.append(out)
            time.sleep(0.02)
    finally:
        outs = stop_all(stop, procs)
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    commits = sum(int(out) for out, _err in outs[:3])
    final = final_ledger(db)
    assert len(final) == commits
    sizes = [check_backup(b, final) for b in backups]
    # the backups really were taken while writing: they hold different, growing prefixes
    assert len(set(sizes)) > len(sizes) // 2
    assert sizes == sorted(sizes)
    assert methods == {'snapshot-copy' if allow_fast else 'backup-api'}
    if journal_mode == 'wal':
        # in WAL mode writers are not blocked by the copy: commits land while copies run
        assert progress_during_copy > 0


def _ledger_count(db):
    c = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=60)
    try:
        return c.execute('SELECT count(*) FROM ledger').fetchone()[0]
    finally:
        c.close()


def test_wal_snapshot_survives_wal_restart_and_truncate_checkpoints(tmp_path):
    """TRUNCATE/RESTART checkpoints reset the WAL between backups; each copy must still be exact."""
    db = str(tmp_path / 'live.db')
    stop = str(tmp_path / 'stop')
    make_db(db, 'wal')
    ck = r'''
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
c.execute('PRAGMA busy_timeout=100')
i = 0
while not os.path.exists(sys.argv[2]):
    c.execute('PRAGMA wal_checkpoint(%s)' % ('TRUNCATE' if i % 2 else 'RESTART')).fetchall()
    i += 1
    time.sleep(0.005)
'''
    procs = [start([WRITER, db, str(w), 'wal', stop]) for w in range(2)] + [start([ck, db, stop])]
    backups = []
    try:
        time.sleep(0.2)
        for i in range(25):
            out = str(tmp_path / ('b%02d.db' % i))
            SN.snapshot_copy(db, out, 60000, verify='none')
            backups.append(out)
    finally:
        stop_all(stop, procs)
    final = final_ledger(db)
    for b in backups:
        check_backup(b, final)


def test_fast_and_api_copies_hold_same_content(tmp_path):
    """On a quiet WAL database with un-checkpointed frames, both paths give the same logical content."""
    db = str(tmp_path / 'q.db')
    make_db(db, 'wal')
    c = sqlite3.connect(db, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    for i in range(50):
        c.execute('INSERT INTO ledger(writer, amount, total) VALUES (0, ?, ?)', (i, i))
    assert os.path.getsize(db + '-wal') > 0
    a, b = str(tmp_path / 'a.db'), str(tmp_path / 'b.db')
    ia = SN.snapshot_copy(db, a)
    ib = SN.snapshot_copy(db, b, allow_fast=False)
    assert (ia['method'], ib['method']) == ('snapshot-copy', 'backup-api')
    dump = []
    for f in (a, b):
        d = sqlite3.connect('file:%s?immutable=1' % f, uri=True)
        dump.append(list(d.iterdump()))
        d.close()
    assert dump[0] == dump[1]
    assert any('INSERT INTO "ledger" VALUES(50,' in s for s in dump[0])
    c.close()


def test_write_lock_path_when_the_header_keeps_moving(tmp_path, monkeypatch):
    """Force the rare path (wal-index header changed during every lock-free try) with live writers.

    A writer committing between the two header reads 20 times in a row cannot be produced on demand, so the
    header reads of the lock-free tries are made to disagree (a mock of that race only); the BEGIN IMMEDIATE
    path that follows is real and runs against real writer processes.
    """
    real = SN._read_shm_header
    calls = {'n': 0}

    def flaky(fd):
        calls['n'] += 1
        return None if calls['n'] <= 40 else real(fd)

    db = str(tmp_path / 'live.db')
    stop = str(tmp_path / 'stop')
    make_db(db, 'wal')
    procs = [start([WRITER, db, str(w), 'wal', stop]) for w in range(2)] + [start([CHECKPOINTER, db, stop])]
    backups = []
    try:
        # the writers must hold the DB (its -wal/-shm there) before the first try: with nobody in it yet, the file
        # alone is read (immutable, see _snapshot.read_plan) and the header path under test would not run
        deadline = time.time() + 60
        while not (os.path.exists(db + '-wal') and os.path.exists(db + '-shm')) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        for i in range(5):
            calls['n'] = 0
            monkeypatch.setattr(SN, '_read_shm_header', flaky)
            out = str(tmp_path / ('b%02d.db' % i))
            info = SN.snapshot_copy(db, out, 60000, verify='none')
            assert info['method'] == 'snapshot-copy'
            assert calls['n'] > 40  # the lock-free tries were exhausted, the write-lock path ran
            backups.append(out)
    finally:
        monkeypatch.setattr(SN, '_read_shm_header', real)
        stop_all(stop, procs)
    final = final_ledger(db)
    for b in backups:
        check_backup(b, final)
