# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_migrate under hostile input, on real SQLite files (issue 11, classes 2, 4, 7 and 9).

Foreign keys are enforced as the app enforces them; check mode gives the real run's verdict and writes nothing
beside the database; a backup never overwrites a file; bad files, links out of the folder, locked and read-only
databases end in a message, with every file byte-identical. Nothing here is mocked.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
from ansible_collections.bluegreen.dbfix.tests._fsfaults import remount_ro, tmpfs
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user, run_module_as, shared_tmpdir
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_migrate)

SHOP = '''
PRAGMA journal_mode={mode};
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total INT);
CREATE TABLE regions(code TEXT, country TEXT, PRIMARY KEY (code, country));
CREATE TABLE shops(code TEXT, country TEXT, name TEXT PRIMARY KEY, FOREIGN KEY (code, country) REFERENCES regions(code, country))
  WITHOUT ROWID;
INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');
INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 2, 30);
INSERT INTO regions VALUES ('n', 'de'), ('s', 'de');
INSERT INTO shops VALUES ('n', 'de', 'kiel'), ('s', 'de', 'munich');
'''


def make_db(d, mode='delete', extra=''):
    dbp = os.path.join(str(d), 'database.db')
    c = sqlite3.connect(dbp)
    c.executescript(SHOP.format(mode=mode) + extra)
    c.close()
    return dbp


@pytest.fixture
def shop(tmp_path):
    d = tmp_path / 'app'
    d.mkdir()
    dbp = make_db(d)
    mig = d / 'migrations'
    mig.mkdir()
    return dbp, mig


def write(mig, name, sql):
    (mig / name).write_text(textwrap.dedent(sql))


def q(dbp, sql):
    c = sqlite3.connect(dbp)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _digest(p):
    with open(p, 'rb') as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def tree(d, meta=False):
    """relative path -> sha256 of every regular file below ``d`` (as ``_fsfaults.tree``), plus every other entry.

    Unlike ``_fsfaults.tree`` it never opens what is not a regular file (opening a FIFO would hang the test), and it
    records directories, FIFOs and links too. ``-shm`` files are skipped (readers update them). ``meta``: with mode
    and mtime_ns, for tests that also promise nothing was rewritten.
    """
    res = {}
    for root, dirs, files in os.walk(str(d)):
        for f in files + dirs:
            p = os.path.join(root, f)
            if f.endswith('-shm'):
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                target_is_file = os.path.exists(p) and stat.S_ISREG(os.stat(p).st_mode)
                value = 'link:%s:%s' % (os.readlink(p), _digest(p) if target_is_file else None)
            elif stat.S_ISREG(st.st_mode):
                value = _digest(p)
            else:
                value = 'type:%o' % stat.S_IFMT(st.st_mode)
            res[os.path.relpath(p, str(d))] = (value, st.st_mode, st.st_mtime_ns) if meta else value
    return res


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """TMPDIR of the module for this test only, so a private copy left behind is seen whatever else runs."""
    d = tmp_path / 'tmpdir'
    d.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(d))
    return d


def leftovers():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), 'dbfix-migrate-check-*')))


# ----------------------------------------------------------------------------- class 2: foreign keys


VIOLATIONS = {
    'orphan_insert': ('INSERT INTO orders VALUES (7, 99, 1);', 'table orders(customer_id) rowid 7 -> parent table customers'),
    'parent_deleted': ('DELETE FROM customers WHERE id = 2;', 'table orders(customer_id) rowid 2 -> parent table customers'),
    'child_repointed': ('UPDATE orders SET customer_id = 5 WHERE id = 1;', 'table orders(customer_id) rowid 1 -> parent table customers'),
    'composite_without_rowid': ("INSERT INTO shops VALUES ('w', 'fr', 'brest');",
                                'table shops(code, country) rowid (WITHOUT ROWID) -> parent table regions'),
    'new_table_orphans': ('CREATE TABLE notes(id INTEGER PRIMARY KEY, order_id INT REFERENCES orders(id));\n'
                          'INSERT INTO notes VALUES (4, 1), (5, 77);', 'table notes(order_id) rowid 5 -> parent table orders'),
    'fixed_then_broken_again': ('INSERT INTO orders VALUES (8, 99, 1);\nUPDATE orders SET customer_id = 1 WHERE id = 8;\n'
                                'DELETE FROM customers WHERE id = 1;', 'table orders(customer_id) rowid 1 -> parent table customers'),
}


@pytest.mark.parametrize('case', sorted(VIOLATIONS))
@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
def test_foreign_key_violation_is_rolled_back_and_named(shop, case, check):
    dbp, mig = shop
    sql, named = VIOLATIONS[case]
    write(mig, '001_ok.sql', 'CREATE TABLE tags(id INTEGER PRIMARY KEY);')
    write(mig, '002_bad.sql', sql)
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
    assert r['failed'] is True
    assert '002_bad.sql' in r['msg'] and dbp in r['msg'] and named in r['msg'], r['msg']
    assert 'rolled back' in r['msg'] and 'foreign_keys=off' in r['msg']
    assert r['applied'] == ['001_ok.sql']
    if check:
        assert 'check mode' in r['msg'] and tree(os.path.dirname(dbp)) == before
    else:
        assert q(dbp, 'SELECT version FROM schema_migrations') == [(1,)]
        assert q(dbp, 'PRAGMA foreign_key_check') == []  # no orphan was left behind
        after = tree(os.path.dirname(dbp))
        assert after['migrations/002_bad.sql'] == before['migrations/002_bad.sql']


def test_foreign_keys_off_keeps_the_old_unchecked_behaviour(shop):
    dbp, mig = shop
    write(mig, '001_orphan.sql', 'INSERT INTO orders VALUES (7, 99, 1);')
    r = run({'path': dbp, 'migrations_dir': str(mig), 'foreign_keys': 'off'})
    assert r['changed'] and r['applied'] == ['001_orphan.sql']
    assert q(dbp, 'PRAGMA foreign_key_check') == [('orders', 7, 'customers', 0)]


def test_existing_orphans_are_left_alone_but_new_ones_refused(shop):
    dbp, mig = shop
    c = sqlite3.connect(dbp)
    c.execute('INSERT INTO orders VALUES (50, 404, 1)')  # an orphan from before (foreign keys were off for its writer)
    c.commit()
    c.close()
    write(mig, '001_unrelated.sql', 'ALTER TABLE customers ADD COLUMN email TEXT;')
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['changed'] and r['applied'] == ['001_unrelated.sql']
    warnings = json.dumps(r['warnings'])
    assert 'already had 1 row(s) breaking foreign keys' in warnings and 'rowid 50' in warnings
    write(mig, '002_more.sql', 'INSERT INTO orders VALUES (51, 405, 1);')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and 'rowid 51' in r['msg'] and 'rowid 50' not in r['msg'] and '002_more.sql' in r['msg']
    assert tree(os.path.dirname(dbp)) == before


TWELVE_STEP = '''\
-- dbfix: no-transaction
PRAGMA foreign_keys=OFF;
BEGIN;
CREATE TABLE new_customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');
INSERT INTO new_customers(id, name) SELECT id, coalesce(name, '') FROM customers {where};
DROP TABLE customers;
ALTER TABLE new_customers RENAME TO customers;
COMMIT;
'''


@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
def test_twelve_step_alter_in_a_no_transaction_migration(shop, check):
    dbp, mig = shop
    write(mig, '001_rebuild.sql', TWELVE_STEP.format(where=''))
    write(mig, '002_use.sql', "INSERT INTO customers(id) VALUES (3);\nINSERT INTO orders VALUES (9, 3, 1);")
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
    assert r['changed'] and r['applied'] == ['001_rebuild.sql', '002_use.sql'], r.get('msg')
    if check:
        assert tree(os.path.dirname(dbp)) == before
    else:
        assert q(dbp, 'SELECT count(*) FROM orders') == [(4,)]  # no cascade, no loss: foreign keys were off for the rebuild
        assert q(dbp, 'PRAGMA foreign_key_check') == []
        assert q(dbp, "SELECT sql FROM sqlite_master WHERE name='customers'")[0][0].count('NOT NULL') == 1


@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
def test_twelve_step_that_loses_parents_is_checked_after_it(shop, check):
    dbp, mig = shop
    write(mig, '001_rebuild.sql', TWELVE_STEP.format(where='WHERE id = 1'))
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
    assert r['failed'] and '001_rebuild.sql' in r['msg'] and 'parent table customers' in r['msg'] and 'rowid 2' in r['msg']
    assert 'marked no-transaction' in r['msg'] and 'not recorded' in r['msg']
    if check:
        assert tree(os.path.dirname(dbp)) == before
    else:
        assert 'schema_migrations' not in [x[0] for x in q(dbp, "SELECT name FROM sqlite_master")]
        assert q(dbp, 'PRAGMA foreign_keys') == [(0,)]  # a fresh connection: the module's setting did not stick to the file


@pytest.mark.parametrize('pragma', ['PRAGMA foreign_keys=OFF;', 'pragma main.foreign_keys = 0;', '/* x */ PRAGMA "foreign_keys"(off);'])
def test_foreign_keys_pragma_inside_a_transaction_is_refused(shop, pragma):
    dbp, mig = shop
    write(mig, '001_rebuild.sql', '%s\nDROP TABLE orders;' % pragma)
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and '001_rebuild.sql' in r['msg'] and 'silently ignores' in r['msg'] and 'no-transaction' in r['msg']
    assert tree(os.path.dirname(dbp)) == before


def test_broken_foreign_key_schema_is_reported(shop):
    dbp, mig = shop
    c = sqlite3.connect(dbp)
    c.execute('CREATE TABLE bad(id INTEGER PRIMARY KEY, x INT REFERENCES customers(name))')  # name is not unique
    c.commit()
    c.close()
    write(mig, '001_a.sql', 'CREATE TABLE t(x);')
    before = tree(os.path.dirname(dbp))
    for check in (True, False):
        r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
        assert r['failed'] and 'foreign_key_check fails on %s' % dbp in r['msg'] and 'foreign key mismatch' in r['msg']
        assert tree(os.path.dirname(dbp)) == before


# ----------------------------------------------------------------------------- check mode = the real verdict


SEQUENCES = {
    'no_tx_then_use': (['-- dbfix: no-transaction\nCREATE TABLE audit(x);\nCREATE INDEX audit_x ON audit(x);',
                        'INSERT INTO audit VALUES (1);'], None),
    'vacuum_then_use': (['CREATE TABLE big(x); INSERT INTO big VALUES (randomblob(50000)); DELETE FROM big;',
                         '-- dbfix: no-transaction\nVACUUM;', 'INSERT INTO big VALUES (1);'], None),
    'no_tx_then_orphan': (['-- dbfix: no-transaction\nCREATE TABLE audit(id INTEGER PRIMARY KEY, o INT REFERENCES orders(id));',
                           'INSERT INTO audit VALUES (1, 404);'], '002_m.sql'),
    'no_tx_drop_then_use': (['-- dbfix: no-transaction\nDROP TABLE regions;', 'SELECT * FROM regions;'], '001_m.sql'),
    'syntax_after_no_tx': (['-- dbfix: no-transaction\nCREATE TABLE a(x);', 'CREATE TABLE a(y);'], '002_m.sql'),
    'open_tx_in_no_tx': (['-- dbfix: no-transaction\nBEGIN;\nCREATE TABLE a(x);'], '001_m.sql'),
    'vacuum_without_marker': (['VACUUM;'], '001_m.sql'),
}


@pytest.mark.parametrize('mode', ['delete', 'wal'])
@pytest.mark.parametrize('case', sorted(SEQUENCES))
def test_check_mode_verdict_equals_the_real_one(tmp_path, private_tmp, case, mode):
    bodies, failing = SEQUENCES[case]
    dirs = []
    for name in ('check', 'real'):
        d = tmp_path / name
        d.mkdir()
        make_db(d, mode)
        (d / 'm').mkdir()
        for i, body in enumerate(bodies, 1):
            (d / 'm' / ('%03d_m.sql' % i)).write_text(body)
        dirs.append(d)
    before = tree(dirs[0])
    tmp_before = leftovers()
    chk = run({'path': str(dirs[0] / 'database.db'), 'migrations_dir': str(dirs[0] / 'm')}, check=True)
    assert tree(dirs[0]) == before and sorted(os.listdir(dirs[0])) == ['database.db', 'm']
    assert leftovers() == tmp_before == set() and os.listdir(private_tmp) == []  # the private copy is gone
    real = run({'path': str(dirs[1] / 'database.db'), 'migrations_dir': str(dirs[1] / 'm')})
    assert bool(chk.get('failed')) == bool(real.get('failed')) == (failing is not None), (chk.get('msg'), real.get('msg'))
    assert chk['applied'] == real['applied']
    if failing:
        assert failing in chk['msg'] and failing in real['msg']
        assert chk['msg'].startswith(real['msg'].replace(str(dirs[1]), str(dirs[0])))


@pytest.mark.parametrize('mode', ['wal', 'delete'])
def test_check_mode_creates_nothing_beside_a_closed_database(tmp_path, mode):
    dbp = make_db(tmp_path, mode)
    mig = tmp_path / 'm'
    mig.mkdir()
    write(mig, '001_a.sql', 'ALTER TABLE customers ADD COLUMN email TEXT;')
    write(mig, '002_b.sql', '-- dbfix: no-transaction\nCREATE TABLE x(y);')
    assert sorted(os.listdir(tmp_path)) == ['database.db', 'm']
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.update(os.listdir(tmp_path))

    t = threading.Thread(target=watch)
    t.start()
    try:
        before = tree(tmp_path, meta=True)
        r = run({'path': dbp, 'migrations_dir': str(mig), 'backup': True}, check=True, diff=True)
    finally:
        stop.set()
        t.join()
    assert r['changed'] and r['applied'] == ['001_a.sql', '002_b.sql'] and r['backup_file'] is None
    assert seen == {'database.db', 'm'}  # not even for a moment: no -wal, -shm, -journal, backup or temp file
    assert tree(tmp_path, meta=True) == before


def test_check_mode_on_a_database_a_crashed_writer_left_with_committed_wal_frames(tmp_path):
    dbp = make_db(tmp_path, 'wal')
    code = ('import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("PRAGMA wal_autocheckpoint=0"); '
            'c.execute("INSERT INTO customers VALUES (3, \'carl\')"); os._exit(0)')
    subprocess.run([sys.executable, '-c', code, dbp], check=True)
    os.unlink(dbp + '-shm')  # as after a reboot: only the -wal holds the committed row
    assert os.path.getsize(dbp + '-wal') > 0
    mig = tmp_path / 'm'
    mig.mkdir()
    write(mig, '001_a.sql', 'INSERT INTO orders VALUES (9, 3, 1);')  # needs the row that is only in the -wal
    before = tree(tmp_path)
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=True)
    assert r['changed'] and r['applied'] == ['001_a.sql'], r.get('msg')
    assert tree(tmp_path) == before and sorted(os.listdir(tmp_path)) == ['database.db', 'database.db-wal', 'm']


# ----------------------------------------------------------------------------- backups never overwritten


def test_backup_never_overwrites_an_existing_file_after_any_number_of_retries(shop):
    dbp, mig = shop
    write(mig, '001_bad.sql', 'INSERT INTO orders VALUES (7, 99, 1);')
    planted = {}
    now = time.time()
    for s in range(0, 8):  # every name the next seconds' runs would want
        name = dbp + '.backup.' + time.strftime('%Y%m%d_%H%M%S', time.localtime(now + s))
        with open(name, 'w') as f:
            f.write('planted %d' % s)
        planted[name] = 'planted %d' % s
    with open(dbp + '.backup.' + time.strftime('%Y%m%d_%H%M%S', time.localtime(now)) + '.1', 'w') as f:
        f.write('planted suffix')
    planted[f.name] = 'planted suffix'
    made = []
    for _dummy in range(6):
        r = run({'path': dbp, 'migrations_dir': str(mig), 'backup': True})
        assert r['failed'] and '001_bad.sql' in r['msg']
        made.append(r['backup_file'])
    assert len(set(made)) == 6 and not set(made) & set(planted)
    for name, text in planted.items():
        with open(name) as f:
            assert f.read() == text
    for b in made:
        assert q(b, 'SELECT count(*) FROM orders') == [(3,)] and q(b, 'PRAGMA integrity_check') == [('ok',)]
        assert oct(os.stat(b).st_mode & 0o777) == oct(os.stat(dbp).st_mode & 0o777)
    assert not [n for n in os.listdir(os.path.dirname(dbp)) if n.startswith('.')]  # no staging file left


# ----------------------------------------------------------------------------- class 7 and links: messages, never tracebacks


def _bad_entry(mig, case, outside):
    if case == 'nul_byte':
        (mig / '002_x.sql').write_bytes(b'CREATE TABLE a(x);\x00DROP TABLE customers;')
        return ['002_x.sql', 'NUL byte (offset 18)']
    if case == 'twenty_digit_version':
        write(mig, '12345678901234567890_x.sql', 'CREATE TABLE a(x);')
        return ['12345678901234567890_x.sql', 'larger than the largest integer']
    if case == 'not_utf8':
        (mig / '002_x.sql').write_bytes(b"INSERT INTO customers(name) VALUES ('M\xfcller');")
        return ['002_x.sql', 'not UTF-8', '0xfc at offset 38']
    if case == 'directory':
        (mig / '002_x.sql').mkdir()
        return ['002_x.sql', 'is a directory']
    if case == 'fifo':
        os.mkfifo(mig / '002_x.sql')
        return ['002_x.sql', 'FIFO']
    if case == 'dangling_link':
        os.symlink('nowhere.sql', mig / '002_x.sql')
        return ['002_x.sql', 'nowhere.sql', 'dangling']
    if case == 'link_outside':
        target = outside / 'secret.sql'
        target.write_text("INSERT INTO customers(name) VALUES ('TOPSECRET-outside-content');")
        os.symlink(str(target), mig / '002_x.sql')
        return ['002_x.sql', str(target), 'outside the migrations folder', 'did not read it']
    if case == 'unreadable_dir':
        os.symlink('.', mig / '002_loop.sql')
        return ['002_loop.sql', 'is a directory']
    raise AssertionError(case)


@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
@pytest.mark.parametrize('case', ['nul_byte', 'twenty_digit_version', 'not_utf8', 'directory', 'fifo', 'dangling_link', 'link_outside',
                                  'unreadable_dir'])
def test_bad_migration_files_are_refused_with_a_message(shop, tmp_path, case, check):
    dbp, mig = shop
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    want = _bad_entry(mig, case, outside)
    before, before_out = tree(os.path.dirname(dbp)), tree(outside)
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
    assert r['failed'] is True and r['applied'] == []
    for w in want:
        assert w in r['msg'], (w, r['msg'])
    assert 'Nothing was applied' in r['msg'] and 'TOPSECRET' not in str(r) and 'DROP TABLE' not in r['msg']
    assert tree(os.path.dirname(dbp)) == before and tree(outside) == before_out


def test_link_inside_the_folder_and_a_linked_folder_are_fine(shop, tmp_path):
    dbp, mig = shop
    write(mig, '001_real.sql', 'CREATE TABLE a(x);')
    os.symlink('001_real.sql', mig / '002_same.sql')  # a link whose target is inside the folder
    (mig / 'lib').mkdir()
    write(mig / 'lib', 'shared.sql', 'CREATE TABLE b(x);')
    os.symlink('lib/shared.sql', mig / '003_shared.sql')
    linked = tmp_path / 'linked-migrations'
    os.symlink(str(mig), linked)
    r = run({'path': dbp, 'migrations_dir': str(linked), 'target': 1})
    assert r['applied'] == ['001_real.sql']
    r = run({'path': dbp, 'migrations_dir': str(linked), 'target': 3, 'baseline': 2})
    assert r['baselined'] == ['002_same.sql'] and r['applied'] == ['003_shared.sql']


SECRET_TAIL = 'x' * 100 + ' TOPSECRET-in-the-statement-tail'


@pytest.mark.parametrize('body', [
    "INSERT INTO nonexistent VALUES ('%s');" % SECRET_TAIL,
    "INSERT INTO customers(name) VALUES ('%s);\nCREATE TABLE more(x);" % SECRET_TAIL,  # unclosed quote: the rest of the file
    "INSERT INTO customers(name) VALUES ('%s') garbage;" % SECRET_TAIL,
])
def test_error_messages_show_at_most_the_start_of_the_statement(shop, body):
    dbp, mig = shop
    write(mig, '001_a.sql', body)
    before = tree(os.path.dirname(dbp))
    for check in (True, False):
        r = run({'path': dbp, 'migrations_dir': str(mig)}, check=check)
        assert r['failed'] and '001_a.sql' in r['msg'] and 'TOPSECRET' not in r['msg'] and 'x' * 60 not in r['msg']
        assert tree(os.path.dirname(dbp)) == before


@pytest.mark.parametrize('args,want', [
    ({'command': 'npm run "migrate'}, ['cannot be split', 'No closing quotation', 'unclosed quote']),
    ({'command': 'bin/migrate \\'}, ['cannot be split', 'trailing backslash']),
    ({'command': ''}, ['is empty']),
    ({'command': ['true', 'a\x00b']}, ['NUL byte']),
    ({'command': 'true', 'environment': {'A=B': 'x'}}, ['unusable variable', "'A=B'"]),
    ({'command': 'true', 'environment': {'TOKEN': 'se\x00cret'}}, ['unusable variable', "'TOKEN'"]),
    ({'migrations_dir': 'M', 'table': ''}, ['not a usable table name']),
    ({'migrations_dir': 'M', 'table': 'tr\x00ack'}, ['not a usable table name']),
    ({'migrations_dir': 'M', 'busy_timeout': -1}, ['busy_timeout=-1', 'out of range']),
    ({'migrations_dir': 'M', 'busy_timeout': 2 ** 40}, ['out of range']),
    ({'migrations_dir': 'M\x00'}, ['NUL byte']),
])
@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
def test_bad_arguments_end_in_a_message(shop, args, want, check):
    dbp, mig = shop
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    args = dict(args, path=dbp)
    if 'migrations_dir' in args:
        args['migrations_dir'] = args['migrations_dir'].replace('M', str(mig))
    before = tree(os.path.dirname(dbp))
    r = run(args, check=check)
    assert r['failed'] is True
    for w in want:
        assert w in r['msg'], (w, r['msg'])
    assert 'se\x00cret' not in str(r) and 'unexpected' not in r['msg']
    assert tree(os.path.dirname(dbp)) == before


def test_non_integer_versions_in_a_tracking_table(shop):
    dbp, mig = shop
    c = sqlite3.connect(dbp)
    c.execute('CREATE TABLE schema_migrations(version, name, sha256, applied_at, execution_ms)')
    c.execute("INSERT INTO schema_migrations VALUES ('v1', 'x', 'y', 'z', 0)")
    c.commit()
    c.close()
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and 'not integers' in r['msg'] and "'v1'" in r['msg']
    assert tree(os.path.dirname(dbp)) == before


@pytest.mark.parametrize('check', [False, True], ids=['real', 'check'])
def test_locked_database_in_both_modes(shop, check):
    dbp, mig = shop
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    code = ('import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN EXCLUSIVE"); '
            'print("ready", flush=True); time.sleep(30)')
    h = subprocess.Popen([sys.executable, '-c', code, dbp], stdout=subprocess.PIPE, text=True)
    try:
        assert h.stdout.readline().strip() == 'ready'
        before = tree(os.path.dirname(dbp))
        t0 = time.monotonic()
        r = run({'path': dbp, 'migrations_dir': str(mig), 'busy_timeout': 300}, check=check)
        assert time.monotonic() - t0 < 10
        assert r['failed'] and 'locked longer than busy_timeout=300 ms' in r['msg'] and 'pid %d' % h.pid in r['msg']
        assert tree(os.path.dirname(dbp)) == before
    finally:
        h.kill()
        h.wait()


def test_read_only_database_gives_the_same_refusal_in_both_modes(tmp_path):
    """A real read-only filesystem (a tmpfs remounted ro): root's write permission does not help there."""
    with tmpfs(tmp_path / 'ro', 'size=4m') as ro:
        make_db(ro, 'wal')
        mig = ro / 'm'
        mig.mkdir()
        write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
        dbp = str(ro / 'database.db')
        remount_ro(ro)
        before = tree(ro)
        msgs = []
        for check in (True, False):
            r = run({'path': dbp, 'migrations_dir': str(mig), 'backup': True}, check=check)
            assert r['failed'] and 'Cannot migrate %s: it is on a read-only filesystem' % dbp in r['msg']
            assert tree(ro) == before and sorted(os.listdir(ro)) == ['database.db', 'm']
            msgs.append(r['msg'])
        assert msgs[0].startswith(msgs[1])
        # nothing pending: a read-only database is fine to look at
        r = run({'path': dbp, 'migrations_dir': str(mig), 'target': 0})
        assert r['changed'] is False and r['pending'] == ['001_ok.sql']


def test_unwritable_folder_for_another_user():
    """A real second user (created here, removed after) runs the module: the DB's folder belongs to root."""
    with local_user('dbfixh2') as user, shared_tmpdir('dbfix-h2-') as top:
        d = os.path.join(top, 'app')
        os.mkdir(d, 0o755)
        dbp = make_db(d)
        mig = os.path.join(d, 'm')
        os.mkdir(mig, 0o755)
        with open(os.path.join(mig, '001_ok.sql'), 'w') as f:
            f.write('CREATE TABLE ok(x);')
        os.chmod(os.path.join(mig, '001_ok.sql'), 0o644)
        os.chown(dbp, user.uid, user.gid)  # the user owns the file, not its folder: no journal can be created there
        before = tree(d)
        msgs = []
        for check in (True, False, True):
            r = run_module_as(user, 'sqlite_migrate', {'path': dbp, 'migrations_dir': mig}, top, check=check)
            assert r['failed'] and "cannot create SQLite's rollback journal in the folder %s" % d in r['msg'], r['msg']
            assert 'run as root' in r['msg']
            msgs.append(r['msg'])
            assert tree(d) == before and sorted(os.listdir(d)) == ['database.db', 'm']
        assert msgs[0].startswith(msgs[1])
        # nothing pending: reading is fine for that user
        r = run_module_as(user, 'sqlite_migrate', {'path': dbp, 'migrations_dir': mig, 'target': 0}, top)
        assert r['changed'] is False and r['pending'] == ['001_ok.sql'], r
        assert tree(d) == before
