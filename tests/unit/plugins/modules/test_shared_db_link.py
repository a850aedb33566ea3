# SPDX-License-Identifier: GPL-3.0-or-later
"""shared_db_link against real SQLite files, real symlinks and real processes.

Every refusal is checked to leave the tree byte-identical (sha256 + lstat of every
entry). Mocks are used only where the failure cannot be produced for real, and
each says so: a network filesystem (cannot be mounted here), a filesystem without
hard links, and an I/O error in the middle of the switch.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _fsinfo
from ansible_collections.bluegreen.dbfix.plugins.module_utils._sharedfile import can_access
from ansible_collections.bluegreen.dbfix.plugins.modules import shared_db_link

# --------------------------------------------------------------------------- helpers


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get('msg'))
        self.result = result
        self.failed = failed


def run_module(args, check=False, diff=True):
    """Run the module in-process with ``args``; return (result, failed)."""
    args = dict(args)
    args['_ansible_check_mode'] = check
    args['_ansible_diff'] = diff

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs, False)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        raise ModuleExit(kwargs, True)

    with patch_module_args(args):
        orig_exit, orig_fail = basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json
        basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = exit_json, fail_json
        try:
            shared_db_link.main()
        except ModuleExit as e:
            # Round-trip through JSON as Ansible would (catches non-serialisable results).
            return json.loads(json.dumps(e.result)), e.failed
        finally:
            basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = orig_exit, orig_fail
    raise AssertionError('module returned without exit_json/fail_json')


def ok(args, **kw):
    result, failed = run_module(args, **kw)
    assert not failed, result['msg']
    return result


def refused(args, root, **kw):
    """Run expecting a refusal; assert nothing under ``root`` changed; return the message."""
    before = snapshot(root)
    result, failed = run_module(args, **kw)
    assert failed, result
    assert result['changed'] is False
    assert snapshot(root) == before
    log = os.environ.get('DBFIX_REFUSALS_LOG')
    if log:  # docs/reliability.md's table is generated from this (see there)
        with open(log, 'a') as f:
            f.write(json.dumps({'test': os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0], 'msg': result['msg']}) + '\n')
    return result['msg']


def snapshot(root):
    """sha256 + lstat (type, mode, owner, size, inode, links, mtime) + link text of every entry (folders: no mtime)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_ino,
                     st.st_nlink, st.st_mtime_ns)
            if stat.S_ISDIR(st.st_mode):
                # A folder's mtime moves when a temp entry comes and goes; its entries are what count.
                entry = (entry[0], entry[1], entry[2], entry[3], entry[5], entry[6])
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(p),)
            elif stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    entry += (hashlib.sha256(f.read()).hexdigest(),)
            out[os.path.relpath(p, root)] = entry
    return out


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_db(path, rows=(), journal_mode='delete'):
    conn = sqlite3.connect(str(path))
    conn.execute('PRAGMA journal_mode=%s' % journal_mode)
    conn.execute('CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)')
    conn.executemany('INSERT INTO users (name) VALUES (?)', [(r,) for r in rows])
    conn.commit()
    conn.close()
    return str(path)


def names(path):
    """Rows of ``users`` read from ``path`` alone, via an immutable open (no sidecars consulted)."""
    conn = sqlite3.connect('file:%s?immutable=1' % path, uri=True)
    try:
        return [r[0] for r in conn.execute('SELECT name FROM users ORDER BY id')]
    finally:
        conn.close()


class Holder:
    """A real process holding a file open until stopped."""

    def __init__(self, code):
        self.proc = subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == 'ready', line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def holders():
    started = []

    def start(code):
        h = Holder(code)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


def sqlite_holder(db):
    return '''
        import sqlite3, sys, time
        c = sqlite3.connect(%r)
        c.execute('SELECT count(*) FROM sqlite_master').fetchone()
        print('ready', flush=True)
        time.sleep(600)
    ''' % str(db)


@pytest.fixture
def estate(tmp_path):
    """An app dir with its own DB and a shared DB beside it, like the incident's server."""
    app = tmp_path / 'TimeTracking-BLUE' / 'server'
    app.mkdir(parents=True)
    db = make_db(app / 'database.db', ['blue-alice', 'blue-bob'])
    shared = make_db(tmp_path / 'database-shared.db', ['green-alice', 'green-bob', 'green-carol'])
    return {'root': str(tmp_path), 'path': db, 'shared': shared, 'old': db + '.OLD'}


def args(estate, **kw):
    a = {'path': estate['path'], 'shared': estate['shared']}
    a.update(kw)
    return a


# --------------------------------------------------------------------------- linked: the normal path


def test_linked_keeps_old_and_links_four_step(estate):
    path, old, shared = estate['path'], estate['old'], estate['shared']
    original = sha(path)
    ino = os.stat(path).st_ino
    before = snapshot(estate['root'])

    r = ok(args(estate), check=True)
    assert r['changed'] is True
    assert r['previous'] == 'file' and r['target'] == shared and r['old_file'] == old
    assert r['moved'] == ['%s -> %s' % (path, old)]
    assert 'symlink -> %s' % shared in r['diff']['after']
    assert snapshot(estate['root']) == before  # check mode changed nothing

    r = ok(args(estate))
    assert r['changed'] is True
    assert r['old_method'] == 'hardlink'
    assert os.readlink(path) == shared
    assert os.path.isabs(os.readlink(path))
    assert sha(old) == original and os.stat(old).st_ino == ino  # the very same file, kept
    assert names(path) == ['green-alice', 'green-bob', 'green-carol']
    assert names(old) == ['blue-alice', 'blue-bob']
    after = snapshot(estate['root'])

    r = ok(args(estate), check=True)
    assert r['changed'] is False and r['previous'] == 'link:%s' % shared and r['target'] == shared
    r = ok(args(estate))
    assert r['changed'] is False
    assert snapshot(estate['root']) == after


def test_linked_relative_link_to_same_file_is_already_linked(estate):
    path = estate['path']
    os.rename(path, estate['old'])
    os.symlink(os.path.relpath(estate['shared'], os.path.dirname(path)), path)
    before = snapshot(estate['root'])
    r = ok(args(estate))
    assert r['changed'] is False and r['target'] == os.readlink(path)
    assert snapshot(estate['root']) == before


def test_link_keeps_owner_of_replaced_file(estate):
    os.chown(estate['path'], 4321, 4321)
    os.chown(os.path.dirname(estate['shared']), 4321, 4321)   # the app user's folder (a 0777 one is refused)
    os.chown(estate['shared'], 4321, 4321)
    ok(args(estate))
    st = os.lstat(estate['path'])
    assert (st.st_uid, st.st_gid) == (4321, 4321)  # protected_symlinks: the app user owns its link


def test_path_never_missing_during_switch(estate, monkeypatch):
    """After every filesystem call the module makes, ``path`` exists (no rename-then-link window)."""
    path = estate['path']
    calls = []
    for name in ('link', 'replace', 'rename', 'unlink', 'symlink'):
        real = getattr(os, name)

        def spy(*a, real_fn=real, fn_name=name, **kw):
            out = real_fn(*a, **kw)
            calls.append((fn_name, os.path.lexists(path)))
            return out
        monkeypatch.setattr(os, name, spy)
    ok(args(estate))
    ok(args(estate, state='unlinked'))
    monkeypatch.undo()
    assert [c[0] for c in calls] == ['link', 'symlink', 'replace', 'replace']
    assert all(present for _name, present in calls), calls


def test_path_never_missing_seen_by_another_process(estate, tmp_path):
    """A separate process polls lstat(path) while the link is made and undone 20 times."""
    path = estate['path']
    flag = tmp_path / 'stop'
    watcher = subprocess.Popen([sys.executable, '-c', textwrap.dedent('''
        import os, sys
        path, flag = sys.argv[1], sys.argv[2]
        polls = misses = 0
        print('ready', flush=True)
        while not os.path.exists(flag):
            polls += 1
            if not os.path.lexists(path):
                misses += 1
        print(polls, misses, flush=True)
    '''), path, str(flag)], stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline().strip() == 'ready'
        for _round in range(20):
            assert ok(args(estate))['changed']
            assert ok(args(estate, state='unlinked'))['changed']
    finally:
        flag.write_text('x')
        out, _err = watcher.communicate(timeout=30)
    polls, misses = map(int, out.split())
    assert polls > 0
    assert misses == 0


# --------------------------------------------------------------------------- linked: WAL / journal


def _crash_writer(db, rows, journal_mode='wal'):
    """A real process writes rows and dies without closing: leaves a -wal (or hot journal) with content."""
    code = '''
        import os, signal, sqlite3, sys
        c = sqlite3.connect(sys.argv[1], isolation_level=None)
        c.execute('PRAGMA journal_mode=%s')
        c.execute('PRAGMA wal_autocheckpoint=0')
        for r in sys.argv[2:]:
            c.execute('INSERT INTO users (name) VALUES (?)', (r,))
        os.kill(os.getpid(), signal.SIGKILL)
    ''' % journal_mode
    p = subprocess.run([sys.executable, '-c', textwrap.dedent(code), db, *rows], check=False)
    assert p.returncode == -signal.SIGKILL


def test_linked_checkpoints_wal_so_old_is_self_contained(estate):
    path, old = estate['path'], estate['old']
    _crash_writer(path, ['blue-late-1', 'blue-late-2'])
    assert os.path.getsize(path + '-wal') > 0
    assert names(path) == ['blue-alice', 'blue-bob']  # the main file alone lacks the late rows
    r = ok(args(estate))
    assert r['checkpointed'] is True
    assert not any(os.path.lexists(path + s) for s in ('-wal', '-shm', '-journal'))
    assert not any(os.path.lexists(old + s) for s in ('-wal', '-shm', '-journal'))
    assert names(old) == ['blue-alice', 'blue-bob', 'blue-late-1', 'blue-late-2']  # complete on its own


def test_linked_check_mode_does_not_checkpoint(estate):
    _crash_writer(estate['path'], ['late'])
    tree = snapshot(estate['root'])
    r = ok(args(estate), check=True)
    assert r['changed'] is True and r['checkpointed'] is False
    assert snapshot(estate['root']) == tree


def test_persistent_journal_moves_with_the_file_and_back(estate):
    """journal_mode=PERSIST keeps a -journal after every commit: it travels to .OLD-journal and back."""
    path, old = estate['path'], estate['old']
    make_db(path, ['x'], journal_mode='persist')
    assert os.path.exists(path + '-journal')
    journal_sha = sha(path + '-journal')
    r = ok(args(estate))
    assert r['moved'] == ['%s -> %s' % (path, old), '%s-journal -> %s-journal' % (path, old)]
    assert not os.path.lexists(path + '-journal')
    assert sha(old + '-journal') == journal_sha
    assert names(old) == ['blue-alice', 'blue-bob', 'x']
    r = ok(args(estate, state='unlinked'))
    assert r['moved'] == ['%s-journal -> %s-journal' % (old, path), '%s -> %s' % (old, path)]
    assert sha(path + '-journal') == journal_sha and not os.path.lexists(old + '-journal')


# --------------------------------------------------------------------------- linked: refusals


def test_refuses_while_a_process_has_the_db_open(estate, holders):
    h = holders(sqlite_holder(estate['path']))
    msg = refused(args(estate), estate['root'])
    assert 'pid %d' % h.proc.pid in msg
    assert 'sqlite3' in msg and estate['path'] in msg and 'Stop the app' in msg


def test_refuses_while_a_process_has_the_wal_open(estate, holders):
    path = estate['path']
    _crash_writer(path, ['late'])
    h = holders('''
        import sys, time
        f = open(%r, 'rb')
        print('ready', flush=True)
        time.sleep(600)
    ''' % (path + '-wal'))
    msg = refused(args(estate), estate['root'])
    assert 'pid %d' % h.proc.pid in msg and path + '-wal' in msg


def test_refuses_to_overwrite_existing_old(estate):
    with open(estate['old'], 'wb') as f:
        f.write(b'an older .OLD from a previous fix')
    msg = refused(args(estate), estate['root'])
    assert estate['old'] in msg and 'never overwritten' in msg and 'old_suffix' in msg


def test_refuses_to_overwrite_existing_old_wal(estate):
    _crash_writer(estate['path'], ['late'])
    with open(estate['old'] + '-wal', 'wb') as f:
        f.write(b'stale')
    msg = refused(args(estate), estate['root'])
    assert estate['old'] + '-wal' in msg and 'never overwritten' in msg


def test_other_suffix_is_used(estate):
    r = ok(args(estate, old_suffix='.pre-shared'))
    assert r['old_file'] == estate['path'] + '.pre-shared'
    assert names(estate['path'] + '.pre-shared') == ['blue-alice', 'blue-bob']
    assert not os.path.lexists(estate['old'])


def test_resumes_after_interrupted_run(estate):
    """A run that stopped after the hard link (before the swap) leaves path and .OLD as one inode."""
    os.link(estate['path'], estate['old'])
    r = ok(args(estate))
    assert r['changed'] is True and r['old_method'] == 'hardlink'
    assert os.readlink(estate['path']) == estate['shared']
    assert names(estate['old']) == ['blue-alice', 'blue-bob']


def test_link_elsewhere_refused_without_force_and_replaced_with_force(estate, tmp_path):
    other = make_db(tmp_path / 'other.db', ['other'])
    other_before = sha(other)
    os.rename(estate['path'], estate['old'])
    os.symlink(other, estate['path'])
    msg = refused(args(estate), estate['root'])
    assert other in msg and 'force=true' in msg
    r = ok(args(estate, force=True))
    assert r['changed'] is True and r['previous'] == 'link:%s' % other and r['moved'] == []
    assert os.readlink(estate['path']) == estate['shared']
    assert sha(other) == other_before
    assert names(estate['old']) == ['blue-alice', 'blue-bob']  # untouched


def test_force_still_refuses_while_the_other_target_is_open(estate, tmp_path, holders):
    other = make_db(tmp_path / 'other.db', ['other'])
    os.rename(estate['path'], estate['old'])
    os.symlink(other, estate['path'])
    h = holders(sqlite_holder(other))
    msg = refused(args(estate, force=True), estate['root'])
    assert 'pid %d' % h.proc.pid in msg


def test_absent_path_is_linked(estate):
    os.unlink(estate['path'])
    r = ok(args(estate))
    assert r['previous'] == 'absent' and r['changed'] is True and r['moved'] == []
    assert os.readlink(estate['path']) == estate['shared']
    assert not os.path.lexists(estate['old'])


def test_absent_path_with_old_is_refused(estate):
    os.rename(estate['path'], estate['old'])
    msg = refused(args(estate), estate['root'])
    assert 'does not exist but' in msg and estate['old'] in msg


def test_sidecar_beside_link_is_refused(estate, tmp_path):
    other = make_db(tmp_path / 'other.db', ['other'])
    os.rename(estate['path'], estate['old'])
    os.symlink(other, estate['path'])
    with open(estate['path'] + '-wal', 'wb') as f:
        f.write(b'x')
    msg = refused(args(estate, force=True), estate['root'])
    assert estate['path'] + '-wal' in msg


@pytest.mark.parametrize('content', [b'', b'hello, not a database\n', b'SQLite format 3'])
def test_shared_not_sqlite_is_refused(estate, content):
    with open(estate['shared'], 'wb') as f:
        f.write(content)
    msg = refused(args(estate), estate['root'])
    assert 'not a SQLite database' in msg and estate['shared'] in msg and estate['path'] in msg


def test_shared_with_header_but_broken_is_refused(estate):
    with open(estate['shared'], 'r+b') as f:
        f.seek(16)
        f.write(b'\xff' * 84)  # page size and the rest of the header garbage
    msg = refused(args(estate), estate['root'])
    assert 'does not open read-only' in msg and 'integrity_check' in msg


def test_shared_missing_is_refused(estate):
    os.unlink(estate['shared'])
    msg = refused(args(estate), estate['root'])
    assert 'does not exist' in msg and estate['shared'] in msg


def test_shared_directory_is_refused(estate, tmp_path):
    (tmp_path / 'dir.db').mkdir()
    msg = refused(args(estate, shared=str(tmp_path / 'dir.db')), estate['root'])
    assert 'not a regular file' in msg and 'directory' in msg


def test_shared_same_as_path_is_refused(estate):
    msg = refused(args(estate, shared=estate['path']), estate['root'])
    assert 'same file' in msg


def test_shared_in_use_by_wal_app_opens_read_only_without_side_files(estate, holders):
    """The other color already runs on the shared DB in WAL mode: validation must work and leave its files alone."""
    shared = estate['shared']
    conn = sqlite3.connect(shared)
    conn.execute('PRAGMA journal_mode=wal')
    conn.close()
    before_shared = snapshot(os.path.dirname(shared))
    ok(args(estate), check=True)
    assert snapshot(os.path.dirname(shared)) == before_shared  # no -wal/-shm created by our read-only open
    holders('''
        import sqlite3, time
        c = sqlite3.connect(%r, isolation_level=None)
        c.execute("INSERT INTO users (name) VALUES ('green-live')")
        print('ready', flush=True)
        time.sleep(600)
    ''' % shared)
    assert os.path.getsize(shared + '-wal') > 0
    r = ok(args(estate))  # holders of the shared DB do not block linking path
    assert r['changed'] is True
    conn = sqlite3.connect(estate['path'])  # through the link, with the live WAL
    try:
        assert 'green-live' in [row[0] for row in conn.execute('SELECT name FROM users')]
    finally:
        conn.close()


@pytest.mark.parametrize(('key', 'value', 'words'), [
    ('path', 'relative/database.db', 'not absolute'),
    ('shared', 'database-shared.db', 'not absolute'),
    ('old_suffix', '', 'old_suffix'),
    ('old_suffix', '.OLD/x', 'old_suffix'),
    ('old_suffix', '-wal', 'old_suffix'),
    ('old_suffix', '-journal', 'old_suffix'),
])
def test_bad_parameters_are_refused(estate, key, value, words):
    msg = refused(args(estate, **{key: value}), estate['root'])
    assert words in msg


def test_path_directory_is_refused(estate, tmp_path):
    d = tmp_path / 'adir'
    d.mkdir()
    msg = refused(args(estate, path=str(d)), estate['root'])
    assert 'is a directory' in msg


def test_missing_parent_folder_is_refused(estate, tmp_path):
    msg = refused(args(estate, path=str(tmp_path / 'nope' / 'database.db')), estate['root'])
    assert 'does not exist' in msg and 'nope' in msg


def test_shared_required_when_linking(estate):
    result, failed = run_module({'path': estate['path']})
    assert failed and 'shared' in result['msg']


# --------------------------------------------------------------------------- filesystem and permissions


def test_network_filesystem_is_refused(estate, monkeypatch):
    # MOCK: an NFS/CIFS mount cannot be made on this machine, so the mount table
    # the module reads is replaced by one that puts the shared DB's folder on nfs4.
    folder = os.path.dirname(estate['shared'])
    table = '1 0 254:0 / / rw - ext4 /dev/vda rw\n2 1 0:77 / %s rw - nfs4 fileserver:/export/db rw,vers=4.2\n' % folder
    monkeypatch.setattr(_fsinfo, 'read_mountinfo', lambda mountinfo=None: _fsinfo.parse_mountinfo(table))
    msg = refused(args(estate), estate['root'])
    assert 'network filesystem' in msg and 'nfs4' in msg and 'fileserver:/export/db' in msg
    assert estate['shared'] in msg and 'local filesystem' in msg


def test_local_overlay_is_accepted(estate, monkeypatch):
    # MOCK (as above): container root filesystems are overlay; they are local and allowed.
    folder = os.path.dirname(estate['shared'])
    table = '1 0 254:0 / / rw - ext4 /dev/vda rw\n2 1 0:78 / %s rw - overlay overlay rw,lowerdir=/l\n' % folder
    monkeypatch.setattr(_fsinfo, 'read_mountinfo', lambda mountinfo=None: _fsinfo.parse_mountinfo(table))
    assert ok(args(estate))['changed'] is True


def test_app_user_cannot_write_shared_folder(estate):
    """Real modes: the app's DB belongs to uid 4321; the shared DB's folder is root's 0755."""
    folder = os.path.dirname(estate['shared'])
    os.chown(estate['path'], 4321, 4321)
    os.chmod(folder, 0o755)
    msg = refused(args(estate), estate['root'])
    assert 'uid 4321' in msg and folder in msg and '0755' in msg and '-wal' in msg and 'Fix' in msg


def test_app_user_cannot_write_shared_file(estate):
    os.chown(estate['path'], 4321, 4321)
    os.chown(os.path.dirname(estate['shared']), 4321, 4321)
    os.chmod(estate['shared'], 0o644)
    msg = refused(args(estate), estate['root'])
    assert 'uid 4321' in msg and estate['shared'] in msg and 'chown' in msg


def test_app_user_in_group_may_write(estate):
    folder = os.path.dirname(estate['shared'])
    os.chown(estate['path'], 4321, 4321)
    os.chown(folder, 0, 4321)  # uid 4321 has no passwd entry: its group is the file's group
    os.chmod(folder, 0o775)
    os.chown(estate['shared'], 0, 4321)
    os.chmod(estate['shared'], 0o664)
    assert ok(args(estate))['changed'] is True


def test_can_access_uses_one_class_only():
    # Owner without write but other with write: the owner is refused, as by the kernel.
    st = os.stat_result((stat.S_IFDIR | 0o507, 0, 0, 0, 10, 20, 0, 0, 0, 0))
    assert not can_access(10, {20}, st, 2)
    assert can_access(11, {21}, st, 2 | 1)
    assert can_access(0, set(), st, 7)


# --------------------------------------------------------------------------- failures inside the switch


def test_copy_fallback_when_hard_link_refused(estate, monkeypatch):
    # MOCK: a filesystem without hard links cannot be mounted here; os.link fails
    # with EPERM as it does under fs.protected_hardlinks for a non-owner.
    os.chown(estate['path'], 4321, 4322)
    os.chmod(estate['path'], 0o640)
    os.chown(os.path.dirname(estate['shared']), 4321, 4321)
    os.chown(estate['shared'], 4321, 4321)
    src = os.stat(estate['path'])
    original = sha(estate['path'])

    def no_link(*a, **kw):
        raise OSError(errno.EPERM, 'Operation not permitted')
    monkeypatch.setattr(os, 'link', no_link)
    r = ok(args(estate))
    assert r['old_method'] == 'copy'
    st = os.stat(estate['old'])
    assert sha(estate['old']) == original
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (4321, 4322, 0o640, src.st_mtime_ns)


def test_failure_during_swap_undoes_everything(estate, monkeypatch):
    # MOCK: an I/O error on rename cannot be produced on demand as root; the swap fails.
    def broken_replace(*a, **kw):
        raise OSError(errno.EIO, 'Input/output error', a[1])
    monkeypatch.setattr(os, 'replace', broken_replace)
    msg = refused(args(estate), estate['root'])
    assert 'removed again' in msg and estate['path'] in msg and 'Input/output error' in msg


def test_failure_after_keeping_sidecars_removes_them_newest_first(estate, monkeypatch):
    """The swap fails after .OLD and .OLD-journal were made: both are removed again, the newest first."""
    # MOCK: as above, the final rename fails with an I/O error; os.unlink is only watched.
    path, old = estate['path'], estate['old']
    make_db(path, ['x'], journal_mode='persist')  # PERSIST keeps a -journal beside the file
    removed = []
    real_unlink = os.unlink

    def broken_replace(*a, **kw):
        raise OSError(errno.EIO, 'Input/output error', a[1])

    def watched_unlink(p, *a, **kw):
        removed.append(str(p))
        return real_unlink(p, *a, **kw)
    monkeypatch.setattr(os, 'replace', broken_replace)
    monkeypatch.setattr(os, 'unlink', watched_unlink)
    msg = refused(args(estate), estate['root'])
    assert [p for p in removed if p.startswith(old)] == [old + '-journal', old]
    assert 'linking %s to %s failed (Input/output error' % (path, estate['shared']) in msg
    assert 'files made so far (%s, %s-journal) were removed again and %s is as it was' % (old, old, path) in msg
    assert 'was merged into it, same content' in msg  # the journal was checkpointed before anything was made


def test_failure_halfway_removes_what_was_made(estate, monkeypatch):
    """Making .OLD-journal fails after .OLD was made: .OLD is removed, the link is never made."""
    # MOCK: an I/O error while linking one file cannot be produced on demand; os.link fails for the journal.
    path, old = estate['path'], estate['old']
    make_db(path, ['x'], journal_mode='persist')
    real_link = os.link

    def link(src, dst, *a, **kw):
        if str(dst).endswith('-journal'):
            raise OSError(errno.EIO, 'Input/output error', str(dst))
        return real_link(src, dst, *a, **kw)
    monkeypatch.setattr(os, 'link', link)
    msg = refused(args(estate), estate['root'])
    assert 'files made so far (%s) were removed again' % old in msg and old + '-journal' in msg


def test_unlinked_failure_during_swap_undoes_everything(estate, monkeypatch):
    """Putting .OLD back fails at the rename: the -journal already copied beside the link is removed again."""
    path, old = estate['path'], estate['old']
    make_db(path, ['x'], journal_mode='persist')
    ok(args(estate))
    assert os.path.exists(old + '-journal')

    # MOCK: an I/O error on rename cannot be produced on demand as root; the swap fails.
    def broken_replace(*a, **kw):
        raise OSError(errno.EIO, 'Input/output error', a[1])
    monkeypatch.setattr(os, 'replace', broken_replace)
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'putting %s back as %s failed (Input/output error: %s)' % (old, path, path) in msg
    assert 'files made so far (%s-journal) were removed again and %s is as it was.' % (path, path) in msg
    assert os.readlink(path) == estate['shared']


# --------------------------------------------------------------------------- unlinked


def test_unlinked_restores_old_four_step(estate):
    path, old, shared = estate['path'], estate['old'], estate['shared']
    original = sha(path)
    ok(args(estate))
    before = snapshot(estate['root'])

    r = ok(args(estate, state='unlinked'), check=True)
    assert r['changed'] is True and r['previous'] == 'link:%s' % shared and r['target'] is None
    assert 'regular file' in r['diff']['after']
    assert snapshot(estate['root']) == before

    r = ok(args(estate, state='unlinked'))
    assert r['changed'] is True and r['moved'] == ['%s -> %s' % (old, path)]
    assert not os.path.islink(path) and sha(path) == original
    assert not os.path.lexists(old)
    assert names(shared) == ['green-alice', 'green-bob', 'green-carol']
    after = snapshot(estate['root'])

    r = ok(args(estate, state='unlinked'), check=True)
    assert r['changed'] is False and r['previous'] == 'file'
    assert ok(args(estate, state='unlinked'))['changed'] is False
    assert snapshot(estate['root']) == after


def test_unlinked_without_shared_option(estate):
    ok(args(estate))
    r = ok({'path': estate['path'], 'state': 'unlinked'})
    assert r['changed'] is True and not os.path.islink(estate['path'])


def test_unlinked_link_without_old_is_refused(estate):
    os.unlink(estate['path'])
    os.symlink(estate['shared'], estate['path'])
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'no %s to put back' % estate['old'] in msg and 'backup' in msg


def test_unlinked_refuses_while_shared_is_open(estate, holders):
    ok(args(estate))
    h = holders(sqlite_holder(estate['shared']))  # e.g. the other color still running
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'pid %d' % h.proc.pid in msg and 'Stop every app' in msg


def test_unlinked_refuses_while_old_is_open(estate, holders):
    ok(args(estate))
    h = holders(sqlite_holder(estate['old']))
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'pid %d' % h.proc.pid in msg and estate['old'] in msg


def test_unlinked_link_elsewhere_needs_force(estate, tmp_path):
    other = make_db(tmp_path / 'other.db', ['other'])
    os.rename(estate['path'], estate['old'])
    os.symlink(other, estate['path'])
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert other in msg and 'force=true' in msg
    assert ok(args(estate, state='unlinked', force=True))['changed'] is True
    assert names(estate['path']) == ['blue-alice', 'blue-bob']


def test_unlinked_old_not_a_file_is_refused(estate):
    os.unlink(estate['path'])
    os.symlink(estate['shared'], estate['path'])
    os.mkdir(estate['old'])
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'not a regular file' in msg


def test_unlinked_sidecar_beside_link_is_refused(estate):
    ok(args(estate))
    with open(estate['path'] + '-wal', 'wb') as f:
        f.write(b'x')
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert estate['path'] + '-wal' in msg and 'never overwritten' in msg


def test_unlinked_absent_path_restores_old(estate):
    os.rename(estate['path'], estate['old'])
    r = ok(args(estate, state='unlinked'))
    assert r['previous'] == 'absent' and r['changed'] is True
    assert names(estate['path']) == ['blue-alice', 'blue-bob']


def test_unlinked_absent_path_without_old_is_refused(estate):
    os.unlink(estate['path'])
    msg = refused(args(estate, state='unlinked'), estate['root'])
    assert 'missing' in msg and estate['old'] in msg


def test_unlinked_checkpoints_old_wal_back(estate):
    """A .OLD with a WAL (kept by an older tool) comes back complete."""
    path, old = estate['path'], estate['old']
    ok(args(estate))
    _crash_writer(old, ['late-into-old'])
    assert os.path.getsize(old + '-wal') > 0
    r = ok(args(estate, state='unlinked'))
    assert r['checkpointed'] is True
    assert names(path) == ['blue-alice', 'blue-bob', 'late-into-old']
    assert not any(os.path.lexists(p + s) for p in (path, old) for s in ('-wal', '-shm'))


# --------------------------------------------------------------------------- _openfiles.holders as used here


def test_holders_does_not_count_vanished_processes_as_unreadable(tmp_path, estate):
    """A process that exits between listing /proc and reading its fds holds nothing (real tree, fake /proc root)."""
    from ansible_collections.bluegreen.dbfix.plugins.module_utils import _openfiles

    proc = tmp_path / 'proc'
    (proc / '101').mkdir(parents=True)             # exited: no fd/ any more
    (proc / '102' / 'fd').mkdir(parents=True)
    (proc / '102' / 'fd' / '3').symlink_to(estate['path'])
    (proc / '102' / 'cmdline').write_bytes(b'node\0server.js\0')
    found, unreadable = _openfiles.holders([estate['path']], proc_root=str(proc))
    assert unreadable == 0
    assert found == [{'pid': 102, 'command': 'node server.js', 'path': estate['path']}]


# --------------------------------------------------------------------------- any order of operations


OPS = ('linked', 'unlinked', 'linked-check', 'unlinked-check', 'app-writes')


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=8))
def test_any_sequence_keeps_every_row_and_path(ops):
    """Whatever order link, unlink, check runs and app writes come in: ``path`` always exists,
    the app's own rows live in exactly one of ``path``/``.OLD``, the shared rows are never
    touched by unlinking, and repeating an operation changes nothing."""
    with tempfile.TemporaryDirectory() as root:
        app = os.path.join(root, 'app')
        os.mkdir(app)
        e = {'root': root, 'path': make_db(os.path.join(app, 'database.db'), ['own-0']),
             'shared': make_db(os.path.join(root, 'shared.db'), ['shared-0'])}
        e['old'] = e['path'] + '.OLD'
        own, shared_rows = ['own-0'], ['shared-0']
        for i, op in enumerate(ops):
            linked_now = os.path.islink(e['path'])
            if op == 'app-writes':
                conn = sqlite3.connect(e['path'])  # through the link when linked
                conn.execute('INSERT INTO users (name) VALUES (?)', ('w-%d' % i,))
                conn.commit()
                conn.close()
                (shared_rows if linked_now else own).append('w-%d' % i)
            else:
                state, _sep, check = op.partition('-')
                before = snapshot(root)
                r = ok(args(e, state=state), check=bool(check))
                assert r['changed'] is ((state == 'linked') != linked_now)
                if check:
                    assert snapshot(root) == before
                else:
                    assert ok(args(e, state=state))['changed'] is False
            assert os.path.lexists(e['path'])
            if os.path.islink(e['path']):
                assert names(e['old']) == own
                assert names(e['path']) == shared_rows
            else:
                assert names(e['path']) == own and not os.path.lexists(e['old'])
            assert names(e['shared']) == shared_rows


def test_no_diff_without_diff_mode(estate):
    r = ok(args(estate), check=True, diff=False)
    assert r['changed'] is True and 'diff' not in r
