# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 13: sqlite_migrate policy=expand on real SQLite files. Every refused kind leaves every file byte for byte as it
was (sha256 of the whole folder); every allowed kind is applied."""
from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import sqlite_migrate
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(sqlite_migrate)

BASE = '''
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT DEFAULT 'x');
CREATE TABLE teams(id INTEGER PRIMARY KEY, title TEXT);
CREATE INDEX users_email ON users(email);
CREATE VIEW v_users AS SELECT id, email FROM users;
INSERT INTO users(email) VALUES ('a@x'), ('b@x');
INSERT INTO teams(title) VALUES ('t');
'''


@pytest.fixture
def env(tmp_path):
    dbp = str(tmp_path / 'db' / 'database.db')
    (tmp_path / 'db').mkdir()
    c = sqlite3.connect(dbp)
    c.executescript(BASE)
    c.close()
    mig = tmp_path / 'migrations'
    mig.mkdir()
    return dbp, mig, tmp_path / 'db'


REFUSED = {
    'drop_table': ('DROP TABLE teams;', 'drops table teams'),
    'drop_column': ('ALTER TABLE users DROP COLUMN name;', 'drops column users.name'),
    'rename_column': ('ALTER TABLE users RENAME COLUMN name TO full_name;', 'renames column users.name'),
    'rename_table': ('ALTER TABLE teams RENAME TO groups;', 'renames table teams'),
    'drop_index': ('DROP INDEX users_email;', 'drops index users_email'),
    'drop_view': ('DROP VIEW v_users;', 'drops view v_users'),
    'rebuild_type_change': ('CREATE TABLE new_teams(id INTEGER PRIMARY KEY, title INTEGER);\n'
                            'INSERT INTO new_teams SELECT * FROM teams;\nDROP TABLE teams;\nALTER TABLE new_teams RENAME TO teams;',
                            'drops table teams'),
    'delete_rows': ("DELETE FROM users WHERE email = 'a@x';", 'deletes rows of table users'),
    'update_rows': ("UPDATE users SET name = 'y';", 'changes existing rows'),
    'update_by_trigger': ("CREATE TRIGGER bump AFTER INSERT ON teams BEGIN UPDATE users SET name = 'z'; END;\n"
                          "INSERT INTO teams(title) VALUES ('u');", 'changes existing rows'),
    'not_null_without_default': ('ALTER TABLE users ADD COLUMN team INTEGER NOT NULL;', 'Cannot add a NOT NULL column'),
}


@pytest.mark.parametrize('kind', sorted(REFUSED))
def test_expand_refuses(env, kind):
    dbp, mig, folder = env
    sql, why = REFUSED[kind]
    (mig / '001_ok.sql').write_text('ALTER TABLE users ADD COLUMN position TEXT;\n')
    (mig / ('002_%s.sql' % kind)).write_text(sql + '\n')
    before = tree(folder)
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand'))
    assert res['failed'], res
    assert '002_%s.sql' % kind in res['msg'] and why in res['msg'] and 'Nothing was changed' in res['msg']
    assert res['changed'] is False, 'a refusal before any write must not report changed (it restarts apps in the roles)'
    assert tree(folder) == before
    if kind == 'not_null_without_default':
        return  # SQLite itself refuses it, in any policy
    # the explicit contract step applies it
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='contract'))
    assert not res.get('failed'), res
    assert res['applied'] == ['001_ok.sql', '002_%s.sql' % kind]


def test_problems_names_a_not_null_column_without_default():
    """A column that appears NOT NULL without a default in an existing table (SQLite's ADD COLUMN refuses it itself,
    so the snapshots are built by hand here: the only way to produce that state without a rebuild)."""
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _expand as E
    before = {'objects': {('table', 't'): 'x'}, 'columns': {'t': {'id': ('INTEGER', 0, None, 1)}}, 'fks': {'t': set()}, 'rows': {'t': 0}}
    after = {'objects': {('table', 't'): 'y'}, 'columns': {'t': {'id': ('INTEGER', 0, None, 1), 'c': ('TEXT', 1, None, 0)}},
             'fks': {'t': set()}, 'rows': {'t': 0}}
    assert E.problems(before, after, 0) == ['adds column t.c NOT NULL without a default']
    after['columns']['t']['c'] = ('TEXT', 1, "'x'", 0)
    assert E.problems(before, after, 0) == []


def test_new_table_may_have_not_null_columns_and_rows(env):
    dbp, mig, _folder = env
    (mig / '001_new.sql').write_text(
        'CREATE TABLE new_teams(id INTEGER PRIMARY KEY, title TEXT, owner TEXT NOT NULL);\n'
        "INSERT INTO new_teams SELECT id, title, 'o' FROM teams;\n")
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand'))
    assert not res.get('failed'), res
    assert res['applied'] == ['001_new.sql']


ALLOWED = {
    'add_table': 'CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL);',
    'add_nullable_column': 'ALTER TABLE users ADD COLUMN position TEXT;',
    'add_defaulted_not_null_column': "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member';",
    'add_index': 'CREATE INDEX teams_title ON teams(title);',
    'add_view_and_trigger': ('CREATE VIEW v_teams AS SELECT * FROM teams;\n'
                             'CREATE TRIGGER tr AFTER INSERT ON teams BEGIN SELECT 1; END;'),
    'insert_rows': "INSERT INTO teams(title) VALUES ('new');",
    'update_no_rows': "UPDATE users SET name = 'y' WHERE 0;",
    'fill_a_table_it_created': ("CREATE TABLE labels(id INTEGER PRIMARY KEY, n TEXT);\nINSERT INTO labels(n) VALUES ('a');\n"
                                "UPDATE labels SET n = 'b';\nDELETE FROM labels WHERE n = 'zzz';"),
}


@pytest.mark.parametrize('kind', sorted(ALLOWED))
def test_expand_allows(env, kind):
    dbp, mig, _folder = env
    (mig / ('001_%s.sql' % kind)).write_text(ALLOWED[kind] + '\n')
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand', expect_columns={'users': ['id', 'email', 'name']},
                   queries={'active': 'SELECT id, email FROM v_users'}))
    assert not res.get('failed'), res
    assert res['applied'] == ['001_%s.sql' % kind] and res['policy_checked'] == ['001_%s.sql' % kind]


def test_expand_rechecks_the_other_colors_columns_and_queries(env):
    dbp, mig, folder = env
    (mig / '001_add.sql').write_text('ALTER TABLE users ADD COLUMN position TEXT;\n')
    before = tree(folder)
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand', expect_columns={'users': ['id', 'nickname']}))
    assert res['failed'] and 'users.nickname' in res['msg']
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand', queries={'old_route': 'SELECT nickname FROM users'}))
    assert res['failed'] and 'old_route' in res['msg'] and 'no such column' in res['msg']
    assert tree(folder) == before
    # check mode gives the same verdict and writes nothing
    res = run(dict(path=dbp, migrations_dir=str(mig), policy='expand', queries={'old_route': 'SELECT nickname FROM users'}), check=True)
    assert res['failed'] and 'old_route' in res['msg']
    assert tree(folder) == before
