# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: whatever the arguments and whatever is at ``path``, dotenv_set ends in a result or in a fail_json with
a message -- never a traceback -- and a failed run leaves every file as it was (content, mode, mtime, owner).

Real files in a fresh folder per example; the module runs in-process through the real exit_json/fail_json
(``_modrun``), so an uncaught exception fails the test with its traceback.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.modules import dotenv_set
from ansible_collections.bluegreen.dbfix.tests._fsfaults import tree
from ansible_collections.bluegreen.dbfix.tests.unit.plugins.modules._modrun import run_module

ENV = b'# app\nPORT=3000\nexport JWT_SECRET="s3cret value"\n#OLD=x\nMULTI=`a\nb`\n'
KEYS = st.one_of(st.sampled_from(['PORT', 'NEW_KEY', 'JWT_SECRET', '__proto__', 'constructor', 'a b', '', 'K=V', 'é',
                                  'x' * 300]),
                 st.text(max_size=12))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=16),
                    st.sampled_from(['a\\nb\r', 'nul\0', '\ud800', "it's \"x\" `y`"]))
VALUES = st.one_of(SCALARS, st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
MODES = st.one_of(st.none(), st.sampled_from(['0600', '0640', '644', 'u=rw,go=', 'g+r', 'a+X', '999', 'abc', '07777', '0o644',
                                              'preserve', '', '017777', '-1', 'u+s']),
                  st.integers(min_value=-2, max_value=0o177777), st.floats(allow_nan=False, allow_infinity=False))
IDS = st.one_of(st.none(), st.sampled_from(['root', '0', 'daemon', '1', 'nosuchuser-h4x', '-1', '99999999999', '4294967295',
                                            '1.5', 'nobody']))
KINDS = ['file', 'missing', 'dir', 'dangling', 'link', 'binary', 'empty', 'crlf', 'nul-in-path', 'missing-folder']


def _setup(d, kind):
    env = os.path.join(d, 'app', '.env')
    os.mkdir(os.path.join(d, 'app'))
    if kind in ('file', 'link', 'dangling'):
        real = os.path.join(d, 'real.env') if kind != 'file' else env
        if kind != 'dangling':
            with open(real, 'wb') as f:
                f.write(ENV)
            os.chmod(real, 0o640)
        if kind != 'file':
            os.symlink(real, env)
    elif kind == 'dir':
        os.mkdir(env)
    elif kind in ('binary', 'empty', 'crlf'):
        data = {'binary': b'SQLite format 3\0' + bytes(range(256)), 'empty': b'', 'crlf': ENV.replace(b'\n', b'\r\n')}[kind]
        with open(env, 'wb') as f:
            f.write(data)
        os.chmod(env, 0o600)
    elif kind == 'nul-in-path':
        env += '\0x'
    elif kind == 'missing-folder':
        env = os.path.join(d, 'nowhere', '.env')
    return env


def _state(d):
    owners = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            s = os.lstat(p)
            owners[os.path.relpath(p, d)] = (s.st_uid, s.st_gid, s.st_mode)
    return tree(d, meta=True), owners


ARGS = st.fixed_dictionaries({
    # a valid edit of a real file is weighted up, so the arguments checked after the edit are reached often
    'kind': st.sampled_from(['file'] * 6 + ['link'] * 2 + KINDS),
    'use_values': st.booleans(),
    'key': st.one_of(st.sampled_from(['NEW_KEY', 'PORT']), KEYS),
    'value': st.one_of(st.sampled_from(['v1', 'two words']), st.none(), st.text(max_size=16)),
    'values': st.one_of(st.just({'NEW_KEY': 'v1', 'PORT': 3001}), st.dictionaries(KEYS, VALUES, max_size=3)),
    'state': st.sampled_from(['present'] * 3 + ['absent', 'bogus']),
    'flags': st.fixed_dictionaries({'create': st.booleans(), 'backup': st.booleans(), 'show_values': st.booleans(),
                                    'unsafe_writes': st.booleans()}),
    'mode': MODES, 'owner': IDS, 'group': IDS,
    'check': st.booleans(), 'diff': st.booleans(),
})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=ARGS)
def test_any_arguments_end_in_a_result_or_a_message(a):
    d = tempfile.mkdtemp(prefix='dbfix-h4-prop-')
    try:
        path = _setup(d, a['kind'])
        args = {'path': path, 'state': a['state'], **a['flags']}
        if a['use_values']:
            args['values'] = a['values']
        else:
            args['key'] = a['key']
            if a['value'] is not None:
                args['value'] = a['value']
        for name in ('mode', 'owner', 'group'):
            if a[name] is not None:
                args[name] = a[name]
        before = _state(d)
        r = run_module(dotenv_set, args, check=a['check'], diff=a['diff'])   # an uncaught exception fails here
        if r.get('failed'):
            assert isinstance(r.get('msg'), str) and r['msg'].strip(), r
            assert _state(d) == before, r['msg']
        else:
            assert isinstance(r['changed'], bool)
            if a['check'] or not r['changed']:
                assert _state(d) == before
    finally:
        shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(['file', 'link', 'missing', 'empty', 'crlf']), mode=MODES, owner=IDS, group=IDS,
       opts=st.fixed_dictionaries({'backup': st.booleans(), 'check': st.booleans(), 'same': st.booleans()}))
def test_file_attribute_arguments_never_fail_after_the_write(kind, mode, owner, group, opts):
    """A valid edit with any owner/group/mode: these are checked before anything is written, so a bad one fails with
    the file untouched (Ansible's own set_fs_attributes would fail after the new content was in place)."""
    d = tempfile.mkdtemp(prefix='dbfix-h4-prop-')
    try:
        path = _setup(d, kind)
        args = {'path': path, 'key': 'PORT', 'value': '3000' if opts['same'] else '3001', 'backup': opts['backup'],
                'create': True}
        check = opts['check']
        for name, v in (('mode', mode), ('owner', owner), ('group', group)):
            if v is not None:
                args[name] = v
        before = _state(d)
        r = run_module(dotenv_set, args, check=check, diff=True)
        if r.get('failed'):
            assert isinstance(r.get('msg'), str) and r['msg'].strip(), r
            assert _state(d) == before, r['msg']
        else:
            assert isinstance(r['changed'], bool)
            if check or not r['changed']:
                assert _state(d) == before
    finally:
        shutil.rmtree(d, ignore_errors=True)
