# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_backup and the _sqlite engine against crashed apps, other local users and lying symlinks.

Everything is real: crashed writers are child processes SIGKILLed mid-transaction or after a commit that was
never checkpointed; other users are created with useradd (removed in teardown); the "folder the user cannot
write" case runs the module as that user. Every refusal asserts the message and that every file is unchanged,
owners and modes included (lstat).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _snapshot as SN
from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_backup
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

TS = '20260101_120000'
run = module_runner(sqlite_backup)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def snapshot_of(d):
    """Every entry below ``d`` (the -shm too): content hash or link target, uid, gid, mode, nlink."""
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body = 'link:' + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    body = hashlib.sha256(f.read()).hexdigest()
            else:
                body = stat.S_IFMT(st.st_mode)
            out[os.path.relpath(p, d)] = (body, st.st_uid, st.st_gid, st.st_mode, st.st_nlink)
    return out


def make_db(path, mode='delete', rows=300):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, pad TEXT)')
    c.execute('BEGIN')
    c.executemany('INSERT INTO users(email, pad) VALUES (?, ?)', [('u%d@x' % i, 'p' * 200) for i in range(rows)])
    c.execute('COMMIT')
    c.close()
    return path


def committed_rows(path):
    """The committed rows, as SQLite itself recovers them (in a scratch copy with the side files)."""
    d = tempfile.mkdtemp()
    try:
        real = os.path.realpath(path)
        for suffix in ('', '-wal', '-journal'):
            if os.path.exists(real + suffix):
                shutil.copy(real + suffix, os.path.join(d, 'db' + suffix))
        c = sqlite3.connect(os.path.join(d, 'db'))
        try:
            return c.execute('SELECT id, email FROM users ORDER BY id').fetchall()
        finally:
            c.close()
    finally:
        shutil.rmtree(d)


def file_rows(path):
    c = sqlite3.connect('file:%s?immutable=1' % path, uri=True)
    try:
        return c.execute('SELECT id, email FROM users ORDER BY id').fetchall()
    finally:
        c.close()


CRASH_IN_TRANSACTION = r'''
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('PRAGMA cache_size=1')  # spill: the torn pages reach the database file before the commit
c.execute('BEGIN')
c.execute("UPDATE users SET email = 'torn-' || email")
c.execute("INSERT INTO users(email, pad) SELECT 'new-' || email, pad FROM users")
os.kill(os.getpid(), 9)
'''

CRASH_AFTER_COMMIT = r'''
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('PRAGMA wal_autocheckpoint=0')
c.execute('BEGIN')
c.executemany("INSERT INTO users(email, pad) VALUES (?, 'x')", [('wal-only-%d@x' % i,) for i in range(50)])
c.execute('COMMIT')
os.kill(os.getpid(), 9)
'''


def crash(script, db):
    p = subprocess.run([sys.executable, '-c', script, db], capture_output=True, timeout=60, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr


def hot_journal_db(path):
    make_db(path)
    good = file_rows(path)
    crash(CRASH_IN_TRANSACTION, path)
    assert os.path.getsize(path + '-journal') > 0
    assert SN.crash_state(path)['journal_hot']
    assert file_rows_or_error(path) != good  # the file alone is torn: the committed rows need the journal
    return good


def file_rows_or_error(path):
    try:
        return file_rows(path)
    except sqlite3.DatabaseError as e:
        return str(e)


def wal_frames_db(path, keep_shm):
    make_db(path, 'wal')
    crash(CRASH_AFTER_COMMIT, path)
    assert os.path.getsize(path + '-wal') > 0
    if not keep_shm:
        os.unlink(path + '-shm')
    good = committed_rows(path)
    assert len(good) == 350 and file_rows(path) != good  # 50 committed rows only in the WAL
    return good


# ----------------------------------------------------------------------------- A. a crashed app is not corrupt


def test_backup_of_a_db_with_a_hot_journal_has_the_committed_rows(tmp_path):
    db = str(tmp_path / 'app' / 'database.db')
    os.makedirs(os.path.dirname(db))
    good = hot_journal_db(db)
    out = tmp_path / 'out'
    out.mkdir()
    before = snapshot_of(tmp_path / 'app')
    chk = run({'path': db, 'dest_dir': str(out), 'timestamp': TS}, check=True)
    assert chk['changed'] is True and 'hot rollback journal' in chk['recovered'] and db in chk['recovered']
    assert 'corrupt' not in json.dumps(chk)
    assert snapshot_of(tmp_path / 'app') == before and os.listdir(out) == []
    r = run({'path': db, 'dest_dir': str(out), 'timestamp': TS})
    assert r['changed'] is True and r['integrity'] == 'ok', r
    assert 'hot rollback journal %s-journal (%d bytes)' % (db, os.path.getsize(db + '-journal')) in r['recovered']
    assert file_rows(r['backup_file']) == good
    assert snapshot_of(tmp_path / 'app') == before  # the journal is never discarded, the DB never touched
    assert committed_rows(db) == good


@pytest.mark.parametrize('keep_shm', [True, False])
def test_backup_of_a_db_with_committed_frames_in_its_wal(tmp_path, keep_shm):
    db = str(tmp_path / 'app' / 'database.db')
    os.makedirs(os.path.dirname(db))
    good = wal_frames_db(db, keep_shm)
    out = tmp_path / 'out'
    out.mkdir()
    before = snapshot_of(tmp_path / 'app')
    r = run({'path': db, 'dest_dir': str(out), 'timestamp': TS})
    assert r['changed'] is True and r['integrity'] == 'ok', r
    assert file_rows(r['backup_file']) == good
    if not keep_shm:
        assert 'WAL' in r['recovered'] or '-wal' in r['recovered']
        assert snapshot_of(tmp_path / 'app') == before
    else:
        # SQLite rebuilds the wal-index in the existing -shm (shared memory, not data); nothing else moves
        after = snapshot_of(tmp_path / 'app')
        assert {k: v for k, v in after.items() if not k.endswith('-shm')} == {k: v for k, v in before.items() if not k.endswith('-shm')}
        assert set(after) == set(before)
    assert committed_rows(db) == good


def test_restore_over_a_hot_journal_keeps_the_committed_state(tmp_path):
    """The torn file is never the before-restore copy and its journal is never deleted."""
    db = str(tmp_path / 'database.db')
    src = make_db(str(tmp_path / 'backup.db'), rows=7)
    good = hot_journal_db(db)
    journal = open(db + '-journal', 'rb').read()
    before = snapshot_of(tmp_path)
    chk = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS}, check=True)
    assert chk['changed'] is True and 'hot rollback journal' in chk['recovered']
    assert snapshot_of(tmp_path) == before
    r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS})
    assert r['changed'] is True, r
    assert file_rows(db) == file_rows(src)
    assert file_rows(r['aside_file']) == good  # self-contained: the committed rows, no journal needed
    assert not os.path.exists(r['aside_file'] + '-journal') and not os.path.exists(db + '-journal')
    with open(r['aside_file'] + '.old-journal', 'rb') as f:
        assert f.read() == journal  # kept, under a name SQLite never applies


def test_restore_over_committed_wal_frames_keeps_them(tmp_path):
    db = str(tmp_path / 'database.db')
    src = make_db(str(tmp_path / 'backup.db'), rows=7)
    good = wal_frames_db(db, keep_shm=False)
    r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS})
    assert r['changed'] is True, r
    assert file_rows(r['aside_file']) == good and file_rows(db) == file_rows(src)
    assert not os.path.exists(db + '-wal') and os.path.getsize(r['aside_file'] + '.old-wal') > 0


def test_open_readonly_reads_committed_state_and_creates_nothing(tmp_path):
    j = str(tmp_path / 'j.db')
    good_j = hot_journal_db(j)
    w = str(tmp_path / 'w.db')
    good_w = wal_frames_db(w, keep_shm=False)
    c = str(tmp_path / 'closed.db')
    make_db(c, 'wal')
    before = snapshot_of(tmp_path)
    for path, want, how in ((j, good_j, 'private-copy'), (w, good_w, 'private-copy'), (c, None, 'immutable')):
        with SN.open_readonly(path) as ro:
            got = ro.conn.execute('SELECT id, email FROM users ORDER BY id').fetchall()
            assert ro.how == how and ro.stable()
        if want is not None:
            assert got == want
        assert SN.read_consistent(path, lambda conn: conn.execute('SELECT count(*) FROM users').fetchone()[0]) == len(got)
        assert snapshot_of(tmp_path) == before


def test_a_corrupt_db_is_still_called_corrupt(tmp_path):
    db = make_db(str(tmp_path / 'c.db'), rows=3000)
    with open(db, 'r+b') as f:
        f.seek(4096 * 3 + 100)
        f.write(b'\xff' * 3000)
    before = snapshot_of(tmp_path)
    r = run({'path': db, 'timestamp': TS})
    assert r['failed'] and 'failed quick_check' in r['msg']
    assert snapshot_of(tmp_path) == before


# ----------------------------------------------------------------------------- the folder the user cannot write

SITE = os.path.join(ROOT, '.venv', 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages')


def run_as(user, args, home):
    argfile = os.path.join(home, 'args.json')
    with open(argfile, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    os.chmod(argfile, 0o644)
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': '%s:%s' % (SITE, os.path.join(ROOT, '.collections')), 'HOME': home,
           'TMPDIR': home}
    p = subprocess.run(['/usr/bin/python3', '-m', 'ansible_collections.bluegreen.dbfix.plugins.modules.sqlite_backup', argfile],
                       env=env, cwd=home, user=user.pw_uid, group=user.pw_gid, extra_groups=[], capture_output=True,
                       text=True, timeout=120, check=False)
    assert 'Traceback' not in p.stdout + p.stderr, p.stdout + p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def site():
    root = tempfile.mkdtemp(prefix='dbfix-h1b-', dir='/tmp')
    os.chmod(root, 0o755)
    try:
        with local_user('dbfixro') as user:
            home = os.path.join(root, 'home')
            os.mkdir(home)
            os.chown(home, user.pw_uid, user.pw_gid)
            dbdir = os.path.join(root, 'db')
            os.mkdir(dbdir)
            os.chmod(dbdir, 0o755)  # root's: the user can read but not write it
            yield {'root': root, 'user': user, 'home': home, 'dbdir': dbdir}
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize('case', ['closed', 'wal-frames'])
def test_wal_db_in_a_folder_the_user_cannot_write(site, case):
    db = os.path.join(site['dbdir'], 'database.db')
    if case == 'closed':
        make_db(db, 'wal')
        good = file_rows(db)
    else:
        good = wal_frames_db(db, keep_shm=False)
    for f in os.listdir(site['dbdir']):
        os.chmod(os.path.join(site['dbdir'], f), 0o644)
    before = snapshot_of(site['dbdir'])
    chk = run_as(site['user'], {'path': db, 'dest_dir': site['home'], 'timestamp': TS, '_ansible_check_mode': True}, site['home'])
    assert chk.get('failed') is not True and chk['changed'] is True, chk
    r = run_as(site['user'], {'path': db, 'dest_dir': site['home'], 'timestamp': TS}, site['home'])
    assert r.get('failed') is not True and r['changed'] is True, r
    assert file_rows(r['backup_file']) == good
    assert os.stat(r['backup_file']).st_uid == site['user'].pw_uid
    assert snapshot_of(site['dbdir']) == before
    assert sorted(os.listdir(site['home'])) == ['args.json', 'database.db.backup.' + TS]  # no temp left behind


def test_wal_files_the_user_cannot_write_are_read_not_called_corrupt(site):
    """-wal/-shm left by a crash and owned by root 0644: SQLite reads them through a read-only -shm; the backup has
    the committed WAL rows and nothing in the folder changes."""
    db = os.path.join(site['dbdir'], 'database.db')
    good = wal_frames_db(db, keep_shm=True)
    for f in os.listdir(site['dbdir']):
        os.chmod(os.path.join(site['dbdir'], f), 0o644)
    before = snapshot_of(site['dbdir'])
    r = run_as(site['user'], {'path': db, 'dest_dir': site['home'], 'timestamp': TS}, site['home'])
    assert r.get('failed') is not True and r['changed'] is True, r
    assert file_rows(r['backup_file']) == good
    assert snapshot_of(site['dbdir']) == before


def test_unreadable_side_files_are_explained_not_called_corrupt(site):
    """A -shm the user may not even read (0600 root): SQLite cannot open the database; the message says why."""
    db = os.path.join(site['dbdir'], 'database.db')
    wal_frames_db(db, keep_shm=True)
    os.chmod(db, 0o644)
    os.chmod(db + '-wal', 0o644)
    os.chmod(db + '-shm', 0o600)
    before = snapshot_of(site['dbdir'])
    r = run_as(site['user'], {'path': db, 'dest_dir': site['home'], 'timestamp': TS}, site['home'])
    assert r.get('failed') is True, r
    print('MSG', r['msg'])
    assert db in r['msg'] and 'is not corrupt' in r['msg'] and 'restore it from a backup' not in r['msg'], r['msg']
    assert '%s-shm is not writable by uid %d' % (db, site['user'].pw_uid) in r['msg'], r['msg']
    assert snapshot_of(site['dbdir']) == before
    assert sorted(os.listdir(site['home'])) == ['args.json']


# ----------------------------------------------------------------------------- B. other local users


@pytest.fixture(scope='module')
def other():
    with local_user('dbfixot') as pw:
        yield pw


def plant(path, user, data=b'\0' * 4096):
    with open(path, 'wb') as f:
        f.write(data)
    os.chown(path, user.pw_uid, user.pw_gid)


@pytest.mark.parametrize('suffix', ['-wal', '-shm', '-journal'])
@pytest.mark.parametrize('state', ['present', 'present-check', 'restored'])
def test_side_file_planted_by_another_user_is_refused_before_sqlite_opens(tmp_path, other, suffix, state):
    app = tmp_path / 'app'
    app.mkdir()
    db = make_db(str(app / 'database.db'), 'wal' if suffix != '-journal' else 'delete')
    src = make_db(str(tmp_path / 'backup.db'), rows=3)
    plant(db + suffix, other)
    before = snapshot_of(tmp_path)
    args = {'path': db, 'timestamp': TS}
    if state == 'restored':
        args.update(state='restored', src=src)
    r = run(args, check=state == 'present-check')
    assert r.get('failed') is True, r
    assert db + suffix in r['msg'] and other.pw_name in r['msg'] and 'Refusing' in r['msg'] and 'planted' in r['msg']
    assert snapshot_of(tmp_path) == before


def test_backup_folder_writable_by_others_is_refused(tmp_path, other):
    db = make_db(str(tmp_path / 'database.db'))
    out = tmp_path / 'out'
    out.mkdir()
    os.chmod(out, 0o777)
    before = snapshot_of(tmp_path)
    r = run({'path': db, 'dest_dir': str(out), 'timestamp': TS})
    assert r['failed'] and str(out) in r['msg'] and 'every local user' in r['msg'] and 'chmod o-w' in r['msg']
    assert snapshot_of(tmp_path) == before
    os.chmod(out, 0o755)
    os.chown(out, other.pw_uid, other.pw_gid)
    r = run({'path': db, 'dest_dir': str(out), 'timestamp': TS})
    assert r['failed'] and str(out) in r['msg'] and other.pw_name in r['msg']
    os.chown(out, 0, other.pw_gid)
    os.chmod(out, 0o775)  # group-writable, and the other user is in that group
    r = run({'path': db, 'dest_dir': str(out), 'timestamp': TS})
    assert r['failed'] and 'writable by group' in r['msg'] and other.pw_name in r['msg']


@pytest.mark.parametrize('state', ['present', 'restored'])
def test_db_folder_writable_by_others_is_refused(tmp_path, state):
    app = tmp_path / 'app'
    app.mkdir()
    db = make_db(str(app / 'database.db'), 'wal')
    src = make_db(str(tmp_path / 'backup.db'), rows=3)
    os.chmod(app, 0o777)
    before = snapshot_of(tmp_path)
    args = {'path': db, 'dest_dir': str(tmp_path), 'timestamp': TS} if state == 'present' else \
        {'path': db, 'src': src, 'state': 'restored', 'timestamp': TS}
    for check in (True, False):
        r = run(args, check=check)
        assert r['failed'] and str(app) in r['msg'] and 'every local user' in r['msg'], r
        assert snapshot_of(tmp_path) == before


# ----------------------------------------------------------------------------- C. what a symlink points at


@contextlib.contextmanager
def link_to(tmp_path, kind):
    target = tmp_path / 'target'
    if kind == 'text':
        target.write_text('not a database\n' * 20)
    elif kind == 'directory':
        target.mkdir()
    elif kind == 'fifo':
        os.mkfifo(target)
    elif kind == 'empty':
        target.write_bytes(b'')
    elif kind == 'device':
        target = '/dev/null'
    link = tmp_path / 'database.db'
    os.symlink(str(target), link)
    yield str(link), str(target)


@pytest.mark.parametrize('kind', ['text', 'directory', 'fifo', 'empty', 'device'])
def test_restore_into_a_symlink_whose_target_is_not_a_database(tmp_path, kind):
    src = make_db(str(tmp_path / 'backup.db'), rows=3)
    with link_to(tmp_path, kind) as (link, target):
        before = snapshot_of(tmp_path)
        for check in (True, False):
            r = run({'path': link, 'src': src, 'state': 'restored', 'timestamp': TS}, check=check)
            assert r.get('failed') is True, r
            assert link in r['msg'] and target in r['msg'], r['msg']
            assert snapshot_of(tmp_path) == before


@pytest.mark.parametrize('verify', ['none', 'quick'])
def test_restore_src_must_pass_quick_check_whatever_verify_says(tmp_path, verify):
    db = make_db(str(tmp_path / 'database.db'))
    src = make_db(str(tmp_path / 'backup.db'), rows=3000)
    with open(src, 'r+b') as f:
        f.seek(4096 * 3 + 100)
        f.write(b'\xff' * 3000)
    before = snapshot_of(tmp_path)
    r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS, 'verify': verify})
    assert r['failed'] and 'failed quick_check' in r['msg'] and src in r['msg']
    assert snapshot_of(tmp_path) == before


# ----------------------------------------------------------------------------- D. check mode (and reads) write nothing


def test_reading_a_closed_wal_db_creates_no_side_files(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    db = make_db(str(app / 'database.db'), 'wal')
    backup = make_db(str(tmp_path / 'old.db'), rows=2)
    assert os.listdir(app) == ['database.db']
    before = snapshot_of(app)
    out = tmp_path / 'out'
    out.mkdir()
    for args, check in (({'path': db, 'timestamp': TS}, True),
                        ({'path': db, 'dest_dir': str(out), 'timestamp': TS}, False),
                        ({'path': db, 'dest_dir': str(out), 'timestamp': TS, 'skip_unchanged': True}, False),
                        ({'path': db, 'src': backup, 'state': 'restored', 'timestamp': TS}, True)):
        r = run(args, check=check, diff=True)
        assert r.get('failed') is not True, r
        assert os.listdir(app) == ['database.db'] and snapshot_of(app) == before, args
    SN.snapshot_copy(db, None)
    S.verify_file(db, 'quick')
    assert snapshot_of(app) == before


# ----------------------------------------------------------------------------- E. never overwrite


def test_atomic_file_without_replace_never_overwrites(tmp_path):
    final = tmp_path / 'b'
    a = S.AtomicFile(str(final))
    a.write(b'new')
    final.write_bytes(b'old')  # another run took the name meanwhile
    with pytest.raises(FileExistsError):
        a.commit(replace=False)
    assert final.read_bytes() == b'old' and os.listdir(tmp_path) == ['b']


def test_a_backup_name_taken_during_the_copy_goes_to_the_next_name(tmp_path, monkeypatch):
    """A concurrent run cannot be timed for real inside one copy, so the other run's file is created from the
    before_commit hook, i.e. after our name was chosen and before it is linked into place."""
    db = make_db(str(tmp_path / 'database.db'))
    real_copy = SN.snapshot_copy
    planted = str(tmp_path / ('database.db.backup.' + TS))

    def racing(*a, **kw):
        if a[1] == planted and not os.path.exists(planted):
            with open(planted, 'wb') as f:
                f.write(b'the other run')
        return real_copy(*a, **kw)

    monkeypatch.setattr(SN, 'snapshot_copy', racing)
    r = run({'path': db, 'timestamp': TS})
    assert r['changed'] and r['backup_file'] == planted + '.1', r
    assert open(planted, 'rb').read() == b'the other run'


def test_restore_from_a_src_with_a_hot_journal_is_refused(tmp_path):
    db = make_db(str(tmp_path / 'database.db'), rows=5)
    src = str(tmp_path / 'backup.db')
    hot_journal_db(src)
    before = snapshot_of(tmp_path)
    for check in (True, False):
        r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS}, check=check)
        assert r['failed'] and 'hot rollback journal %s-journal' % src in r['msg'] and 'torn' in r['msg'], r
        assert snapshot_of(tmp_path) == before


def test_restore_over_a_damaged_db_still_works_and_keeps_it_aside(tmp_path):
    """Restoring is what a really damaged database needs: it is kept aside byte for byte, then replaced."""
    db = make_db(str(tmp_path / 'database.db'), rows=3000)
    with open(db, 'r+b') as f:
        f.seek(4096 * 3 + 100)
        f.write(b'\xff' * 3000)
    damaged = hashlib.sha256(open(db, 'rb').read()).hexdigest()
    src = make_db(str(tmp_path / 'backup.db'), rows=4)
    r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS}, diff=True)
    assert r['changed'] is True, r
    assert file_rows(db) == file_rows(src)
    assert hashlib.sha256(open(r['aside_file'], 'rb').read()).hexdigest() == damaged
