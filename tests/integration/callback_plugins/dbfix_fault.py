# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: inject a fault after exactly k tasks of one role.

Used by tests/integration/test_fault_injection*.py (set-up in _fault_injection.py), enabled with
``ANSIBLE_CALLBACKS_ENABLED=dbfix_fault``. Environment:

- ``DBFIX_FAULT_ROLE``: role whose tasks are counted (matched on the role name's
  last component, so ``phase2`` matches ``bluegreen.dbfix.phase2``; tasks of a
  helper role it imports, such as ``_common``, count as its own).
- ``DBFIX_FAULT_AFTER``: k; the fault fires when the next task (of any role) is
  about to start after k tasks of the role have run to completion on every host
  (linear strategy), or at the end of the run.
- ``DBFIX_FAULT_ACTION``: ``sigkill`` (default: SIGKILL ansible-playbook itself,
  like an operator's machine dying), ``pm2-daemon`` (SIGKILL the pm2 daemon of
  ``$PM2_HOME``, then carry on).
- ``DBFIX_FAULT_ACTION=squat:PORT`` with ``DBFIX_FAULT_AT_TASK`` (substring of a
  task name, case-insensitive) and ``DBFIX_FAULT_RELEASE_AT``: when the first task matching
  AT_TASK starts, a helper process binds 127.0.0.1:PORT as soon as it is free and listens
  without ever answering (the app's port is taken); it is stopped when a task matching
  RELEASE_AT starts, or at the end of the run.
- ``DBFIX_FAULT_ACTION=sql:DB`` with ``DBFIX_FAULT_SQL`` and ``DBFIX_FAULT_AT_TASK``: when the first
  task matching AT_TASK starts, the statement is committed to the SQLite file DB (another writer on
  the app's live database, at exactly that point of the run).
- ``DBFIX_FAULT_TRACE``: file; every task start is appended as a JSON line
  ``{"role", "name", "n"}`` (and every changed result as ``{"changed": task}``)
  so a clean run enumerates the kill points and which tasks change something.
"""
from __future__ import annotations

DOCUMENTATION = """
name: dbfix_fault
type: aggregate
short_description: kill ansible-playbook or the pm2 daemon after the k-th task of a role (tests only)
description:
  - Fault injection for the bluegreen.dbfix reliability tests.
requirements:
  - enable in configuration
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbfix_fault"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._role = os.environ.get("DBFIX_FAULT_ROLE", "")
        after = os.environ.get("DBFIX_FAULT_AFTER", "")
        self._after = int(after) if after else None
        self._action = os.environ.get("DBFIX_FAULT_ACTION", "sigkill")
        self._trace = os.environ.get("DBFIX_FAULT_TRACE")
        self._count = 0
        self._fired = False
        self._phase = ""
        self._at_task = os.environ.get("DBFIX_FAULT_AT_TASK", "").lower()
        self._release_at = os.environ.get("DBFIX_FAULT_RELEASE_AT", "").lower()
        self._squatter = None

    def _fire(self):
        if self._fired or self._after is None or self._count < self._after:
            return
        self._fired = True
        if self._trace:
            self._log({"fault": self._action, "after": self._count})
        if self._action == "pm2-daemon":
            home = os.environ.get("PM2_HOME", "")
            try:
                with open(os.path.join(home, "pm2.pid"), encoding="ascii") as fh:
                    os.kill(int(fh.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def _log(self, entry):
        with open(self._trace, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def _squat(self, port):
        # Binds as soon as the port is free (the task may stop the app that holds it first), for at most 120 s.
        code = ("import socket, sys, time\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "end = time.monotonic() + 120\n"
                "while True:\n"
                "    try:\n"
                "        s.bind(('127.0.0.1', int(sys.argv[1]))); break\n"
                "    except OSError:\n"
                "        if time.monotonic() > end: raise\n"
                "        time.sleep(0.005)\n"
                "s.listen(64)\n"
                "time.sleep(600)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(port)])
        self._squatter = proc
        if self._trace:
            self._log({"fault": "squat", "port": port, "pid": proc.pid})

    def _sql(self, db, statement):
        conn = sqlite3.connect(db, timeout=10)
        try:
            with conn:
                conn.execute(statement)
        finally:
            conn.close()
        if self._trace:
            self._log({"fault": "sql", "db": db})

    def _release(self):
        if self._squatter is not None:
            self._squatter.kill()
            self._squatter.wait()
            if self._trace:
                self._log({"fault": "squat released"})
            self._squatter = None

    def _start(self, task):
        name = task.get_name()
        lname = name.lower()
        if self._action.startswith("sql:"):
            if not self._fired and self._at_task and self._at_task in lname:
                self._fired = True
                self._sql(self._action.split(":", 1)[1], os.environ["DBFIX_FAULT_SQL"])
        elif self._action.startswith("squat:"):
            if self._squatter is not None and self._release_at and self._release_at in lname:
                self._release()
            elif not self._fired and self._at_task and self._at_task in lname:
                self._fired = True
                self._squat(self._action.split(":", 1)[1])
        else:
            self._fire()
        role = task._role.get_name() if task._role else ""
        short = role.rsplit(".", maxsplit=1)[-1]
        # Helper roles (leading "_", e.g. _common imported by phase2) count as
        # the role that imported them; a task outside any role ends the phase.
        if not role:
            self._phase = ""
        elif not short.startswith("_"):
            self._phase = short
        mine = bool(self._role) and self._phase == self._role
        if mine:
            self._count += 1
        if self._trace:
            self._log({"role": role, "name": name, "n": self._count if mine else None})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_runner_on_ok(self, result):
        if self._trace and result._result.get("changed"):
            self._log({"changed": result._task.get_name(), "host": result._host.get_name()})

    def v2_playbook_on_play_start(self, play):
        if not self._action.startswith(("squat:", "sql:")):
            self._fire()

    def v2_playbook_on_stats(self, stats):
        if self._action.startswith("squat:"):
            self._release()
        elif not self._action.startswith("sql:"):
            self._fire()
