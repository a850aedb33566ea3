# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phase 1's migration policy: auto is expand only while both colors run on the shared database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _migrations_policy
from ansible_collections.bluegreen.dbfix.plugins.module_utils._migrations_policy import (
    PolicyError,
    phase1_migrations_policy,
)

# The filter plugin is controller code: importing it (ansible.errors) switches ansible-core's module_utils into the
# controller context for the rest of the process (module warnings to Display, UTF-8 checks on module arguments), and
# that would change what the in-process module tests of the same pytest worker see. So the filter runs in its own
# interpreter here.
_FILTER_SCRIPT = """
import json, sys
from ansible.errors import AnsibleFilterError
from ansible_collections.bluegreen.dbfix.plugins.filter.phase1_migrations_policy import FilterModule
f = FilterModule().filters()['phase1_migrations_policy']
out = []
for args in json.loads(sys.argv[1]):
    try:
        out.append(['ok', f(*args)])
    except AnsibleFilterError as e:
        out.append(['AnsibleFilterError', str(e)])
print(json.dumps(out))
"""


def run_filter(*calls):
    """[(kind, value-or-message)] of the filter called with each argument list, in a fresh interpreter."""
    root = Path(os.path.abspath(_migrations_policy.__file__)).parents[5]  # the folder holding ansible_collections/
    assert (root / "ansible_collections" / "bluegreen" / "dbfix").is_dir(), root
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _FILTER_SCRIPT, json.dumps([list(c) for c in calls])],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout)]


@pytest.mark.parametrize("linked, peer, expected", [
    (True, True, "expand"),
    (True, False, "any"),   # mid-phase 2: only this color is on the shared DB
    (False, True, "any"),
    (False, False, "any"),  # the first phase 1: each color has its own DB
    ("True", "yes", "expand"),  # as an inventory or a template hands them over
    ("false", "True", "any"),
    (None, True, "any"),
])
def test_auto_is_expand_only_when_both_colors_share_the_db(linked, peer, expected):
    policy, reason = phase1_migrations_policy("auto", linked, peer)
    assert policy == expected
    assert ("both colors" in reason) == (expected == "expand")


@pytest.mark.parametrize("requested", ["any", "expand", "contract", "EXPAND "])
@pytest.mark.parametrize("linked", [True, False])
def test_an_explicit_policy_is_kept(requested, linked):
    assert phase1_migrations_policy(requested, linked, linked)[0] == requested.strip().lower()


@pytest.mark.parametrize("requested", ["", None])
def test_empty_means_auto(requested):
    assert phase1_migrations_policy(requested, True, True)[0] == "expand"


@pytest.mark.parametrize("requested", ["drop", "shrink", 3])
def test_an_unknown_policy_is_refused_naming_the_choices(requested):
    with pytest.raises(PolicyError, match=r"auto, any, expand, contract"):
        phase1_migrations_policy(requested, True, True)
    [(kind, msg)] = run_filter((requested, True, True))
    assert kind == "AnsibleFilterError" and "dbfix_phase1_migrations_policy is" in msg, (kind, msg)


def test_the_filter_returns_the_policy_only():
    assert run_filter(("auto", True, True), ("auto",), ("contract", True, True)) == \
        [("ok", "expand"), ("ok", "any"), ("ok", "contract")]


def test_the_module_tests_process_stays_a_managed_host():
    """No test module imported controller code into this process (see _FILTER_SCRIPT)."""
    assert "ansible.errors" not in sys.modules and "ansible.constants" not in sys.modules
