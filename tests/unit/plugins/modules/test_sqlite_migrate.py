# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_migrate on real SQLite files: ordering, atomicity, drift, baseline, check mode, the app's own migrator."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import textwrap

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite_migrate import split_statements
from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_migrate)


@pytest.fixture
def env(tmp_path):
    dbp = str(tmp_path / 'database.db')
    c = sqlite3.connect(dbp)
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT)')
    c.execute("INSERT INTO users(email) VALUES ('a@x')")
    c.commit()
    c.close()
    mig = tmp_path / 'migrations'
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


def tables(dbp):
    return [r[0] for r in q(dbp, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]


def test_split_statements_keeps_triggers_strings_and_comments():
    sql = '''-- a comment; with a semicolon
    CREATE TABLE a(x); INSERT INTO a VALUES ('semi;colon');
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
      INSERT INTO a VALUES (1);
      UPDATE a SET x = 2 WHERE x = 3;
    END;
    /* block ; comment */
    INSERT INTO a VALUES (2)
    -- trailing'''
    got = split_statements(sql)
    assert len(got) == 4
    assert got[1] == "INSERT INTO a VALUES ('semi;colon');"
    assert got[2].startswith('CREATE TRIGGER') and got[2].endswith('END;')
    assert 'INSERT INTO a VALUES (2)' in got[3]
    assert split_statements('-- only a comment\n/* and ; this */\n') == []


def test_applies_in_numeric_version_order_with_tracking(env):
    dbp, mig = env
    write(mig, '10_second.sql', 'ALTER TABLE users ADD COLUMN team TEXT;')
    write(mig, '9_first.sql', 'ALTER TABLE users ADD COLUMN position TEXT;')
    write(mig, '011_trigger.sql', '''
        CREATE TABLE audit(user_id INT, what TEXT);
        CREATE TRIGGER users_audit AFTER UPDATE OF position ON users BEGIN
          INSERT INTO audit VALUES (new.id, 'position');
          INSERT INTO audit VALUES (new.id, 'again; with semicolon');
        END;
        UPDATE users SET position = 'dev';
    ''')
    (mig / 'README.md').write_text('not a migration')
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['changed'] is True
    assert r['applied'] == ['9_first.sql', '10_second.sql', '011_trigger.sql']
    assert r['pending'] == [] and r['current_version'] == 11 and r['backup_file'] is None
    rows = q(dbp, 'SELECT version, name, sha256, applied_at, execution_ms FROM schema_migrations ORDER BY version')
    assert [x[:2] for x in rows] == [(9, '9_first.sql'), (10, '10_second.sql'), (11, '011_trigger.sql')]
    assert rows[0][2] == hashlib.sha256((mig / '9_first.sql').read_bytes()).hexdigest()
    assert rows[0][3].endswith('Z') and all(isinstance(x[4], int) for x in rows)
    assert q(dbp, 'SELECT * FROM audit') == [(1, 'position'), (1, 'again; with semicolon')]
    again = run({'path': dbp, 'migrations_dir': str(mig)})
    assert again['changed'] is False and again['applied'] == [] and again['current_version'] == 11


def test_failed_migration_is_rolled_back_and_earlier_ones_stay(env):
    dbp, mig = env
    write(mig, '001_ok.sql', 'CREATE TABLE teams(id INTEGER PRIMARY KEY);')
    write(mig, '002_broken.sql', "CREATE TABLE half(x);\nINSERT INTO half VALUES (1);\nINSERT INTO nonexistent VALUES (1);\n")
    write(mig, '003_later.sql', 'CREATE TABLE later(x);')
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] is True
    assert '002_broken.sql' in r['msg'] and 'INSERT INTO nonexistent VALUES (1);' in r['msg'] and 'no such table: nonexistent' in r['msg']
    assert dbp in r['msg'] and 'rolled back' in r['msg']
    assert r['applied'] == ['001_ok.sql'] and r['pending'] == ['002_broken.sql', '003_later.sql']
    assert 'half' not in tables(dbp) and 'later' not in tables(dbp) and 'teams' in tables(dbp)
    assert q(dbp, 'SELECT version FROM schema_migrations') == [(1,)]


def test_check_mode_rolls_back_and_catches_broken_migrations(env):
    dbp, mig = env
    write(mig, '001_a.sql', 'ALTER TABLE users ADD COLUMN position TEXT;')
    write(mig, '002_b.sql', "UPDATE users SET position = 'x';")  # depends on 001: must see it inside the dry run
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=True)
    assert r['changed'] is True and r['applied'] == ['001_a.sql', '002_b.sql'] and r['current_version'] is None
    assert tree(os.path.dirname(dbp)) == before
    write(mig, '003_c.sql', 'UPDATE nope SET x = 1;')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=True)
    assert r['failed'] and '003_c.sql' in r['msg'] and 'no such table: nope' in r['msg'] and 'check mode' in r['msg']
    assert tree(os.path.dirname(dbp)) == before


def test_no_transaction_marker_allows_vacuum(env):
    dbp, mig = env
    write(mig, '001_a.sql', 'CREATE TABLE big(x); INSERT INTO big VALUES (randomblob(100000)); DELETE FROM big;')
    write(mig, '002_vacuum.sql', '-- dbfix: no-transaction\nVACUUM;\n')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)}, check=True)
    # check mode now really runs the no-transaction migration (on a private copy) instead of skipping it with a warning
    assert r['changed'] and r['applied'] == ['001_a.sql', '002_vacuum.sql'] and 'did not try' not in json.dumps(r.get('warnings', []))
    assert tree(os.path.dirname(dbp)) == before
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['applied'] == ['001_a.sql', '002_vacuum.sql']
    assert q(dbp, 'PRAGMA freelist_count') == [(0,)]


def test_vacuum_without_marker_fails_cleanly(env):
    dbp, mig = env
    write(mig, '001_vacuum.sql', 'VACUUM;')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and '001_vacuum.sql' in r['msg'] and 'VACUUM' in r['msg'] and 'within a transaction' in r['msg']
    assert tree(os.path.dirname(dbp)) == before  # not even the tracking table was created


def test_single_broken_migration_leaves_file_identical(env):
    dbp, mig = env
    write(mig, '001_broken.sql', 'CREATE TABLE half(x);\nINSERT INTO half VALUES (1, 2);\n')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and '001_broken.sql' in r['msg'] and 'INSERT INTO half VALUES (1, 2);' in r['msg']
    assert 'has 1 columns but 2 values were supplied' in r['msg']
    assert r['applied'] == [] and r['current_version'] is None
    assert tree(os.path.dirname(dbp)) == before


def test_own_transaction_control_is_refused(env):
    dbp, mig = env
    write(mig, '001_tx.sql', 'BEGIN;\nCREATE TABLE x(a);\nCOMMIT;\n')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and '001_tx.sql' in r['msg'] and 'transaction control' in r['msg']
    assert tree(os.path.dirname(dbp)) == before


def test_drift_fails_unless_repair(env):
    dbp, mig = env
    write(mig, '001_a.sql', 'CREATE TABLE a(x);')
    run({'path': dbp, 'migrations_dir': str(mig)})
    write(mig, '001_a.sql', 'CREATE TABLE a(x, y);')
    before = tree(os.path.dirname(dbp))
    r = run({'path': dbp, 'migrations_dir': str(mig)})
    assert r['failed'] and '001_a.sql' in r['msg'] and 'edited after they ran' in r['msg'] and 'repair' in r['msg']
    assert tree(os.path.dirname(dbp)) == before
    chk = run({'path': dbp, 'migrations_dir': str(mig), 'repair': True}, check=True)
    assert chk['changed'] and chk['repaired'] == ['001_a.sql']
    assert tree(os.path.dirname(dbp)) == before
    r = run({'path': dbp, 'migrations_dir': str(mig), 'repair': True})
    assert r['changed'] and r['repaired'] == ['001_a.sql'] and r['applied'] == []
    assert q(dbp, 'SELECT sha256 FROM schema_migrations') == [(hashlib.sha256((mig / '001_a.sql').read_bytes()).hexdigest(),)]
    assert run({'path': dbp, 'migrations_dir': str(mig)})['changed'] is False


def test_baseline_and_target(env):
    dbp, mig = env
    for i in range(1, 5):
        write(mig, '%03d_m.sql' % i, 'CREATE TABLE t%d(x);' % i)
    r = run({'path': dbp, 'migrations_dir': str(mig), 'baseline': 2, 'target': 3})
    assert r['baselined'] == ['001_m.sql', '002_m.sql'] and r['applied'] == ['003_m.sql'] and r['pending'] == ['004_m.sql']
    assert r['current_version'] == 3
    assert 't1' not in tables(dbp) and 't3' in tables(dbp) and 't4' not in tables(dbp)
    assert q(dbp, 'SELECT version, execution_ms FROM schema_migrations ORDER BY version')[:2] == [(1, 0), (2, 0)]
    r = run({'path': dbp, 'migrations_dir': str(mig), 'baseline': 2, 'target': 3})
    assert r['changed'] is False and r['pending'] == ['004_m.sql']


def test_backup_first(env):
    dbp, mig = env
    write(mig, '001_a.sql', 'DELETE FROM users;')
    r = run({'path': dbp, 'migrations_dir': str(mig), 'backup': True})
    assert r['backup_file'].startswith(dbp + '.backup.') and os.path.exists(r['backup_file'])
    assert q(r['backup_file'], 'SELECT count(*) FROM users') == [(1,)] and q(dbp, 'SELECT count(*) FROM users') == [(0,)]
    assert run({'path': dbp, 'migrations_dir': str(mig), 'backup': True})['backup_file'] is None


@pytest.mark.parametrize('case,expect', [
    ('missing_dir', 'does not exist'),
    ('bad_name', 'do not follow NNN_name.sql'),
    ('duplicate', 'more than one file for one version'),
    ('missing_db', 'does not exist'),
    ('not_a_db', 'is not an SQLite database'),
    ('foreign_table', 'is not a sqlite_migrate tracking table'),
])
def test_bad_inputs_change_nothing(env, case, expect):
    dbp, mig = env
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    args = {'path': dbp, 'migrations_dir': str(mig)}
    named = dbp
    if case == 'missing_dir':
        args['migrations_dir'] = named = str(mig / 'nope')
    elif case == 'bad_name':
        write(mig, 'add_index.sql', 'CREATE INDEX i ON users(email);')
        named = 'add_index.sql'
    elif case == 'duplicate':
        write(mig, '1_other.sql', 'CREATE TABLE other(x);')
        named = '001_ok.sql, 1_other.sql'
    elif case == 'missing_db':
        args['path'] = named = dbp + '.nope'
    elif case == 'not_a_db':
        with open(dbp, 'w') as f:
            f.write('NODE_ENV=production\n')
    elif case == 'foreign_table':
        c = sqlite3.connect(dbp)
        c.execute('CREATE TABLE schema_migrations(name TEXT PRIMARY KEY, applied_at TEXT)')
        c.commit()
        c.close()
    before = tree(os.path.dirname(dbp))
    r = run(args)
    assert r['failed'] is True and expect in r['msg'] and named in r['msg']
    assert tree(os.path.dirname(dbp)) == before


def test_locked_database(env):
    import subprocess
    dbp, mig = env
    write(mig, '001_ok.sql', 'CREATE TABLE ok(x);')
    code = ('import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN EXCLUSIVE"); '
            'print("ready", flush=True); time.sleep(30)')
    h = subprocess.Popen([sys.executable, '-c', code, dbp], stdout=subprocess.PIPE, text=True)
    try:
        assert h.stdout.readline().strip() == 'ready'
        before = tree(os.path.dirname(dbp))
        r = run({'path': dbp, 'migrations_dir': str(mig), 'busy_timeout': 200})
        assert r['failed'] and 'locked longer than busy_timeout=200 ms' in r['msg'] and 'pid %d' % h.pid in r['msg']
        assert tree(os.path.dirname(dbp)) == before
    finally:
        h.kill()
        h.wait()


MIGRATOR = '''
import os, sqlite3, sys
print('secret is', os.environ.get('APP_SECRET'))
c = sqlite3.connect(sys.argv[1])
c.execute('CREATE TABLE IF NOT EXISTS app_migrations(name TEXT PRIMARY KEY)')
if c.execute("SELECT 1 FROM app_migrations WHERE name='001'").fetchone():
    print('No pending migrations - database is up to date')
elif os.environ.get('FAIL'):
    print('boom', file=sys.stderr)
    sys.exit(3)
else:
    c.execute('ALTER TABLE users ADD COLUMN position TEXT')
    c.execute("INSERT INTO app_migrations VALUES ('001')")
    c.commit()
    print('Applied 001')
'''


def test_app_migrator_command(env, tmp_path):
    dbp = env[0]
    script = tmp_path / 'migrate.py'
    script.write_text(MIGRATOR)
    args = {'path': dbp, 'command': [sys.executable, str(script), dbp], 'chdir': str(tmp_path), 'backup': True,
            'environment': {'APP_SECRET': 's3cr3t-value'}}
    r = run(args, check=True)
    assert r['changed'] is False and 'app_migrations' not in tables(dbp)
    r = run(args, diff=True)
    assert r['changed'] is True and r['rc'] == 0 and 'Applied 001' in r['stdout'] and os.path.exists(r['backup_file'])
    assert 'diff' not in r  # what the app's own migrator changed is not known: no diff rather than a made-up one
    assert 's3cr3t-value' not in json.dumps(r)
    assert 'position' in [x[1] for x in q(dbp, 'PRAGMA table_info(users)')]
    r = run(args)
    assert r['changed'] is False and r['backup_file'] is None  # up to date: the extra backup is removed again
    # environment values are secrets, masked wherever they appear: a value like '1' would also mask the digits of dbp
    fail = run({'path': dbp, 'command': '%s %s %s' % (sys.executable, script, dbp + '2'), 'environment': {'FAIL': 'fail-please'}})
    assert fail['failed'] and 'exit code 3' in fail['msg'] and 'boom' in fail['msg'] and dbp in fail['msg']


def test_needs_migrations_dir_or_command(env):
    dbp = env[0]
    r = run({'path': dbp})
    assert r['failed'] and 'migrations_dir' in r['msg'] and 'command' in r['msg']


# ----------------------------------------------------------------------------- diff mode


def recorded(mig, *names):
    """The diff text for ``names`` recorded with the sha256 of their files now."""
    return ''.join('%s %s\n' % (n, hashlib.sha256((mig / n).read_bytes()).hexdigest()) for n in names)


def test_diff_lists_recorded_migrations_before_and_after(env):
    dbp, mig = env
    write(mig, '001_a.sql', 'CREATE TABLE a(x);')
    first = run({'path': dbp, 'migrations_dir': str(mig)}, diff=True)
    assert first['diff']['before'] == '' and first['diff']['after'] == recorded(mig, '001_a.sql')  # no tracking table yet
    write(mig, '002_b.sql', 'CREATE TABLE b(x);')
    write(mig, '003_c.sql', "INSERT INTO users(email) VALUES ('row-content-never-in-diff');")
    args = {'path': dbp, 'migrations_dir': str(mig), 'target': 3}
    header = '%s (table schema_migrations)' % dbp
    want = {'before': recorded(mig, '001_a.sql'), 'after': recorded(mig, '001_a.sql', '002_b.sql', '003_c.sql'),
            'before_header': header, 'after_header': header}
    before = tree(os.path.dirname(dbp))
    chk = run(args, check=True, diff=True)
    assert chk['changed'] is True and chk['diff'] == want
    assert tree(os.path.dirname(dbp)) == before
    r = run(args, diff=True)
    assert r['changed'] is True and r['applied'] == ['002_b.sql', '003_c.sql'] and r['diff'] == want
    assert 'row-content-never-in-diff' not in json.dumps(r['diff'])
    again = run(args, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == want['after']
    assert 'diff' not in run(args) and 'diff' not in run(args, check=True)


def test_diff_shows_repaired_checksums_and_baselined_migrations(env):
    dbp, mig = env
    for n in ('001_a.sql', '002_b.sql', '003_c.sql'):
        write(mig, n, 'CREATE TABLE t%s(x);' % n[2])
    run({'path': dbp, 'migrations_dir': str(mig), 'target': 1})
    old = recorded(mig, '001_a.sql')
    write(mig, '001_a.sql', 'CREATE TABLE t1(x, y);')  # edited after it ran
    args = {'path': dbp, 'migrations_dir': str(mig), 'repair': True, 'baseline': 2}
    chk = run(args, check=True, diff=True)
    assert chk['diff']['before'] == old
    assert chk['diff']['after'] == recorded(mig, '001_a.sql', '002_b.sql', '003_c.sql')
    r = run(args, diff=True)
    assert r['repaired'] == ['001_a.sql'] and r['baselined'] == ['002_b.sql'] and r['applied'] == ['003_c.sql']
    assert r['diff'] == chk['diff']
    rows = q(dbp, 'SELECT name, sha256 FROM schema_migrations ORDER BY version')
    assert ''.join('%s %s\n' % row for row in rows) == r['diff']['after']
