# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: whatever the arguments and whatever lies at ``path``, ``shared`` and ``path + old_suffix``,
shared_db_link ends in a result or in a fail_json with a message -- never a traceback -- and a failed run leaves
every entry as it was (sha256 and lstat: type, mode, owner, size, inode, links, mtime, link text).

Real SQLite files and real symlinks in a fresh folder per example; the module runs in-process through the real
exit_json/fail_json (``_modrun``), so an uncaught exception fails the test with its traceback.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.modules import shared_db_link
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules.test_shared_db_link import make_db, snapshot

PATH_KINDS = ['db', 'db', 'db-wal', 'db-journal-file', 'link-shared', 'link-elsewhere', 'dangling', 'missing', 'dir',
              'text', 'relative', 'nul', 'empty', 'missing-folder', 'fifo']
SHARED_KINDS = ['db', 'db', 'db', 'missing', 'dir', 'text', 'relative', 'nul', 'same-as-path', 'none', 'link-to-db',
                'empty-file', 'header-only']
OLD_KINDS = ['none', 'none', 'file', 'db', 'link', 'dir', 'old-wal']
SUFFIXES = st.one_of(st.sampled_from(['.OLD', '.OLD', '.bak', '', '/x', '-wal', '-journal', '\0', '.' * 300, ' ', '..']),
                     st.text(max_size=8))


def _make(d, kind, what):
    """Put ``kind`` at d/what; return the argument value to pass."""
    p = os.path.join(d, what)
    if kind in ('db', 'db-wal', 'db-journal-file'):
        make_db(p, ['row-1'], journal_mode='wal' if kind == 'db-wal' else 'delete')
        if kind == 'db-wal':
            with open(p + '-wal', 'wb'):
                pass
        if kind == 'db-journal-file':
            with open(p + '-journal', 'wb') as f:
                f.write(b'\0' * 64)
    elif kind == 'dir':
        os.mkdir(p)
    elif kind in ('text', 'empty-file', 'header-only'):
        with open(p, 'wb') as f:
            f.write({'text': b'not a database\n', 'empty-file': b'', 'header-only': b'SQLite format 3\0'}[kind])
    elif kind == 'fifo':
        os.mkfifo(p)
    elif kind == 'link-elsewhere':
        make_db(os.path.join(d, 'elsewhere.db'), ['e'])
        os.symlink(os.path.join(d, 'elsewhere.db'), p)
    elif kind == 'dangling':
        os.symlink(os.path.join(d, 'nothing-here.db'), p)
    elif kind == 'relative':
        return what
    elif kind == 'nul':
        return p + '\0x'
    elif kind == 'empty':
        return ''
    elif kind == 'missing-folder':
        return os.path.join(d, 'no-such-folder', what)
    return p


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.fixed_dictionaries({
    'path': st.sampled_from(PATH_KINDS), 'shared': st.sampled_from(SHARED_KINDS), 'old': st.sampled_from(OLD_KINDS),
    'state': st.sampled_from(['linked', 'linked', 'unlinked', 'bogus']), 'suffix': SUFFIXES,
    'force': st.booleans(), 'check': st.booleans(), 'diff': st.booleans(), 'extra': st.sampled_from([{}, {}, {'nope': 1}]),
}))
def test_any_arguments_end_in_a_result_or_a_message(a):
    d = tempfile.mkdtemp(prefix='dbfix-h4-sdl-')
    try:
        os.mkdir(os.path.join(d, 'app'))
        shared = None
        if a['shared'] == 'link-to-db':
            make_db(os.path.join(d, 'real-shared.db'), ['s'])
            os.symlink(os.path.join(d, 'real-shared.db'), os.path.join(d, 'shared.db'))
            shared = os.path.join(d, 'shared.db')
        elif a['shared'] not in ('none', 'same-as-path'):
            shared = _make(d, a['shared'], 'shared.db')
        if a['path'] == 'link-shared':
            if shared is None or not os.path.isabs(shared) or '\0' in shared:
                make_db(os.path.join(d, 'shared2.db'), ['s'])
                target = os.path.join(d, 'shared2.db')
            else:
                target = shared
            os.symlink(target, os.path.join(d, 'app', 'database.db'))
            path = os.path.join(d, 'app', 'database.db')
        else:
            path = _make(d, a['path'], os.path.join('app', 'database.db'))
        if a['shared'] == 'same-as-path':
            shared = path
        suffix = a['suffix']
        if a['old'] != 'none' and isinstance(path, str) and path and '\0' not in path and '\0' not in suffix \
                and suffix and '/' not in suffix and os.path.isabs(path) and len(os.path.basename(path + suffix)) < 255:
            old = path + suffix
            if not os.path.lexists(old) and os.path.isdir(os.path.dirname(old)):
                if a['old'] == 'link':
                    os.symlink(os.path.join(d, 'nothing'), old)
                elif a['old'] == 'old-wal':
                    make_db(old, ['old'])
                    with open(old + '-wal', 'wb'):
                        pass
                else:
                    _make(d, a['old'], os.path.relpath(old, d))
        args = {'path': path, 'state': a['state'], 'old_suffix': suffix, 'force': a['force'], **a['extra']}
        if shared is not None:
            args['shared'] = shared
        before = snapshot(d)
        r = run_module(shared_db_link, args, check=a['check'], diff=a['diff'])   # an uncaught exception fails here
        if r.get('failed'):
            assert isinstance(r.get('msg'), str) and r['msg'].strip(), r
            assert snapshot(d) == before, r['msg']
        else:
            assert isinstance(r['changed'], bool)
            if a['check'] or not r['changed']:
                assert snapshot(d) == before, r
    finally:
        shutil.rmtree(d, ignore_errors=True)
