# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ``ansible_collections.bluegreen.dbfix``.

`.collections/ansible_collections/bluegreen/dbfix` is a committed symlink to the
repository root, so tests exercise the working tree, never an installed copy.
"""
from __future__ import annotations

import contextlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


def _ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failure: a missing tool must not read as green."""
    outcome = yield
    report = outcome.get_result()
    if not _ci() or not report.skipped or hasattr(report, 'wasxfail'):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix('Skipped: ')
    report.outcome = 'failed'
    report.longrepr = ('%s was skipped under CI=true (%s). In CI every test must run: install what it needs '
                       'in scripts/setup-system.sh, scripts/setup-venv.sh or scripts/setup-node.sh.' % (item.nodeid, reason))


_TEMP_AT_START: set[str] = set()


# Every process a test starts inherits this mark (xdist workers too: the controller's session starts before
# them), so the session-end sweep stops only this run's processes in a new temp folder outside basetemp.
_SWEEP_MARK = 'DBFIX_SWEEP_SESSION'


def pytest_sessionstart(session):
    import tempfile
    import uuid
    os.environ.setdefault(_SWEEP_MARK, uuid.uuid4().hex)
    top = tempfile.gettempdir()
    _TEMP_AT_START.update(os.path.join(top, n) for n in os.listdir(top))


def pytest_sessionfinish(session, exitstatus):
    """Stop every process a test left running in a temp folder it made (a pm2 daemon survives its test when the
    test fails before its teardown). What is stopped is printed: it is a bug of that test, and
    scripts/leftovers.py still reports folders that were not removed. Only where DBFIX_SWEEP=1
    (scripts/test-pytest.sh, the one pytest of `make test`): two pytest runs at once on one machine would
    otherwise stop each other's daemons.

    Under pytest-xdist (scripts/test-pytest.sh runs ``-n N``) each worker is a session of its own, and a
    temp folder made after a worker started may belong to a test still running on another worker: workers
    never sweep. The controller sweeps once every worker has ended; its basetemp holds every worker's."""
    if os.environ.get('DBFIX_SWEEP') != '1' or hasattr(session.config, 'workerinput'):
        return
    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _procs import kill_processes_under
    top = tempfile.gettempdir()
    roots = [os.path.join(top, n) for n in os.listdir(top) if os.path.join(top, n) not in _TEMP_AT_START]
    base = []
    factory = getattr(session.config, '_tmp_path_factory', None)
    if factory is not None:
        with contextlib.suppress(Exception):
            base.append(str(factory.getbasetemp()))
    # basetemp is this run's alone: everything under it goes. A new folder elsewhere in the temp folder may be
    # another run's (other pytest runs on this machine): only processes carrying this session's mark.
    stopped = kill_processes_under(*base)
    stopped.update(kill_processes_under(*roots, env_mark='%s=%s' % (_SWEEP_MARK, os.environ.get(_SWEEP_MARK, ''))))
    for pid, cmd in sorted(stopped.items()):
        print('\nconftest: stopped pid %d left running by a test: %s' % (pid, cmd[:200]))


@pytest.fixture(autouse=True)
def _managed_host_view():
    """Modules run in-process must see what they see on a managed host.

    ansible-core sets ``ansible.module_utils._internal.is_controller`` for the rest of the process as soon as any
    controller code is imported (``ansible.errors``, a filter plugin - at collection time, in every xdist worker).
    From then on ``AnsibleModule.warn()`` goes to the controller's Display instead of the result's ``warnings``, and
    module arguments are decoded with the controller's JSON profile, so a module test's outcome would depend on which
    other test files the worker collected. Each test starts with the managed host's view; the value is put back after.
    """
    from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel

    saved = _internal.is_controller
    _internal.is_controller = False
    try:
        yield
    finally:
        _internal.is_controller = saved
