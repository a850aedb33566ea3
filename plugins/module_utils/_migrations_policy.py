# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which sqlite_migrate policy phase 1's migrations run with. Plain functions, stdlib only, unit-tested.

While both colors of a pair run on one shared database (phase 2 done; phase 1 run again for a new release), every
migration is live for the color still running the old release at once: only expansions are safe (policy expand).
Before that, each color migrates its own database (policy any).
"""

from __future__ import annotations

POLICIES = ('auto', 'any', 'expand', 'contract')


class PolicyError(ValueError):
    """A requested policy that is none of POLICIES."""


def _flag(value):
    """A linked flag as Ansible hands it over: a bool, or a string/number from an inventory or a default."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ('true', 'yes', 'on', '1', 'y')


def phase1_migrations_policy(requested, linked, peer_linked):
    """The policy for phase 1's migrations and why: (policy, reason).

    ``requested`` is dbfix_phase1_migrations_policy (auto|any|expand|contract); ``linked``/``peer_linked`` say
    whether this host's and its pair partner's database path already lead to the pair's shared database
    (dbfix_state's ``db.linked``). An explicit policy is kept as it is. ``auto`` is ``expand`` when both colors run
    on the shared database, ``any`` otherwise.
    """
    req = str(requested if requested is not None else '').strip().lower() or 'auto'
    if req not in POLICIES:
        raise PolicyError('dbfix_phase1_migrations_policy is %r; use one of %s.' % (requested, ', '.join(POLICIES)))
    shared = _flag(linked) and _flag(peer_linked)
    if req != 'auto':
        return req, 'dbfix_phase1_migrations_policy=%s (set explicitly)' % req
    if shared:
        return 'expand', 'both colors run on the shared database, so a migration may only expand'
    return 'any', 'each color still has its own database'
