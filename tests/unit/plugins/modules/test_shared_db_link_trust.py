# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_link and other local users: a database others control is refused before SQLite opens it.

Real parts only: real SQLite files (a real WAL with rows in it, planted beside the shared DB), real second users
made with ``useradd`` (an app user and another user; removed afterwards), files written by the other user from its
own process where the point is that it *can* write there. Every refusal is checked to leave every entry byte- and
lstat-identical (type, mode, uid, gid, size, inode, links, mtime, link text, sha256) -- an open by SQLite as root
would have created or re-owned a ``-shm``/``-wal``.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import shared_db_link
from ansible_collections.bluegreen.dbfix.tests._otherusers import SYSTEM_PYTHON, as_user, local_user, run_module_as, shared_tmpdir
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules.test_shared_db_link import make_db, names, snapshot

run = module_runner(shared_db_link, diff=True)


@pytest.fixture
def app():
    with local_user('dbfixapp') as u:
        yield u


@pytest.fixture
def other():
    with local_user('dbfixevil') as u:
        yield u


@pytest.fixture
def site(app):
    """/tmp/…/app/server/database.db and /tmp/…/shared/database-shared.db, all the app user's (0755 folders)."""
    with shared_tmpdir() as root:
        server = os.path.join(root, 'app', 'server')
        os.makedirs(server)
        shared_dir = os.path.join(root, 'shared')
        os.mkdir(shared_dir)
        path = make_db(os.path.join(server, 'database.db'), ['own-1', 'own-2'])
        shared = make_db(os.path.join(shared_dir, 'database-shared.db'), ['shared-1'], journal_mode='wal')
        for d in (os.path.join(root, 'app'), server, shared_dir):
            os.chown(d, app.uid, app.gid)
            os.chmod(d, 0o755)
        for f in (path, shared):
            os.chown(f, app.uid, app.gid)
            os.chmod(f, 0o644)
        yield {'root': root, 'path': path, 'shared': shared, 'shared_dir': shared_dir, 'old': path + '.OLD'}


def refused(site, **kw):
    before = snapshot(site['root'])
    for check in (True, False):
        r = run(dict({'path': site['path'], 'shared': site['shared']}, **kw), check=check)
        assert r.get('failed') is True and r['changed'] is False, r
        assert 'Nothing was opened or changed' in r['msg'], r['msg']
        assert snapshot(site['root']) == before
    return r['msg']


def as_other(user, code, *argv):
    """Run Python ``code`` as ``user`` (its own process, its own uid): what that user can really do."""
    subprocess.run([SYSTEM_PYTHON, '-c', code, *argv], **as_user(user), check=True, timeout=60, env={'PATH': '/usr/bin:/bin'})


def planted_wal(shared, row):
    """Bytes of a real -wal that, beside ``shared``, adds ``row`` to ``users`` (made on a private copy)."""
    work = shared + '.work'
    os.mkdir(work)
    try:
        copy = os.path.join(work, os.path.basename(shared))
        shutil.copy2(shared, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        conn.execute('PRAGMA wal_autocheckpoint=0')
        conn.execute('INSERT INTO users (name) VALUES (?)', (row,))
        with open(copy + '-wal', 'rb') as f:
            data = f.read()
        # proof that it works: the planted file really injects the row when SQLite opens the database
        proof = os.path.join(work, 'proof')
        os.mkdir(proof)
        shutil.copy2(shared, os.path.join(proof, 'db'))
        with open(os.path.join(proof, 'db-wal'), 'wb') as f:
            f.write(data)
        c2 = sqlite3.connect(os.path.join(proof, 'db'))
        assert row in [r[0] for r in c2.execute('SELECT name FROM users')]
        c2.close()
        conn.close()
        return data
    finally:
        shutil.rmtree(work)


def test_a_wal_planted_by_another_user_beside_the_shared_db_is_refused(site, app, other):
    """The incident class: another user drops a -wal (it can, the folder is group-writable for it) and SQLite would
    serve its rows. Refused before any open, naming the file, its owner and mode, and what to do."""
    os.chown(site['shared_dir'], app.uid, other.gid)
    os.chmod(site['shared_dir'], 0o775)                        # group = the other user's own group
    wal = site['shared'] + '-wal'
    data = planted_wal(site['shared'], 'injected-row')
    as_other(other, 'import sys; open(sys.argv[1], "wb").write(bytes.fromhex(sys.argv[2]))', wal, data.hex())
    assert os.lstat(wal).st_uid == other.uid
    msg = refused(site)
    assert wal in msg and other.name in msg and 'mode 0644' in msg and 'move it away' in msg, msg
    assert site['shared_dir'] in msg and 'writable by group' in msg and 'chmod g-w' in msg, msg
    assert not os.path.islink(site['path']) and names(site['path']) == ['own-1', 'own-2']


@pytest.mark.parametrize('suffix', ['-wal', '-shm', '-journal'])
def test_a_side_file_of_another_user_is_refused(site, other, suffix):
    side = site['shared'] + suffix
    with open(side, 'wb') as f:
        f.write(b'' if suffix != '-wal' else planted_wal(site['shared'], 'x'))
    os.chown(side, other.uid, other.gid)
    msg = refused(site)
    assert side in msg and 'owned by user %d (%s)' % (other.uid, other.name) in msg and 'mode 0644' in msg, msg


@pytest.mark.parametrize('suffix', ['-wal', '-shm', '-journal'])
def test_a_symlink_as_side_file_is_refused(site, other, suffix):
    elsewhere = os.path.join(site['root'], 'elsewhere' + suffix)
    with open(elsewhere, 'wb'):
        pass
    os.chown(elsewhere, other.uid, other.gid)
    side = site['shared'] + suffix
    os.symlink(elsewhere, side)
    msg = refused(site)
    assert side in msg and 'symlink' in msg and elsewhere in msg, msg


def test_a_world_writable_shared_folder_is_refused(site, other):
    os.chmod(site['shared_dir'], 0o777)
    as_other(other, 'import sys; open(sys.argv[1], "w").close()', os.path.join(site['shared_dir'], 'i-was-here'))
    msg = refused(site)
    assert site['shared_dir'] in msg and 'writable by every local user' in msg and 'mode 0777' in msg, msg
    assert 'chmod o-w %s' % site['shared_dir'] in msg


def test_a_shared_folder_owned_by_another_user_is_refused(site, other):
    os.chown(site['shared_dir'], other.uid, other.gid)
    msg = refused(site)
    assert site['shared_dir'] in msg and 'owned by user %d (%s)' % (other.uid, other.name) in msg, msg
    assert 'mode 0755' in msg and 'owned by the app user' in msg, msg


def test_a_shared_db_owned_by_another_user_is_refused(site, other):
    os.chown(site['shared'], other.uid, other.gid)
    msg = refused(site)
    assert 'database %s is owned by user %d (%s)' % (site['shared'], other.uid, other.name) in msg, msg


def test_a_planted_wal_beside_the_apps_own_db_is_refused(site, other):
    """Linking checkpoints the app's own -wal into the file kept as .OLD: a planted one would end up in the backup
    that a rollback restores."""
    wal = site['path'] + '-wal'
    conn = sqlite3.connect(site['path'])
    conn.execute('PRAGMA journal_mode=wal')
    conn.close()
    with open(wal, 'wb') as f:
        f.write(planted_wal(site['path'], 'injected'))
    os.chown(wal, other.uid, other.gid)
    msg = refused(site)
    assert "the app's database %s" % site['path'] in msg and wal in msg and other.name in msg, msg


def test_unlinking_refuses_a_kept_db_with_a_planted_side_file(site, app, other):
    r = run({'path': site['path'], 'shared': site['shared']})
    assert r['changed'] and not r.get('failed'), r
    side = site['old'] + '-journal'
    with open(side, 'wb') as f:
        f.write(b'\0' * 512)
    os.chown(side, other.uid, other.gid)
    msg = refused(site, state='unlinked')
    assert 'put %s back' % site['old'] in msg and side in msg and other.name in msg, msg
    assert os.path.islink(site['path'])


def test_the_app_users_own_files_are_accepted_as_root_and_as_the_app_user(site, app):
    """The normal estate: everything the app user's (a live WAL too) links fine, run as root or as the app user."""
    conn = sqlite3.connect(site['shared'], isolation_level=None)   # a live WAL with a committed row in it
    try:
        conn.execute('PRAGMA wal_autocheckpoint=0')
        conn.execute("INSERT INTO users (name) VALUES ('shared-2')")
        for s in ('-wal', '-shm'):    # SQLite (as root) gives its side files the database's owner itself
            assert os.lstat(site['shared'] + s).st_uid == app.uid
        r = run_module_as(app, 'shared_db_link', {'path': site['path'], 'shared': site['shared']}, workdir=site['root'])
        assert r['changed'] and not r.get('failed'), r
        assert os.readlink(site['path']) == site['shared']
    finally:
        conn.close()
    r = run({'path': site['path'], 'shared': site['shared'], 'state': 'unlinked'})
    assert r['changed'] and not r.get('failed'), r
    st = os.lstat(site['path'])
    assert (st.st_uid, st.st_gid) == (app.uid, app.gid) and names(site['path']) == ['own-1', 'own-2']
