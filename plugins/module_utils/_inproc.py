# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one of this collection's modules inside another module's process.

Every module execution costs a new Python process on the managed host that imports AnsibleModule from its
payload (about half a second here). Phase 2's switch window (stop, seed, link, start, health, proof) is
downtime, so shared_db_switch runs the modules it needs back to back in its own process: each module's work
lives in ``module_utils/_<module>.py`` as ``MODULE_KWARGS`` (what AnsibleModule gets) and ``run(module)``,
and :func:`call` hands ``run`` a :class:`SubModule` instead of an AnsibleModule.

A SubModule validates its parameters with the module's own argument spec (types, defaults, choices,
mutually exclusive options, required ones) exactly as AnsibleModule does; ``exit_json``/``fail_json`` end the
call with the result instead of the process; warnings, ``no_log`` values, ``run_command`` and
``get_bin_path`` go to the module that runs it, so its result masks the same secrets.
"""

from __future__ import annotations

from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS, AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


class ModuleExit(Exception):
    """``exit_json`` or ``fail_json`` of a SubModule: ``result`` is what the module returned."""

    def __init__(self, result):
        super().__init__(result.get('msg', ''))
        self.result = result


def _spec(kwargs):
    spec = dict(kwargs['argument_spec'])
    if kwargs.get('add_file_common_args'):
        for k, v in FILE_COMMON_ARGUMENTS.items():
            spec.setdefault(k, v)
    return spec


def validate(kwargs, params):
    """(validated parameters, no_log values, error messages) of ``params`` for a module's MODULE_KWARGS."""
    validator = ArgumentSpecValidator(_spec(kwargs), mutually_exclusive=kwargs.get('mutually_exclusive'),
                                      required_together=kwargs.get('required_together'),
                                      required_one_of=kwargs.get('required_one_of'),
                                      required_if=kwargs.get('required_if'), required_by=kwargs.get('required_by'))
    res = validator.validate(dict(params))
    return res.validated_parameters, set(res._no_log_values), list(res.error_messages)  # pylint: disable=protected-access


class SubModule:
    """The part of AnsibleModule this collection's modules use, for a run inside ``parent``'s process."""

    def __init__(self, parent, kwargs, params, check_mode=False):
        self.parent = parent
        self.check_mode = check_mode
        self._diff = False
        self.no_log_values = parent.no_log_values
        self.params, no_log, errors = validate(kwargs, params)
        self.no_log_values.update(no_log)
        if errors:
            raise ModuleExit({'failed': True, 'msg': '; '.join(errors)})

    def warn(self, warning):
        self.parent.warn(warning)

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(dict(kwargs, failed=True, msg=msg))

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def run_command(self, *args, **kwargs):
        return self.parent.run_command(*args, **kwargs)

    def get_bin_path(self, *args, **kwargs):
        return self.parent.get_bin_path(*args, **kwargs)

    def _symbolic_mode_to_octal(self, path_stat, symbolic_mode):
        # AnsibleModule's helper that turns u+rw,g-w into a number (sqlite_backup's mode option)
        return AnsibleModule._symbolic_mode_to_octal(path_stat, symbolic_mode)  # pylint: disable=protected-access


def call(parent, impl, params, check_mode=False, **run_kwargs):
    """Run module ``impl`` (a module_utils ``_<module>`` with MODULE_KWARGS and run) with ``params``; its result.

    ``run_kwargs`` go to ``impl.run`` (what a module offers a caller in the same process, e.g. pm2_service's
    ``known``/``seen``). A failed module gives a result with ``failed: true`` and ``msg``, as a task would; this
    never raises for it.
    """
    try:
        impl.run(SubModule(parent, impl.MODULE_KWARGS, params, check_mode=check_mode), **run_kwargs)
    except ModuleExit as e:
        return e.result
    return {'failed': True, 'msg': '%s ended without a result' % impl.__name__.rsplit('.', 1)[-1]}
