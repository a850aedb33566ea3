# SPDX-License-Identifier: GPL-3.0-or-later
"""Running a module inside another module's process (module_utils/_inproc.py), as shared_db_switch does.

The modules run for real on real files (dbfix_state on a state file, sqlite_backup on a real SQLite DB,
shared_db_link on real paths). The *parent* module is a small stand-in with AnsibleModule's attributes a
SubModule hands on (no_log values, warnings, run_command): building a real AnsibleModule needs module
arguments on stdin, and what is checked here is what reaches it.
"""
from __future__ import annotations

import ast
import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _dbfix_state, _inproc, _pm2_service, _shared_db_link, _sqlite_backup, _switch


class Parent:
    def __init__(self):
        self.no_log_values = set()
        self.warnings = []

    def warn(self, w):
        self.warnings.append(w)

    def run_command(self, args, **kw):
        p = subprocess.run(args, capture_output=True, text=True, check=False)
        return p.returncode, p.stdout, p.stderr

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return '/usr/bin/' + name


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_module_runs_with_its_defaults_and_returns_its_result(tmp_path):
    state = tmp_path / 'st' / 'state.json'
    res = _inproc.call(Parent(), _dbfix_state, {'path': str(state), 'update': {'phase2': {'a': 1}}, 'fact': 'f'})
    assert res['changed'] is True and res['state'] == {'phase2': {'a': 1}} and res['ansible_facts'] == {'f': {'phase2': {'a': 1}}}
    assert json.loads(state.read_text()) == {'phase2': {'a': 1}}
    assert oct(state.stat().st_mode & 0o777) == '0o600'
    again = _inproc.call(Parent(), _dbfix_state, {'path': str(state), 'update': {'phase2': {'a': 1}}})
    assert again['changed'] is False


def test_bad_arguments_fail_like_ansiblemodule_and_touch_nothing(tmp_path):
    db = tmp_path / 'database.db'
    with sqlite3.connect(db) as c:
        c.execute('create table t (x)')
    before = sha(db)
    # a wrong choice, a missing required option, two options that exclude each other
    res = _inproc.call(Parent(), _sqlite_backup, {'path': str(db), 'verify': 'sometimes'})
    assert res['failed'] and 'verify' in res['msg'] and 'sometimes' in res['msg']
    res = _inproc.call(Parent(), _shared_db_link, {'path': str(db), 'state': 'linked'})
    assert res['failed'] and 'shared' in res['msg']
    res = _inproc.call(Parent(), _pm2_service, {'name': 'x', 'script': 'a.js', 'ecosystem': '/e.config.js'})
    assert res['failed'] and 'mutually exclusive' in res['msg']
    res = _inproc.call(Parent(), _dbfix_state, {'path': str(tmp_path / 's.json'), 'nonsense': 1})
    assert res['failed'] and 'nonsense' in res['msg']
    assert sha(db) == before and sorted(p.name for p in tmp_path.iterdir()) == ['database.db']


def test_a_module_failure_is_a_result_not_an_exception(tmp_path):
    state = tmp_path / 'state.json'
    state.write_text('[1, 2]')
    res = _inproc.call(Parent(), _dbfix_state, {'path': str(state), 'update': {'x': 1}})
    assert res['failed'] and str(state) in res['msg'] and 'not an object' in res['msg']
    assert state.read_text() == '[1, 2]'


def test_no_log_values_and_warnings_reach_the_parent(tmp_path):
    parent = Parent()
    # pm2_service's env is no_log: its values must be masked in the parent's result too. An invalid name stops
    # the module before it runs pm2 at all.
    res = _inproc.call(parent, _pm2_service, {'name': '-bad', 'env': {'TOKEN': 's3cret-value'}})
    assert res['failed']
    assert 's3cret-value' in parent.no_log_values
    _inproc.validate(_pm2_service.MODULE_KWARGS, {'env': {'K': 'other-secret'}})  # validation alone changes nothing
    assert 'other-secret' not in parent.no_log_values


def test_the_action_resolves_defaults_for_exactly_the_modules_a_step_runs():
    # Read from the file, not imported: importing an action plugin puts this pytest worker's module_utils into
    # the controller's context (see tests/conftest.py).
    tree = ast.parse((Path(_switch.__file__).parents[1] / 'action' / 'shared_db_switch.py').read_text())
    names = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == 'MODULES')
    assert tuple(sorted(names)) == tuple(sorted(_switch.MODULES))
    for name, impl in _switch.MODULES.items():
        assert impl.__name__.rsplit('.', 1)[-1] == '_' + name
        assert callable(impl.run) and 'argument_spec' in impl.MODULE_KWARGS


def test_file_options_of_a_module_work_in_process(tmp_path):
    """sqlite_backup's file options (add_file_common_args) are validated and a symbolic mode is applied."""
    db = tmp_path / 'database.db'
    with sqlite3.connect(db) as c:
        c.execute('create table t (x)')
        c.execute("insert into t values ('a')")
    c.close()
    dest = tmp_path / 'copy.db'
    res = _inproc.call(Parent(), _sqlite_backup, {'path': str(db), 'dest': str(dest), 'mode': 'u=rw,g=r,o='})
    assert not res.get('failed'), res
    assert res['changed'] and res['backup_file'] == str(dest) and oct(dest.stat().st_mode & 0o777) == '0o640'
    with sqlite3.connect(dest) as c:
        assert c.execute('select x from t').fetchall() == [('a',)]
    c.close()
