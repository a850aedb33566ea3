# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter bluegreen.dbfix.phase1_migrations_policy: the decision is in module_utils/_migrations_policy.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.bluegreen.dbfix.plugins.module_utils._migrations_policy import (
    PolicyError,
    phase1_migrations_policy,
)


def _policy(requested, linked=False, peer_linked=False):
    try:
        return phase1_migrations_policy(requested, linked, peer_linked)[0]
    except PolicyError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """The policy phase 1's migrations run with."""

    def filters(self):
        return {'phase1_migrations_policy': _policy}
