# SPDX-License-Identifier: GPL-3.0-or-later
"""Harness callback (benchmarks and tests): wall time of every task, role and play, written as JSON.

Enabled by the benchmarks with ``ANSIBLE_CALLBACKS_ENABLED=dbfix_timing`` and
``ANSIBLE_CALLBACK_PLUGINS=tests/harness/callback_plugins``; writes to
``$DBFIX_TIMING_FILE``. ansible-core has no ``profile_tasks`` (it lives in
ansible.posix, which is not installed here), so this is the small equivalent.
A task's time runs from its start until the next task (or the end of the play)
starts, i.e. it includes the strategy's own overhead, which is what the
operator waits for.
"""
from __future__ import annotations

DOCUMENTATION = """
name: dbfix_timing
type: aggregate
short_description: write per-task and per-play wall times to a JSON file (benchmarks only)
description:
  - Records the start and end of every task, handler and play and writes them to C($DBFIX_TIMING_FILE).
requirements:
  - enable in configuration
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbfix_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = os.environ.get("DBFIX_TIMING_FILE")
        self._t0 = time.time()
        self._plays = []
        self._tasks = []
        self._current = None
        self._play = None

    def _close_task(self):
        now = time.time()
        if self._current is not None:
            self._current["end"] = now
            self._current = None
        return now

    def v2_playbook_on_play_start(self, play):
        now = self._close_task()
        if self._play is not None:
            self._play["end"] = now
        self._play = {"name": play.get_name(), "start": now, "end": None}
        self._plays.append(self._play)

    def _start(self, task, handler=False):
        now = self._close_task()
        role = task._role.get_name() if task._role else ""
        self._current = {
            "play": self._play["name"] if self._play else "",
            "role": role,
            "name": task.get_name(),
            "action": task.action,
            "handler": handler,
            "start": now,
            "end": None,
            "hosts": {},
        }
        self._tasks.append(self._current)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, handler=True)

    def _result(self, result, status):
        if self._current is not None:
            self._current["hosts"][result._host.get_name()] = status

    def v2_runner_on_ok(self, result):
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        now = self._close_task()
        if self._play is not None:
            self._play["end"] = now
        if not self._out:
            return
        data = {"start": self._t0, "end": now, "plays": self._plays, "tasks": self._tasks}
        with open(self._out, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
