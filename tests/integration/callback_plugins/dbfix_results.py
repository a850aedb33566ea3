# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: append every task result, exactly as callbacks receive it, to a JSON-lines file.

Used by tests/integration/test_security.py to grep every module result for
secrets. Enabled with ``ANSIBLE_CALLBACKS_ENABLED=dbfix_results``; writes to
``$DBFIX_RESULTS_FILE``.
"""
from __future__ import annotations

DOCUMENTATION = """
name: dbfix_results
type: aggregate
short_description: dump every task result to a JSON-lines file (tests only)
description:
  - Appends host, task, status and the full result dict of every task to C($DBFIX_RESULTS_FILE).
requirements:
  - enable in configuration
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbfix_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = os.environ.get("DBFIX_RESULTS_FILE")

    def _dump(self, result, status):
        if not self._out:
            return
        entry = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "status": status,
            "result": result._result,
        }
        with open(self._out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._dump(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._dump(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._dump(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._dump(result, "item_ok")

    def v2_runner_item_on_failed(self, result):
        self._dump(result, "item_failed")

    def v2_runner_on_unreachable(self, result):
        self._dump(result, "unreachable")
