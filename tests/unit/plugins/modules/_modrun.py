# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a whole module in-process, the way Ansible would, and return its JSON result.

Shared by the module tests so that each one says only which module it runs. The result is read back from
what the module printed, so a result that is not JSON-serialisable fails the test as it would fail a real task.
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(module, args, check=False, diff=None):
    """Run ``module.main()`` with ``args`` (check mode if ``check``; diff mode as ``diff`` says, off when None)."""
    args = dict(args, _ansible_check_mode=check)
    if diff is not None:
        args['_ansible_diff'] = diff
    out = io.StringIO()
    # A module ends with sys.exit in exit_json/fail_json; one that returns without it is a bug.
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


def module_runner(module, diff=None):
    """``run(args, check=False, diff=...)`` for ``module``, its default diff mode being ``diff``."""
    def run(args, check=False, diff=diff):
        return run_module(module, args, check=check, diff=diff)
    return run
