# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The steps of phase 2's switch window (module shared_db_switch; documentation in plugins/modules/shared_db_switch.py).

A step runs this collection's modules back to back in ONE process on the managed host (module_utils/_inproc.py):
between stopping an app and its health being back every extra module execution is downtime. Each module call
gets the ``module_defaults`` the task has for that module (the action plugin resolves them on the controller and
passes them as ``sub_defaults``), so it behaves as if it were its own task. Decisions (what a re-check would
lose) come from module_utils/_plan.py, the same code the analysis uses.
"""

from __future__ import annotations

import os
import time

from ansible_collections.bluegreen.dbfix.plugins.module_utils import (
    _dbfix_state,
    _inproc,
    _plan,
    _pm2_info,
    _pm2_service,
    _shared_db_link,
    _sqlite_backup,
    _sqlite_info,
)

# The modules a step runs, by name (the names module_defaults and sub_defaults use).
MODULES = {
    'pm2_info': _pm2_info,
    'pm2_service': _pm2_service,
    'sqlite_backup': _sqlite_backup,
    'sqlite_info': _sqlite_info,
    'shared_db_link': _shared_db_link,
    'dbfix_state': _dbfix_state,
}

PM2 = dict(
    name=dict(type='str', required=True),
    pm2_home=dict(type='path'),
    executable=dict(type='str'),
    script=dict(type='str'),
    cwd=dict(type='path'),
    interpreter=dict(type='str'),
    args=dict(type='list', elements='str'),
    ecosystem=dict(type='str'),
)
HEALTH = dict(
    url=dict(type='str'),
    status=dict(type='int', default=200),
    body_regex=dict(type='str'),
    timeout=dict(type='float', default=30),
)
SPEC = dict(
    step=dict(type='str', required=True, choices=['quiesce', 'activate', 'switch', 'undo', 'verify']),
    role=dict(type='str', choices=['base', 'other'], default='other'),
    db_path=dict(type='path', required=True),
    shared_db=dict(type='path', required=True),
    old_suffix=dict(type='str', default='.OLD'),
    pm2=dict(type='dict', required=True, options=PM2),
    health=dict(type='dict', default={}, options=HEALTH),
    wait=dict(type='float', default=0),
    already_linked=dict(type='bool', default=False),
    aside=dict(type='path'),
    seed_verify=dict(type='str', choices=['none', 'quick', 'full'], default='quick'),
    recheck_against=dict(type='path'),
    ignore_tables=dict(type='list', elements='str', default=[]),
    forbid_open=dict(type='list', elements='path', default=[]),
    busy_timeout=dict(type='int', default=5000),
    abort_reason=dict(type='str', default=''),
    unlink=dict(type='bool', default=False),
    restore_point=dict(type='dict', options=dict(
        dest_dir=dict(type='path', required=True),
        timestamp=dict(type='str', required=True),
        verify=dict(type='str', choices=['none', 'quick', 'full'], default='quick'),
    )),
    record=dict(type='dict', options=dict(
        state_file=dict(type='path', required=True),
        section=dict(type='str', default='phase2'),
        data=dict(type='dict', default={}),
        fact=dict(type='str', default=''),
    )),
    sub_defaults=dict(type='dict', default={}),
)


class StepFailed(Exception):
    pass


def run(module):
    """The module's work: one step (check mode never reaches the module: the action answers it)."""
    p = module.params
    # Validate the module_defaults meant for the modules a step runs before anything is done (and note their
    # no_log values, so this result masks them too).
    for name, params in sorted((p['sub_defaults'] or {}).items()):
        if name not in MODULES:
            module.fail_json(msg='sub_defaults names %s, which is not one of the modules a step runs (%s)' % (name, ', '.join(sorted(MODULES))))
        module.no_log_values.update(_inproc.validate(MODULES[name].MODULE_KWARGS, params or {})[1])
    res = Switch(module).run()
    if res.get('failed'):
        module.fail_json(**res)
    module.exit_json(**res)


def _clean(d):
    return dict((k, v) for k, v in d.items() if v not in (None, '', []))


class Switch:
    """One step for one host: ``run()`` returns the result (``failed`` and ``msg`` when the step failed)."""

    def __init__(self, module):
        self.module = module
        self._p = module.params
        self._defaults = module.params.get('sub_defaults') or {}
        self._res = dict(changed=False, step=self._p['step'], role=self._p['role'])
        self._pm2_seen = None

    def run(self):
        p = self._p
        try:
            if p['abort_reason']:
                raise StepFailed('%s: nothing was done on this host' % p['abort_reason'])
            if p['step'] == 'switch':
                self._quiesce()
                self._activate()
            else:
                getattr(self, '_' + p['step'])()
        except StepFailed as e:
            self._res['failed'] = True
            self._res['msg'] = str(e)
        return self._res

    # -- calling modules ------------------------------------------------------
    def _call(self, name, args, what):
        params = dict(self._defaults.get(name) or {})
        params.update(_clean(args))
        t0 = time.monotonic()
        kwargs = {}
        if name in ('pm2_info', 'pm2_service'):
            # pm2's process list as the last pm2 call of this step left it: the next pm2_service call starts from
            # it instead of asking pm2 again (no pm2 command runs in this step but through these two modules). In
            # the switch window that is one `pm2 jlist` less while the app is down.
            # The list is only used for the same pm2 (PM2_HOME and executable, module_defaults included).
            kwargs['seen'] = []
            pm2_key = (params.get('pm2_home'), params.get('executable'))
            if name == 'pm2_service' and self._pm2_seen is not None and self._pm2_seen[0] == pm2_key:
                kwargs['known'] = self._pm2_seen[1]
        res = _inproc.call(self.module, MODULES[name], params, **kwargs)
        if kwargs:
            self._pm2_seen = (pm2_key, kwargs['seen']) if kwargs['seen'] and not res.get('failed') else None
        if res.get('changed'):
            self._res['changed'] = True
        self._res.setdefault('executed', []).append('%s: %s (%.2f s)' % (name, what, time.monotonic() - t0))
        if res.get('failed'):
            raise StepFailed('%s failed: %s' % (what, res.get('msg') or 'no message'))
        return res

    def _pm2_args(self, **extra):
        pm2 = self._p['pm2']
        args = dict(name=pm2['name'], pm2_home=pm2['pm2_home'], executable=pm2['executable'], cwd=pm2['cwd'],
                    interpreter=pm2['interpreter'], args=pm2['args'])
        if pm2['ecosystem']:
            args['ecosystem'] = pm2['ecosystem']
        else:
            args['script'] = pm2['script']
        args.update(extra)
        return args

    def _check_online(self):
        pm2 = self._p['pm2']
        res = self._call('pm2_info', dict(name=[pm2['name']], pm2_home=pm2['pm2_home'], executable=pm2['executable'], open_files=False),
                         'look at %s' % pm2['name'])
        procs = res.get('processes') or []
        status = procs[0]['status'] if procs else ('absent' if res.get('daemon_running') else 'no pm2 daemon')
        if status != 'online':
            raise StepFailed('pm2 process %s is not online (status %s) before the switch. Phase 2 starts from two running apps; '
                             'start it (pm2 start, or phase 1) and run again' % (pm2['name'], status))

    def _stop(self):
        self._check_online()
        res = self._call('pm2_service', self._pm2_args(state='stopped'), 'stop %s' % self._p['pm2']['name'])
        self._res['stopped'] = {'status': res.get('status'), 'changed': bool(res.get('changed'))}
        self._res['stopped_at'] = time.time()

    def _start(self, timeout=None):
        h = self._p['health']
        res = self._call('pm2_service', self._pm2_args(state='started', wait=self._p['wait'], health_url=h['url'], health_status=h['status'],
                                                       health_body_regex=h['body_regex'] if h['url'] else None,
                                                       health_timeout=timeout if timeout is not None else h['timeout']),
                         'start %s (health gate)' % self._p['pm2']['name'])
        self._res['started'] = {'status': res.get('status'), 'pid': res.get('pid'), 'changed': bool(res.get('changed')),
                                'health': res.get('health') or {}}
        self._res['healthy_at'] = time.time()

    def _link(self):
        res = self._call('shared_db_link', dict(path=self._p['db_path'], shared=self._p['shared_db'], state='linked',
                                                old_suffix=self._p['old_suffix']), 'link %s to %s' % (self._p['db_path'], self._p['shared_db']))
        self._res['linked'] = dict((k, res.get(k)) for k in ('changed', 'previous', 'target', 'old_file'))

    def _prove_open(self):
        """From /proc: the app (and its children) hold the shared DB's inode and none of the forbidden copies."""
        p = self._p
        old = p['db_path'] + p['old_suffix']
        forbid = [old] + [f for f in p['forbid_open'] if f != old]
        res = self._call('pm2_info', dict(name=[p['pm2']['name']], pm2_home=p['pm2']['pm2_home'], executable=p['pm2']['executable'],
                                          holds=[p['shared_db'], *forbid], open_files=False), 'see which files %s holds' % p['pm2']['name'])
        procs = res.get('processes') or []
        if not procs:
            raise StepFailed('pm2 does not know %s after it was started' % p['pm2']['name'])
        proc = procs[0]
        holds = proc.get('holds') or {}
        wrong = dict((f, holds.get(f)) for f in forbid if holds.get(f))
        opened = {'pids': proc.get('pids') or [], 'shared_pids': holds.get(p['shared_db']) or [], 'forbidden': wrong,
                  'unreadable_pids': proc.get('unreadable_pids') or []}
        self._res['open'] = opened
        if wrong:
            opened['state'] = 'other'
            raise StepFailed('%s still has another copy of the database open (%s), not only the shared one %s'
                             % (p['pm2']['name'], '; '.join('%s by pid %s' % (f, ', '.join(map(str, v))) for f, v in wrong.items()), p['shared_db']))
        if opened['shared_pids']:
            opened['state'] = 'shared'
        elif opened['unreadable_pids']:
            opened['state'] = 'unknown'
            raise StepFailed('cannot read the open files of %s (pids %s): run as root or as the app\'s user, so that /proc/PID/fd '
                             'proves which database it has open' % (p['pm2']['name'], ', '.join(map(str, opened['unreadable_pids']))))
        else:
            opened['state'] = 'lazy'
            self.module.warn(
                '%s holds no database file yet (it opens its database lazily); nothing of %s or its .OLD is open.' % (p['pm2']['name'], p['shared_db']))

    def _move_aside(self, shared, aside):
        """Move an unused old shared DB (and what lies beside it) out of the way; never over an existing file."""
        if os.path.lexists(aside):
            raise StepFailed('%s already exists, so the unused shared DB %s was not moved there; move %s away and run '
                             'again' % (aside, shared, aside))
        try:
            # its side files go with it: a -wal left beside a newly seeded DB would be replayed into it
            for suffix in ('-wal', '-shm', '-journal', ''):
                if suffix == '' or os.path.lexists(shared + suffix):
                    os.rename(shared + suffix, aside + suffix)
        except OSError as e:
            raise StepFailed('could not move the unused shared DB %s aside to %s: %s; move it away by hand and run '
                             'again' % (shared, aside, e.strerror or e)) from e
        self._res.setdefault('executed', []).append('rename: move the unused shared DB aside to %s' % aside)
        self._res['changed'] = True

    # -- steps ---------------------------------------------------------------
    def _quiesce(self):
        p = self._p
        self._stop()
        if p['role'] == 'base':
            if p['aside']:
                self._move_aside(p['shared_db'], p['aside'])
                self._res['aside'] = p['aside']
            if not p['already_linked']:
                res = self._call('sqlite_backup', dict(path=p['db_path'], dest=p['shared_db'], verify=p['seed_verify'],
                                                       busy_timeout=p['busy_timeout']), 'seed %s from %s' % (p['shared_db'], p['db_path']))
                self._res['seeded'] = dict((k, res.get(k)) for k in ('size', 'sha256', 'duration_ms'))
                self._res['seeded']['file'] = p['shared_db']
            self._link()
        elif p['recheck_against'] and not p['already_linked']:
            res = self._call('sqlite_info', dict(path=p['db_path'], compare_with=p['recheck_against'], busy_timeout=p['busy_timeout']),
                             're-check %s against %s' % (p['db_path'], p['recheck_against']))
            lost = _plan.lost_if_base(res.get('comparison') or {}, 'there', p['ignore_tables'])
            self._res['recheck'] = {'compared_with': p['recheck_against'], 'lost_tables': lost}
            if lost:
                raise StepFailed('rows landed in %s since the analysis that the base\'s copy %s lacks (tables: %s); switching now would '
                                 'lose them' % (p['db_path'], p['recheck_against'], ', '.join(lost)))

    def _activate(self):
        p = self._p
        if p['role'] == 'other':
            self._link()
        self._start()
        self._prove_open()
        if p['restore_point']:
            rp = p['restore_point']
            res = self._call('sqlite_backup', dict(path=p['shared_db'], dest_dir=rp['dest_dir'], timestamp=rp['timestamp'], verify=rp['verify'],
                                                   skip_unchanged=True, busy_timeout=p['busy_timeout']), 'back up the new shared DB')
            self._res['restore_point'] = {'file': res.get('backup_file'), 'size': res.get('size'), 'sha256': res.get('sha256'),
                                          'made': bool(res.get('changed'))}
        # Recorded only when this run linked the database: a rerun on a switched pair changes nothing.
        if p['record'] and ((p['role'] == 'base' and not p['already_linked']) or (self._res.get('linked') or {}).get('changed')):
            rec = p['record']
            data = dict(rec['data'])
            data.setdefault('old_file', p['db_path'] + p['old_suffix'])
            res = self._call('dbfix_state', dict(path=rec['state_file'], update={rec['section']: data}, fact=rec['fact']),
                             'record the switch in %s' % rec['state_file'])
            self._res['state'] = res.get('state')
            if res.get('ansible_facts'):
                self._res['ansible_facts'] = res['ansible_facts']

    def _verify(self):
        self._start()
        self._prove_open()

    def _undo(self):
        p = self._p
        self._res['unlinked'] = {'changed': False, 'msg': ''}
        errors = []
        if p['unlink']:
            for module, args, what in (
                    ('pm2_service', self._pm2_args(state='stopped'), 'stop %s' % p['pm2']['name']),
                    ('shared_db_link', dict(path=p['db_path'], shared=p['shared_db'], state='unlinked', old_suffix=p['old_suffix']),
                     'put %s back' % p['db_path'])):
                try:
                    res = self._call(module, args, what)
                except StepFailed as e:
                    errors.append(str(e))
                    if module == 'shared_db_link':
                        self._res['unlinked']['msg'] = str(e)
                    continue
                if module == 'shared_db_link':
                    self._res['unlinked'] = {'changed': bool(res.get('changed')), 'previous': res.get('previous'), 'msg': ''}
        try:
            # Give the app time to come back even when the gate that failed was strict.
            self._start(timeout=max(float(p['health']['timeout']), 30.0))
        except StepFailed as e:
            errors.append(str(e))
            self._res['started'] = {'status': 'unknown', 'changed': False, 'health': {}, 'msg': str(e)}
        if p['record'] and self._res['unlinked'].get('changed'):
            # The switch recorded itself before the pair failed: the record would send a later rollback after a
            # .OLD file that is back in place.
            rec = p['record']
            try:
                res = self._call('dbfix_state', dict(path=rec['state_file'], remove=[rec['section']], fact=rec['fact']),
                                 'forget the switch in %s' % rec['state_file'])
                if res.get('ansible_facts'):
                    self._res['ansible_facts'] = res['ansible_facts']
            except StepFailed as e:
                errors.append(str(e))
        if errors:
            raise StepFailed('; '.join(errors))
