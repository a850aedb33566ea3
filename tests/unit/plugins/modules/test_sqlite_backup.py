# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_backup on real SQLite files: backups, retention, idempotence, restore, and every bad input.

Every failing case asserts the message and that every file in the folder is byte-identical afterwards.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite
from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_backup
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tmpfs, tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner, run_module

TS = '20260101_120000'


run = module_runner(sqlite_backup)


def make_db(path, mode='delete', rows=200):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, position TEXT)')
    c.execute('BEGIN')
    c.executemany('INSERT INTO users(email, position) VALUES (?, ?)', [('u%d@x' % i, 'dev') for i in range(rows)])
    c.execute('COMMIT')
    c.close()
    return path


def rows(path):
    c = sqlite3.connect('file:%s?immutable=1' % path, uri=True)
    try:
        return c.execute('SELECT id, email, position FROM users ORDER BY id').fetchall()
    finally:
        c.close()


def add_user(db, email):
    """Commit one more row, so a fresh snapshot differs from every backup taken before."""
    c = sqlite3.connect(db)
    c.execute('INSERT INTO users(email) VALUES (?)', (email,))
    c.commit()
    c.close()


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_backup_is_complete_verified_and_named_like_the_seed(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    os.chmod(db, 0o640)
    r = run({'path': db, 'timestamp': TS})
    assert r['changed'] is True
    assert r['backup_file'] == str(tmp_path / ('database.db.backup.' + TS))
    assert r['integrity'] == 'ok'
    assert r['sha256'] == sha(r['backup_file'])
    assert r['size'] == os.path.getsize(r['backup_file'])
    assert r['method'] == 'snapshot-copy'
    assert rows(r['backup_file']) == rows(db)
    assert stat.S_IMODE(os.stat(r['backup_file']).st_mode) == 0o640
    assert r['pruned'] == []
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


def test_verify_none_skips_the_checksum_unless_asked(tmp_path):
    """verify=none reads nothing back and hashes nothing (sha256 null); checksum=true brings the sha256 back."""
    db = make_db(str(tmp_path / 'database.db'), mode='wal', rows=5000)
    r = run({'path': db, 'dest': str(tmp_path / 'none.db'), 'verify': 'none'})
    assert r['changed'] is True and r['integrity'] is None and r['sha256'] is None
    assert r['size'] == os.path.getsize(r['backup_file'])
    assert rows(r['backup_file']) == rows(db)
    r = run({'path': db, 'dest': str(tmp_path / 'sum.db'), 'verify': 'none', 'checksum': True})
    assert r['integrity'] is None and r['sha256'] == sha(r['backup_file']) == sha(str(tmp_path / 'none.db'))
    r = run({'path': db, 'dest': str(tmp_path / 'quick.db'), 'checksum': False})
    assert r['integrity'] == 'ok' and r['sha256'] is None


def test_verify_none_with_skip_unchanged_still_compares(tmp_path):
    """skip_unchanged needs a checksum to compare with the newest backup, whatever verify says."""
    db = make_db(str(tmp_path / 'database.db'))
    first = run({'path': db, 'timestamp': '20260101_000000', 'verify': 'none', 'skip_unchanged': True})
    assert first['changed'] is True
    second = run({'path': db, 'timestamp': TS, 'verify': 'none', 'skip_unchanged': True})
    assert second['changed'] is False and second['backup_file'] == first['backup_file']
    assert second['sha256'] == sha(first['backup_file'])


def test_writeback_error_of_the_flusher_fails_the_backup(tmp_path, monkeypatch):
    """An EIO at writeback cannot be produced on this machine (no faulty block device), so fdatasync is made to
    fail: the flusher's error must fail the backup and leave no file, because Linux reports a writeback error
    only once per open file and the final fsync would not see it again."""
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite as S
    db = make_db(str(tmp_path / 'database.db'), rows=20000)
    before = tree(tmp_path)

    def eio(fd):
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(S.os, 'fdatasync', eio)
    r = run({'path': db, 'timestamp': TS, 'verify': 'none'})
    assert r['failed'] and 'Input/output error' in r['msg'] and db in r['msg'] and 'No partial file' in r['msg']
    assert tree(tmp_path) == before


def test_default_timestamp_is_now(tmp_path):
    db = make_db(str(tmp_path / 'd.db'))
    r = run({'path': db})
    m = re.match(r'^d\.db\.backup\.(\d{8}_\d{6})$', os.path.basename(r['backup_file']))
    assert m
    assert abs(time.mktime(time.strptime(m.group(1), '%Y%m%d_%H%M%S')) - time.time()) < 120


def test_wal_frames_are_in_the_backup_and_no_wal_is_needed(tmp_path):
    db = str(tmp_path / 'w.db')
    make_db(db, 'wal')
    c = sqlite3.connect(db, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("UPDATE users SET position='lead' WHERE id % 3 = 0")
    c.execute("INSERT INTO users(email, position) VALUES ('new@x', 'ops')")
    assert os.path.getsize(db + '-wal') > 0
    r = run({'path': db, 'dest_dir': str(tmp_path / 'out'), 'timestamp': TS}) if os.makedirs(tmp_path / 'out') is None else None
    assert not os.path.exists(r['backup_file'] + '-wal')
    got = rows(r['backup_file'])
    assert got == c.execute('SELECT id, email, position FROM users ORDER BY id').fetchall()
    assert ('new@x' in [x[1] for x in got])
    c.close()


def test_check_mode_writes_nothing(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    for i in range(3):
        run({'path': db, 'timestamp': '2025010%d_000000' % (i + 1)})
    before = tree(tmp_path)
    r = run({'path': db, 'timestamp': TS, 'keep': 2}, check=True)
    assert r['changed'] is True
    assert r['backup_file'] == str(tmp_path / ('database.db.backup.' + TS))
    assert r['pruned'] == [str(tmp_path / 'database.db.backup.20250102_000000'), str(tmp_path / 'database.db.backup.20250101_000000')]
    assert tree(tmp_path) == before


def test_keep_prunes_oldest_and_never_the_new_one(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    for i in range(4):
        run({'path': db, 'timestamp': '2025010%d_000000' % (i + 1)})
    (tmp_path / 'other.db.backup.20200101_000000').write_text('not ours')
    (tmp_path / 'database.db.backup.notastamp').write_text('not ours either')
    r = run({'path': db, 'timestamp': '20240101_000000', 'keep': 2})  # older stamp than the existing ones
    assert r['changed'] is True
    assert os.path.exists(r['backup_file'])
    assert r['pruned'] == [str(tmp_path / ('database.db.backup.2025010%d_000000' % i)) for i in (3, 2, 1)]
    left = sorted(f for f in os.listdir(tmp_path) if f.startswith('database.db.backup.'))
    assert left == ['database.db.backup.20240101_000000', 'database.db.backup.20250104_000000', 'database.db.backup.notastamp']
    assert (tmp_path / 'other.db.backup.20200101_000000').exists()


def test_skip_unchanged_is_idempotent_until_the_data_changes(tmp_path):
    db = make_db(str(tmp_path / 'database.db'), 'wal')
    first = run({'path': db, 'skip_unchanged': True, 'timestamp': '20250101_000000'})
    assert first['changed'] is True
    before = sorted(os.listdir(tmp_path))
    again = run({'path': db, 'skip_unchanged': True, 'timestamp': '20250101_000001'}, check=True)
    assert again['changed'] is False and again['backup_file'] == first['backup_file']
    again = run({'path': db, 'skip_unchanged': True, 'timestamp': '20250101_000001'})
    assert again['changed'] is False and again['backup_file'] == first['backup_file'] and again['sha256'] == first['sha256']
    assert sorted(os.listdir(tmp_path)) == before
    add_user(db, 'late@x')
    assert run({'path': db, 'skip_unchanged': True, 'timestamp': '20250101_000002'}, check=True)['changed'] is True
    third = run({'path': db, 'skip_unchanged': True, 'timestamp': '20250101_000002'})
    assert third['changed'] is True and third['backup_file'].endswith('20250101_000002')
    assert ('late@x' in [x[1] for x in rows(third['backup_file'])])


def test_same_timestamp_rerun_is_unchanged_but_never_overwrites_other_content(tmp_path):
    """Retried with one timestamp while the data changes: every run's content gets its own name (.1, .2, ...),
    a rerun with unchanged data finds its backup again, and no backup is ever rewritten."""
    db = make_db(str(tmp_path / 'database.db'))
    r1 = run({'path': db, 'timestamp': TS})
    r2 = run({'path': db, 'timestamp': TS})
    assert r1['changed'] is True and r2['changed'] is False and r2['sha256'] == r1['sha256']
    first = tree(tmp_path, meta=True)
    names = [r1['backup_file']]
    for i in range(1, 4):
        add_user(db, 'late%d@x' % i)
        chk = run({'path': db, 'timestamp': TS}, check=True)
        assert chk['changed'] is True and chk['backup_file'] == r1['backup_file'] + '.%d' % i
        r = run({'path': db, 'timestamp': TS})
        assert r['changed'] is True and r['backup_file'] == r1['backup_file'] + '.%d' % i
        assert ('late%d@x' % i) in [x[1] for x in rows(r['backup_file'])]
        names.append(r['backup_file'])
        assert run({'path': db, 'timestamp': TS})['backup_file'] == r['backup_file']  # found again, unchanged
    now = tree(tmp_path, meta=True)
    assert all(now[k] == v for k, v in first.items() if k.startswith('database.db.backup.'))
    listed = _sqlite.list_backups(str(tmp_path), 'database.db')
    assert listed == names[::-1]
    # a fixed dest is never replaced either
    dest = str(tmp_path / 'fixed.db')
    run({'path': db, 'dest': dest})
    add_user(db, 'later@x')
    before = tree(tmp_path, meta=True)
    r3 = run({'path': db, 'dest': dest})
    assert r3['failed'] and 'already exists with different content' in r3['msg'] and dest in r3['msg']
    assert tree(tmp_path, meta=True) == before


def test_symlinked_db_is_read_through_the_link(tmp_path):
    shared = make_db(str(tmp_path / 'database-shared.db'))
    app = tmp_path / 'app'
    app.mkdir()
    os.symlink(shared, app / 'database.db')
    r = run({'path': str(app / 'database.db'), 'timestamp': TS})
    assert r['backup_file'] == str(app / ('database.db.backup.' + TS))
    assert not os.path.islink(r['backup_file'])
    assert rows(r['backup_file']) == rows(shared)


def test_owner_mode_never_wider_than_source(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    os.chmod(db, 0o600)
    before = tree(tmp_path)
    r = run({'path': db, 'timestamp': TS, 'mode': '0644'})
    assert r['failed'] and 'more users' in r['msg'] and db in r['msg']
    assert tree(tmp_path) == before
    r = run({'path': db, 'timestamp': TS, 'mode': '0400', 'owner': 'nobody'})
    st = os.stat(r['backup_file'])
    assert stat.S_IMODE(st.st_mode) == 0o400
    if os.geteuid() == 0:
        import pwd
        assert st.st_uid == pwd.getpwnam('nobody').pw_uid


# ----------------------------------------------------------------------------- bad inputs


def corrupt(path):
    with open(path, 'r+b') as f:
        f.seek(4096 * 3 + 100)
        f.write(b'\xff' * 3000)


BAD_CASES = {
    'missing': (lambda d: str(d / 'nope.db'), 'does not exist'),
    'directory': (str, 'is a directory'),
    'not_sqlite': (lambda d: (d / 'notes.db').write_text('hello, I am a text file\n' * 10) and str(d / 'notes.db'), 'is not an SQLite database'),
    'empty': (lambda d: (d / 'empty.db').write_bytes(b'') or str(d / 'empty.db'), 'is empty (0 bytes)'),
    'dangling_link': (lambda d: os.symlink(str(d / 'gone.db'), str(d / 'link.db')) or str(d / 'link.db'), 'dangling'),
    'corrupt': (lambda d: (make_db(str(d / 'c.db'), rows=3000), corrupt(str(d / 'c.db')))[0], 'failed quick_check'),
    'symlink_loop': (lambda d: (os.symlink(str(d / 'loop2.db'), str(d / 'loop1.db')), os.symlink(str(d / 'loop1.db'), str(d / 'loop2.db')))
                     and str(d / 'loop1.db'), 'looping link'),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_source_fails_and_changes_nothing(tmp_path, case):
    work = tmp_path / 'w'
    work.mkdir()
    make_db(str(work / 'bystander.db'))
    builder, expect = BAD_CASES[case]
    path = builder(work)
    before = tree(work)
    r = run({'path': path, 'dest_dir': str(work), 'timestamp': TS})
    assert r.get('failed') is True, r
    assert expect in r['msg']
    assert path in r['msg']
    assert tree(work) == before


def test_corrupt_db_says_which_check_failed_with_full(tmp_path):
    db = make_db(str(tmp_path / 'c.db'), rows=3000)
    corrupt(db)
    before = tree(tmp_path)
    r = run({'path': db, 'timestamp': TS, 'verify': 'full'})
    assert r['failed'] and 'failed integrity_check' in r['msg'] and 'page' in r['msg']
    assert tree(tmp_path) == before


def test_destination_missing(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    before = tree(tmp_path)
    r = run({'path': db, 'dest_dir': str(tmp_path / 'nope')})
    assert r['failed'] and 'does not exist' in r['msg'] and str(tmp_path / 'nope') in r['msg'] and db in r['msg']
    assert tree(tmp_path) == before


def test_destination_read_only(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    with tmpfs(tmp_path / 'ro', 'size=4m,ro') as ro:
        before = tree(tmp_path)
        r = run({'path': db, 'dest_dir': str(ro)})
        assert r['failed'] and 'not writable' in r['msg'] and str(ro) in r['msg']
        assert tree(tmp_path) == before


def test_disk_full_leaves_no_partial_file(tmp_path):
    """A real full filesystem: a 1 MiB tmpfs receives a ~3 MiB database."""
    db = make_db(str(tmp_path / 'database.db'), rows=120000)
    assert os.path.getsize(db) > 2 * 1024 * 1024
    with tmpfs(tmp_path / 'small', 'size=1m') as small:
        (small / 'keep.txt').write_text('unrelated')
        before = tree(tmp_path)
        r = run({'path': db, 'dest_dir': str(small), 'timestamp': TS})
        assert r['failed'] and 'No space left on device' in r['msg'] and 'No partial file' in r['msg'] and db in r['msg']
        assert tree(tmp_path) == before
        assert os.listdir(small) == ['keep.txt']


HOLDER = r'''
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute(sys.argv[2])
c.execute("INSERT INTO users(email) VALUES ('locker')")
print('ready', flush=True)
time.sleep(30)
'''


@contextlib.contextmanager
def holder(db, begin='BEGIN EXCLUSIVE'):
    p = subprocess.Popen([sys.executable, '-c', HOLDER, db, begin], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'ready'
        yield p
    finally:
        p.kill()
        p.wait()


def test_locked_past_busy_timeout_names_the_holder(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    with holder(db) as p:
        before = tree(tmp_path)
        t0 = time.time()
        r = run({'path': db, 'timestamp': TS, 'busy_timeout': 300})
        assert time.time() - t0 >= 0.3
        assert r['failed'] and 'locked longer than busy_timeout=300 ms' in r['msg'] and 'pid %d' % p.pid in r['msg']
        assert tree(tmp_path) == before


def test_locked_wal_db_exclusive_locking_mode(tmp_path):
    db = make_db(str(tmp_path / 'database.db'), 'wal')
    with holder(db, 'PRAGMA locking_mode=EXCLUSIVE'):
        r = run({'path': db, 'timestamp': TS, 'busy_timeout': 200})
        assert r['failed'] and 'locked' in r['msg'] and db in r['msg']
    assert not os.path.exists(str(tmp_path / ('database.db.backup.' + TS)))


def test_bad_timestamp_and_keep(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    before = tree(tmp_path)
    r = run({'path': db, 'timestamp': '2026-01-01'})
    assert r['failed'] and 'YYYYMMDD_HHMMSS' in r['msg']
    r = run({'path': db, 'keep': 0})
    assert r['failed'] and 'keep' in r['msg'] and db in r['msg']
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- restore


def test_restore_keeps_current_aside_and_handles_wal(tmp_path):
    db = make_db(str(tmp_path / 'database.db'), 'wal')
    backup = run({'path': db, 'timestamp': '20250101_000000'})['backup_file']
    good = rows(backup)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO users(email) VALUES ('after-backup')")
    c.close()
    # an -wal with frames beside the current DB (a crashed app leaves this)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute('PRAGMA wal_autocheckpoint=0')
    c.execute("INSERT INTO users(email) VALUES ('in-wal-only')")
    current = c.execute('SELECT id, email, position FROM users ORDER BY id').fetchall()
    os.system('true')
    # keep the WAL: copy files as they are while the connection is open, then close without checkpoint
    import shutil
    shutil.copy(db, db + '.x')
    shutil.copy(db + '-wal', db + '.x-wal')
    c.close()
    os.replace(db + '.x', db)
    os.replace(db + '.x-wal', db + '-wal')
    assert os.path.getsize(db + '-wal') > 0
    before = tree(tmp_path)
    chk = run({'path': db, 'src': backup, 'state': 'restored', 'timestamp': TS}, check=True)
    assert chk['changed'] is True and chk['aside_file'] == db + '.before-restore.' + TS
    assert tree(tmp_path) == before
    r = run({'path': db, 'src': backup, 'state': 'restored', 'timestamp': TS})
    assert r['changed'] is True and r['aside_file'] == db + '.before-restore.' + TS
    assert rows(db) == good
    assert not os.path.exists(db + '-wal') and not os.path.exists(db + '-shm')
    assert rows(r['aside_file']) == current  # the aside copy is complete on its own (WAL folded in)
    assert sha(db) == sha(backup) == r['sha256']
    again = run({'path': db, 'src': backup, 'state': 'restored', 'timestamp': '20260101_120001'})
    assert again['changed'] is False
    assert run({'path': db, 'src': backup, 'state': 'restored'}, check=True)['changed'] is False


def test_restore_through_symlink_writes_the_target(tmp_path):
    shared = make_db(str(tmp_path / 'database-shared.db'))
    backup = run({'path': shared, 'timestamp': '20250101_000000'})['backup_file']
    c = sqlite3.connect(shared)
    c.execute('DELETE FROM users')
    c.commit()
    c.close()
    link = tmp_path / 'database.db'
    os.symlink(shared, link)
    r = run({'path': str(link), 'src': backup, 'state': 'restored', 'timestamp': TS})
    assert r['changed'] and os.path.islink(link) and os.readlink(link) == shared
    assert r['aside_file'] == shared + '.before-restore.' + TS
    assert len(rows(shared)) == 200 and rows(r['aside_file']) == []


def test_restore_refuses_while_db_is_open(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    backup = run({'path': db, 'timestamp': '20250101_000000'})['backup_file']
    with holder(db, 'BEGIN') as p:
        before = tree(tmp_path)
        r = run({'path': db, 'src': backup, 'state': 'restored', 'timestamp': TS})
        assert r['failed'] and 'Refusing to restore' in r['msg'] and 'pid %d' % p.pid in r['msg']
        assert r['holders'][0]['pid'] == p.pid
        assert tree(tmp_path) == before


@pytest.mark.parametrize('case', ['corrupt', 'not_sqlite', 'missing'])
def test_restore_refuses_a_bad_backup(tmp_path, case):
    db = make_db(str(tmp_path / 'database.db'))
    src = str(tmp_path / 'database.db.backup.20250101_000000')
    if case == 'corrupt':
        make_db(src, rows=3000)
        corrupt(src)
    elif case == 'not_sqlite':
        with open(src, 'w') as f:
            f.write('garbage' * 100)
    before = tree(tmp_path)
    r = run({'path': db, 'src': src, 'state': 'restored', 'timestamp': TS})
    assert r['failed'] and src in r['msg'] and db in r['msg']
    assert {'corrupt': 'failed quick_check', 'not_sqlite': 'not an SQLite database', 'missing': 'does not exist'}[case] in r['msg']
    assert tree(tmp_path) == before


def test_restore_into_missing_path_creates_it(tmp_path):
    src = make_db(str(tmp_path / 'b.db'))
    r = run({'path': str(tmp_path / 'new.db'), 'src': src, 'state': 'restored'})
    assert r['changed'] and r['aside_file'] is None and rows(str(tmp_path / 'new.db')) == rows(src)


def test_skip_unchanged_still_applies_a_lowered_keep(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    for i in range(3):
        add_user(db, 'n%d' % i)
        run({'path': db, 'skip_unchanged': True, 'timestamp': '2025010%d_000000' % (i + 1)})
    args = {'path': db, 'skip_unchanged': True, 'keep': 1, 'timestamp': '20250109_000000'}
    before = tree(tmp_path)
    chk = run(args, check=True)
    assert chk['changed'] is True and len(chk['pruned']) == 2 and tree(tmp_path) == before
    r = run(args)
    assert r['changed'] is True and r['backup_file'].endswith('20250103_000000') and len(r['pruned']) == 2
    assert sorted(f for f in os.listdir(tmp_path) if '.backup.' in f) == ['database.db.backup.20250103_000000']
    assert run(args)['changed'] is False


def test_query_option_types_are_checked(tmp_path):
    from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_info
    db = make_db(str(tmp_path / 'database.db'))
    r = run_module(sqlite_info, {'path': db, 'queries': {'n': ['SELECT 1']}})
    assert r['failed'] and 'queries.n' in r['msg'] and db in r['msg']


# ----------------------------------------------------------------------------- diff mode


def test_diff_lists_the_backups_before_and_after_in_check_and_real_mode(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    for i in range(3):
        run({'path': db, 'timestamp': '2025010%d_000000' % (i + 1)})
    (tmp_path / 'other.db.backup.20200101_000000').write_text('not ours')
    args = {'path': db, 'timestamp': TS, 'keep': 2}
    header = '%s (backups of database.db)' % tmp_path
    want = {'before': ''.join('database.db.backup.2025010%d_000000\n' % i for i in (1, 2, 3)),
            'after': 'database.db.backup.20250103_000000\ndatabase.db.backup.%s\n' % TS,
            'before_header': header, 'after_header': header}
    before = tree(tmp_path)
    chk = run(args, check=True, diff=True)
    assert chk['changed'] is True and chk['diff'] == want
    assert tree(tmp_path) == before
    r = run(args, diff=True)
    assert r['changed'] is True and r['diff'] == want
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith('database.db.backup.')) == want['after'].split()
    again = run(args, diff=True)  # same timestamp, same content: nothing to do
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == want['after']
    assert 'diff' not in run(args) and 'diff' not in run(args, check=True)


def test_diff_of_skip_unchanged_shows_only_the_pruning(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    run({'path': db, 'timestamp': '20250101_000000'})
    add_user(db, 'n1')
    run({'path': db, 'timestamp': '20250102_000000'})
    args = {'path': db, 'skip_unchanged': True, 'keep': 1, 'timestamp': TS}
    chk = run(args, check=True, diff=True)
    assert chk['changed'] is True and chk['backup_file'].endswith('20250102_000000')
    assert chk['diff']['before'] == 'database.db.backup.20250101_000000\ndatabase.db.backup.20250102_000000\n'
    assert chk['diff']['after'] == 'database.db.backup.20250102_000000\n'
    assert run(args, diff=True)['diff'] == chk['diff']
    again = run(args, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == chk['diff']['after']


def test_diff_with_dest_lists_that_file(tmp_path):
    (tmp_path / 'app').mkdir()
    db = make_db(str(tmp_path / 'app' / 'database.db'))
    shared = tmp_path / 'database-shared.db'
    r = run({'path': db, 'dest': str(shared)}, diff=True)
    assert r['changed'] is True and r['diff']['before'] == '' and r['diff']['after'] == 'database-shared.db\n'
    assert r['diff']['before_header'] == '%s (backups of database.db)' % tmp_path
    again = run({'path': db, 'dest': str(shared)}, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == 'database-shared.db\n'


def test_restore_diff_shows_checksum_and_size_never_rows(tmp_path):
    db = make_db(str(tmp_path / 'database.db'))
    backup = run({'path': db, 'timestamp': '20250101_000000'})['backup_file']
    add_user(db, 'late@x')
    now = 'sha256 %s size %d\n' % (sha(db), os.path.getsize(db))
    restored = 'sha256 %s size %d\n' % (sha(backup), os.path.getsize(backup))
    assert now != restored
    args = {'path': db, 'src': backup, 'state': 'restored', 'timestamp': TS}
    before = tree(tmp_path)
    chk = run(args, check=True, diff=True)
    assert chk['changed'] is True
    assert chk['diff'] == {'before': now, 'after': restored, 'before_header': db, 'after_header': backup}
    assert tree(tmp_path) == before
    r = run(args, diff=True)
    assert r['changed'] is True and r['diff'] == chk['diff'] and sha(db) == sha(backup)
    again = run(dict(args, timestamp='20260101_120001'), diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == restored
    assert 'diff' not in run(dict(args, timestamp='20260101_120002'))
    new = run({'path': str(tmp_path / 'new.db'), 'src': backup, 'state': 'restored'}, diff=True)
    assert new['changed'] is True and new['diff']['before'] == 'absent\n' and new['diff']['after'] == restored
