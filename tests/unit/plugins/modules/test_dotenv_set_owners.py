# SPDX-License-Identifier: GPL-3.0-or-later
"""dotenv_set and other local users: secrets never readable by them, owners and modes kept.

Everything is real: second users made with ``useradd`` (removed afterwards), a reader process running as one of
them that tries to open every file in the ``.env``'s folder while the module writes backups and temporary files,
and the module run as the app user itself (a separate process with that uid) the way Ansible runs it without
``become``. No mocks.
"""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.bluegreen.dbfix.plugins.modules import dotenv_set
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests._otherusers import local_user, reader_as, run_module_as, shared_tmpdir
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import module_runner

run = module_runner(dotenv_set)
MARK = 'TOPSECRET-h4-'
BASE = b'# app settings\nPORT=3000\nJWT_SECRET="s3cret value"\n'


@pytest.fixture
def folder():
    with shared_tmpdir() as d:
        yield d


@pytest.fixture
def app_user():
    with local_user('dbfixapp') as u:
        yield u


@pytest.fixture
def other_user():
    with local_user('dbfixrd') as u:
        yield u


def attrs(p):
    st = os.lstat(p)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def snapshot(d):
    """Content, mode, mtime and owner of every entry below ``d`` (owner changes count as changes here)."""
    state = tree(d, meta=True)
    owners = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            owners[os.path.relpath(p, d)] = attrs(p)
    return state, owners


@pytest.mark.parametrize('mode', [0o600, 0o640])
def test_a_racing_reader_never_reads_the_backup_or_the_temporary_file(folder, other_user, mode):
    """Another user reads every file of the folder in a tight loop while 20 edits with backup run: the secret
    reaches no file that user can open, at no moment (the old code copied the backup world-readable, then chmod'ed
    it). The .env is big so each copy takes long enough for a reader to get in."""
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chmod(app, 0o755)
    env = os.path.join(app, '.env')
    filler = ''.join('# comment line %06d keeps the copy busy for a while .............................\n' % i
                     for i in range(12000))
    with open(env, 'w') as f:
        f.write(filler + 'DB_PASSWORD=%s0\n' % MARK)
    os.chmod(env, mode)                      # root:root, the reader is in neither
    runs = 20
    with reader_as(other_user, app, MARK) as seen:
        for i in range(1, runs + 1):
            r = run({'path': env, 'key': 'DB_PASSWORD', 'value': '%s%d' % (MARK, i), 'backup': True})
            assert r.get('changed') and r.get('backup_file'), r
    assert seen['hits'] == [], 'another user read the secret from %s' % seen['hits']
    assert seen['refused'] > 0 and seen['opened'] == 0        # it tried, and nothing was open to it
    names = sorted(os.listdir(app))
    backups = [n for n in names if n != '.env']
    assert len(backups) == runs, names                          # no temp file left, one backup per run
    assert set(backups) & set(seen['names'])                    # the reader saw them appear
    for n in names:
        assert attrs(os.path.join(app, n)) == (0, 0, mode), n


@pytest.mark.parametrize('mode', [0o600, 0o640, 0o604])
def test_root_keeps_the_app_users_owner_group_and_mode(folder, app_user, mode):
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chown(app, app_user.uid, app_user.gid)
    env = os.path.join(app, '.env')
    with open(env, 'wb') as f:
        f.write(BASE)
    os.chown(env, app_user.uid, app_user.gid)
    os.chmod(env, mode)
    os.utime(env, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    r = run({'path': env, 'values': {'ALLOWED_ORIGINS': 'tauri://localhost', 'JWT_SECRET': 'new one'}, 'backup': True})
    assert r['changed']
    assert attrs(env) == (app_user.uid, app_user.gid, mode)
    assert attrs(r['backup_file']) == (app_user.uid, app_user.gid, mode)
    assert os.stat(r['backup_file']).st_mtime_ns == 1_700_000_000_000_000_000   # a preserved copy
    with open(r['backup_file'], 'rb') as f:
        assert f.read() == BASE
    assert sorted(os.listdir(app)) == sorted(['.env', os.path.basename(r['backup_file'])])


def test_root_keeps_owner_of_a_followed_link_target(folder, app_user):
    shared = os.path.join(folder, 'shared')
    app = os.path.join(folder, 'app')
    for d in (shared, app):
        os.mkdir(d)
        os.chown(d, app_user.uid, app_user.gid)
    target = os.path.join(shared, '.env')
    with open(target, 'wb') as f:
        f.write(BASE)
    os.chown(target, app_user.uid, app_user.gid)
    os.chmod(target, 0o640)
    link = os.path.join(app, '.env')
    os.symlink(target, link)
    r = run({'path': link, 'key': 'PORT', 'value': '3001', 'backup': True})
    assert r['changed'] and r['path'] == target
    assert os.readlink(link) == target
    assert attrs(target) == attrs(r['backup_file']) == (app_user.uid, app_user.gid, 0o640)


@pytest.mark.parametrize('backup', [False, True])
@pytest.mark.parametrize('foreign', ['owner', 'group'])
def test_app_user_refused_when_the_owner_cannot_be_kept(folder, app_user, foreign, backup):
    """The app user may write the folder but not give the rewritten file another user's owner (or a group it is not
    in): the old code renamed its own file over it, so the .env silently changed owner and mode."""
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chown(app, app_user.uid, app_user.gid)
    env = os.path.join(app, '.env')
    with open(env, 'wb') as f:
        f.write(BASE)
    if foreign == 'owner':
        os.chmod(env, 0o644)                                   # root's file, readable by the app user
    else:
        os.chown(env, app_user.uid, 0)                         # the app user's, but group root
        os.chmod(env, 0o640)
    before = snapshot(folder)
    for check in (True, False):
        r = run_module_as(app_user, 'dotenv_set', {'path': env, 'key': 'PORT', 'value': '3001', 'backup': backup},
                          workdir=folder, check=check)
        assert r.get('failed') is True, r
        assert env in r['msg'] and 'left unchanged' in r['msg'], r['msg']
        assert ('owner root' if foreign == 'owner' else 'group root') in r['msg'], r['msg']
        assert 'become' in r['msg'], r['msg']
        assert snapshot(folder) == before


def test_app_user_edits_its_own_file_keeping_group_and_mode(folder, app_user):
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chown(app, app_user.uid, app_user.gid)
    env = os.path.join(app, '.env')
    with open(env, 'wb') as f:
        f.write(BASE)
    os.chown(env, app_user.uid, app_user.gid)
    os.chmod(env, 0o640)
    r = run_module_as(app_user, 'dotenv_set', {'path': env, 'key': 'PORT', 'value': '3001', 'backup': True}, workdir=folder)
    assert r['changed'] and not r.get('failed'), r
    assert attrs(env) == attrs(r['backup_file']) == (app_user.uid, app_user.gid, 0o640)
    with open(env, 'rb') as f:
        assert f.read() == BASE.replace(b'PORT=3000', b'PORT=3001')


@pytest.mark.parametrize('backup', [False, True])
def test_app_user_in_a_folder_it_cannot_write_fails_cleanly(folder, app_user, backup):
    """The app user owns its .env but not the folder (root's, 0755): no temporary file or backup can be made there.
    The message says so, and nothing changed."""
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chmod(app, 0o755)
    env = os.path.join(app, '.env')
    with open(env, 'wb') as f:
        f.write(BASE)
    os.chown(env, app_user.uid, app_user.gid)
    os.chmod(env, 0o600)
    before = snapshot(folder)
    r = run_module_as(app_user, 'dotenv_set', {'path': env, 'key': 'PORT', 'value': '3001', 'backup': backup},
                      workdir=folder)
    assert r.get('failed') is True, r
    assert env in r['msg'] and 'Permission denied' in r['msg'] and 'directory must be writable' in r['msg'], r['msg']
    assert 'left unchanged' in r['msg']
    assert snapshot(folder) == before


def test_a_racing_reader_never_reads_a_newly_created_env(folder, other_user):
    """create=true: the new file is 0600 from its first moment (Ansible's atomic_move made a new file
    0666 & ~umask and the module narrowed it only afterwards)."""
    app = os.path.join(folder, 'app')
    os.mkdir(app)
    os.chmod(app, 0o755)
    big = MARK + 'x' * 400000
    with reader_as(other_user, app, MARK) as seen:
        for i in range(15):
            r = run({'path': os.path.join(app, '.env%d' % i), 'values': {'JWT_SECRET': big}, 'create': True})
            assert r['changed'], r
    assert seen['hits'] == [], 'another user read the secret from %s' % seen['hits']
    assert seen['refused'] > 0 and seen['opened'] == 0
    for i in range(15):
        assert attrs(os.path.join(app, '.env%d' % i)) == (0, 0, 0o600)
