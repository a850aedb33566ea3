# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based test (hypothesis) of sqlite_migrate over its arguments and inputs, on real SQLite files.

For any migrations folder (names, contents with NUL bytes, bad UTF-8, broken SQL, transaction control,
``PRAGMA foreign_keys``, foreign-key violations, no-transaction markers, directories, FIFOs, dangling links and
links out of the folder) and any options (target, baseline, table, busy_timeout, repair, foreign_keys, backup):

* every run ends in a result or a ``fail_json`` with a message, never a traceback (``_modrun`` re-raises one) and
  never the module's last-resort "unexpected" message;
* check mode changes no file and leaves no temp folder, and its verdict (failed or not, which migrations) is the
  real run's;
* a failed real run that applied nothing leaves every file as it was (a backup it took is a new, unique file).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_migrate)

SCHEMA = '''
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id));
INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');
INSERT INTO orders VALUES (1, 1), (2, 2);
'''

FRAGMENTS = [
    b'CREATE TABLE t_%d(x);', b'ALTER TABLE customers ADD COLUMN c_%d TEXT;', b"INSERT INTO customers(name) VALUES ('n%d');",
    b'INSERT INTO orders(customer_id) VALUES (%d);', b'DELETE FROM customers WHERE id = 1;', b'DROP TABLE orders;',
    b'VACUUM;', b'-- dbfix: no-transaction\n', b'BEGIN;', b'COMMIT;', b'PRAGMA foreign_keys=OFF;', b'PRAGMA foreign_keys=ON;',
    b"SELECT 'unclosed", b'\x00', b'\xff\xfe', b'/* comment ; */', b'-- comment\n', b'CREATE TRIGGER tr_%d AFTER INSERT ON customers BEGIN '
    b'INSERT INTO orders(customer_id) VALUES (new.id); END;', b'SELECT * FROM nope_%d;', b'CREATE TABLE t_%d(', b';', b'\n',
    b'UPDATE orders SET customer_id = 99 WHERE id = %d;', b'CREATE INDEX ix_%d ON customers(name);',
]

fragment = st.tuples(st.sampled_from(FRAGMENTS), st.integers(0, 3)).map(lambda t: t[0] % t[1] if b'%d' in t[0] else t[0])
HOSTILE = [b'\x00', b'\xff\xfe', b"SELECT 'unclosed", b'BEGIN;', b'PRAGMA foreign_keys=OFF;', b'VACUUM;',
           b'INSERT INTO orders(customer_id) VALUES (404);', b'-- dbfix: no-transaction\n', b'DELETE FROM customers;']
# a hostile fragment somewhere among ordinary ones, as often as plain ones: hypothesis starts from simple data
hostile = st.tuples(st.lists(fragment, max_size=2), st.sampled_from(HOSTILE), st.lists(fragment, max_size=2)).map(
    lambda t: b' '.join([*t[0], t[1], *t[2]]))
content = st.one_of(st.lists(fragment, max_size=5).map(b' '.join), hostile, st.binary(max_size=40))
# how a file's version is written; the number itself is its place in the list, so versions rarely collide
version = st.sampled_from(['plain', 'padded', 'twenty_digits', 'int64_max', 'int64_max_plus_1', 'same_as_previous'])
suffix = st.sampled_from(['a', 'b_c', 'x.y', 'Z-1'])
regular = st.tuples(version, suffix, content).map(lambda t: (t[0], t[1], 'file', t[2]))
special = st.tuples(version, st.sampled_from(['inside_link', 'outside', 'fifo', 'dangling', 'badname', 'dir'])).map(
    lambda t: (t[0], t[1], t[1], b''))
# mostly migration files; a special entry (which makes the whole folder unusable) in about one example of four
maybe_special = st.integers(0, 3).flatmap(lambda k: st.lists(special, min_size=1, max_size=1) if k == 3 else st.just([]))
entries = st.tuples(st.lists(regular, min_size=1, max_size=4), maybe_special).map(lambda t: t[0] + t[1])


def names(items):
    """(file name, kind, bytes) for the generated entries, in order."""
    out, seen = [], set()
    for i, (vkind, sfx, kind, data) in enumerate(items, 1):
        v = {'plain': str(i), 'padded': '%03d' % i, 'twenty_digits': '12345678901234567890', 'int64_max': str(2 ** 63 - 1),
             'int64_max_plus_1': str(2 ** 63), 'same_as_previous': str(max(i - 1, 1))}[vkind]
        name = 'no_version.sql' if kind == 'badname' else '%s_%s.sql' % (v, sfx)
        if name not in seen:
            seen.add(name)
            out.append((name, kind, data))
    return out


options = st.fixed_dictionaries({}, optional={
    'target': st.one_of(st.none(), st.integers(-2, 14), st.just(2 ** 70)),
    'baseline': st.one_of(st.none(), st.integers(-2, 14), st.just(2 ** 70)),
    'table': st.one_of(st.just('schema_migrations'),
                       st.sampled_from(['customers', 'sqlite_master', 'x"y', '', 'tr\x00ck', 'Ünïcode', 'orders_log'])),
    'busy_timeout': st.one_of(st.sampled_from([0, 100, 5000]), st.sampled_from([-1, 2 ** 31, 2 ** 40])),
    'repair': st.booleans(),
    'foreign_keys': st.sampled_from(['enforce', 'off']),
    'backup': st.booleans(),
})


def tree(d):
    """Every entry below ``d``: sha256 of regular files, link text, file type of others (FIFOs are never opened)."""
    res = {}
    for root, dirs, files in os.walk(d):
        for f in files + dirs:
            p = os.path.join(root, f)
            if f.endswith('-shm'):
                continue
            s = os.lstat(p)
            if stat.S_ISLNK(s.st_mode):
                res[os.path.relpath(p, d)] = 'link:' + os.readlink(p)
            elif stat.S_ISREG(s.st_mode):
                with open(p, 'rb') as fh:
                    res[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
            else:
                res[os.path.relpath(p, d)] = 'type:%o' % stat.S_IFMT(s.st_mode)
    return res


def build(top, wal, items):
    app = os.path.join(top, 'app')
    os.mkdir(app)
    dbp = os.path.join(app, 'database.db')
    c = sqlite3.connect(dbp)
    if wal:
        c.execute('PRAGMA journal_mode=WAL')
    c.executescript(SCHEMA)
    c.close()
    mig = os.path.join(app, 'migrations')
    os.mkdir(mig)
    outside = os.path.join(top, 'outside.sql')
    with open(outside, 'wb') as f:
        f.write(b"INSERT INTO customers(name) VALUES ('OUTSIDE-SECRET');")
    for name, kind, data in names(items):
        p = os.path.join(mig, name)
        if kind in ('file', 'badname'):
            with open(p, 'wb') as f:
                f.write(data)
        elif kind == 'dir':
            os.mkdir(p)
        elif kind == 'fifo':
            os.mkfifo(p)
        elif kind == 'dangling':
            os.symlink('missing.sql', p)
        elif kind == 'outside':
            os.symlink(outside, p)
        elif kind == 'inside_link':
            with open(os.path.join(mig, 'lib.sql.txt'), 'wb') as f:
                f.write(b'CREATE TABLE linked_t(x);')
            os.symlink('lib.sql.txt', p)
    return dbp, mig


def verdict(r):
    return bool(r.get('failed')), r.get('applied'), r.get('baselined'), r.get('repaired')


def sane(r):
    assert isinstance(r, dict)
    if r.get('failed'):
        assert isinstance(r.get('msg'), str) and len(r['msg']) > 20, r
        assert 'unexpected' not in r['msg'], r['msg']  # the module's last line of defence must never be reached
        assert 'Traceback' not in r['msg'] and 'exception' not in r, r
    assert 'OUTSIDE-SECRET' not in str(r), r


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(items=entries, opts=options, wal=st.booleans(), prior=st.booleans())
def test_any_input_ends_in_a_result_or_a_message_and_check_mode_tells_the_truth(items, opts, wal, prior):
    top = tempfile.mkdtemp(prefix='dbfix-h2-prop-')
    saved = tempfile.tempdir
    try:
        # the module's private copies go to a folder of this example only: nothing another test does can interfere
        tempfile.tempdir = os.path.join(top, 'tmp')
        os.mkdir(tempfile.tempdir)
        dbp, mig = build(top, wal, items)
        args = dict(opts, path=dbp, migrations_dir=mig)
        if prior:
            # an earlier run may already have applied some of them (and then a file may have been edited)
            sane(run(dict(args, backup=False)))
            for name, kind, _data in names(items)[:1]:
                if kind == 'file':
                    with open(os.path.join(mig, name), 'ab') as f:
                        f.write(b'\n-- edited\n')
        before = tree(top)
        chk = run(args, check=True)
        sane(chk)
        assert tree(top) == before, 'check mode changed files or left its private copy behind'
        real = run(args)
        sane(real)
        assert verdict(chk) == verdict(real), (chk.get('msg'), real.get('msg'))
        if chk.get('failed'):
            assert chk['msg'].startswith(real['msg'][:40])
        after = tree(top)
        backup = real.get('backup_file')
        if backup:
            rel = os.path.relpath(backup, top)
            assert rel not in before and rel in after  # a new file, never an overwritten one
            after.pop(rel)
        if real.get('failed') and not (real['applied'] or real['baselined'] or real['repaired']):
            assert after == before, real['msg']
        elif real.get('failed'):
            assert {k: v for k, v in after.items() if k != 'app/database.db'} == \
                   {k: v for k, v in before.items() if k != 'app/database.db'}
        # the database stays a consistent SQLite file whatever happened
        c = sqlite3.connect(dbp)
        try:
            assert c.execute('PRAGMA quick_check').fetchall() == [('ok',)]
        finally:
            c.close()
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(top, ignore_errors=True)


ARG = st.text(alphabet=st.sampled_from(list('ab \'"\\;$`=\x00é-')), max_size=8)
SCRIPT = 'import sys; print(sys.argv[1:]); print("No pending migrations" if "up" in sys.argv else "Applied 1"); sys.exit(len(sys.argv) % 3 == 0)'


COMMAND_CASE = st.fixed_dictionaries({
    'words': st.lists(ARG, max_size=4),
    'as_string': st.booleans(),
    'env': st.dictionaries(ARG, st.one_of(ARG, st.none(), st.integers()), max_size=2),
    'regex': st.one_of(st.just('No pending migrations'), ARG),
    'backup': st.booleans(),
    'chdir': st.booleans(),
})


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(case=COMMAND_CASE)
def test_any_command_ends_in_a_result_or_a_message(case):
    """``command`` as a string (split like a shell) is only parsed (check mode), never run: random words could name
    any program. As a list it runs a fixed Python script with the random words as its arguments, for real."""
    top = tempfile.mkdtemp(prefix='dbfix-h2-prop-')
    try:
        dbp = os.path.join(top, 'database.db')
        c = sqlite3.connect(dbp)
        c.executescript(SCHEMA)
        c.close()
        args = {'path': dbp, 'environment': case['env'] or None, 'uptodate_regex': case['regex'], 'backup': case['backup'],
                'chdir': top if case['chdir'] else os.path.join(top, 'missing')}
        before = tree(top)
        if case['as_string']:
            sane(run(dict(args, command=' '.join(case['words'])), check=True))
            assert tree(top) == before
            return
        r = run(dict(args, command=[sys.executable, '-c', SCRIPT, *case['words']]))
        sane(r)
        after = tree(top)
        if r.get('backup_file'):
            after.pop(os.path.relpath(r['backup_file'], top))
        assert after == before  # the script changes nothing; a backup is the only new file
        assert r.get('failed') or r['rc'] == 0
    finally:
        shutil.rmtree(top, ignore_errors=True)
