# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phase 1's migration policy: auto is expand only while both colors run on the shared database."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bluegreen.dbfix.plugins.filter.phase1_migrations_policy import FilterModule
from ansible_collections.bluegreen.dbfix.plugins.module_utils._migrations_policy import (
    PolicyError,
    phase1_migrations_policy,
)


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
    with pytest.raises(AnsibleFilterError, match=r"dbfix_phase1_migrations_policy is"):
        FilterModule().filters()["phase1_migrations_policy"](requested, True, True)


def test_the_filter_returns_the_policy_only():
    f = FilterModule().filters()["phase1_migrations_policy"]
    assert f("auto", True, True) == "expand"
    assert f("auto") == "any"
    assert f("contract", True, True) == "contract"
