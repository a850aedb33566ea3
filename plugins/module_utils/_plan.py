# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phase 2's decisions, in one place: which database becomes the shared one, and what would be lost.

Every function here works on the ``comparison`` dict of ``_sqlite_compare.compare()``
("here" is the connection's main database, "there" the attached one) and is pure:
no files, no SQLite. ``shared_db_plan`` (the analysis) and ``shared_db_switch`` (the
re-check of a quiet database in the switch window) both call it, so the rule that
protects rows exists once and is unit-tested as a truth table.

The loss rule: a database used as the base *loses* a table of the other one when,
outside the ignored (bookkeeping) tables,

- the other has rows the base has not (``only_*`` of the other side > 0), or
- a row with the same key differs (``differ`` > 0), or
- the table exists only in the other database, or
- the table has columns only the other database has.
"""

from __future__ import annotations

SIDES = ('here', 'there')


def _other(side):
    return 'there' if side == 'here' else 'here'


def lost_if_base(comparison, base_side, ignore_tables=()):
    """Sorted tables whose data would be lost if ``base_side`` ('here' or 'there') were kept alone."""
    if base_side not in SIDES:
        raise ValueError('base_side must be here or there, not %r' % (base_side,))
    other = _other(base_side)
    ignore = set(ignore_tables or ())
    lost = set()
    for table, c in (comparison.get('tables') or {}).items():
        if table in ignore:
            continue
        if int(c.get('only_' + other) or 0) > 0 or int(c.get('differ') or 0) > 0:
            lost.add(table)
    lost.update(t for t in comparison.get('tables_only_' + other) or () if t not in ignore)
    lost.update(t for t in (comparison.get('columns_only_' + other) or {}) if t not in ignore)
    return sorted(lost)


def choose(comparison, base='auto', ignore_tables=(), allow_data_loss=False, sizes=None):
    """The plan for a pair, with blue as "here" and green as "there".

    ``base`` is auto, blue or green. Auto keeps the database that holds every row
    of the other (blue, production, on a tie or when neither does). The result says
    whether the choice is lossless, whether it is refused (lossy and
    ``allow_data_loss`` false) and why, in words an operator can act on.
    """
    if base not in ('auto', 'blue', 'green'):
        raise ValueError('base must be auto, blue or green, not %r' % (base,))
    loss = {'blue': lost_if_base(comparison, 'here', ignore_tables), 'green': lost_if_base(comparison, 'there', ignore_tables)}
    blue_all, green_all = not loss['blue'], not loss['green']
    if base != 'auto':
        chosen = base
    elif blue_all or not green_all:
        chosen = 'blue'
    else:
        chosen = 'green'
    lossless = not loss[chosen]
    refused = not lossless and not allow_data_loss
    sizes = dict(sizes or {})
    blue_size, green_size = int(sizes.get('blue') or 0), int(sizes.get('green') or 0)
    return {
        'base': chosen,
        'requested_base': base,
        'blue_holds_all': blue_all,
        'green_holds_all': green_all,
        'identical': blue_all and green_all,
        'loss': loss,
        'lost_tables': loss[chosen],
        'lossless': lossless,
        'allow_data_loss': bool(allow_data_loss),
        'refused': refused,
        'why': why(base, chosen, blue_all=blue_all, green_all=green_all, lossless=lossless, allow_data_loss=allow_data_loss,
                   lost=loss[chosen]),
        'size_rule_pick': 'blue' if blue_size >= green_size else 'green',
        'sizes': {'blue': blue_size, 'green': green_size},
        'ignored_tables': sorted(set(ignore_tables or ())),
        'tables': comparison.get('tables') or {},
        'tables_only_blue': list(comparison.get('tables_only_here') or []),
        'tables_only_green': list(comparison.get('tables_only_there') or []),
        'columns_only_blue': dict(comparison.get('columns_only_here') or {}),
        'columns_only_green': dict(comparison.get('columns_only_there') or {}),
    }


def why(requested, chosen, *, blue_all, green_all, lossless, allow_data_loss, lost):
    """One sentence: why ``chosen`` is the base, and what that costs."""
    flag = 'dbfix_phase2_allow_data_loss=%s' % ('true' if allow_data_loss else 'false')
    cost = ''
    if not lossless:
        cost = ('; it lacks rows of the other database in %s, kept only in the other .OLD file and the backups because %s'
                % (', '.join(lost), flag)) if allow_data_loss else \
            ('; it lacks rows of the other database in %s, so it is refused (%s)' % (', '.join(lost), flag))
    if requested != 'auto':
        return 'dbfix_phase2_base=%s (set by the operator)%s' % (chosen, cost)
    if blue_all and green_all:
        return 'both databases hold the same rows; blue (production) is kept'
    if blue_all:
        return 'blue holds every row of green'
    if green_all:
        return 'green holds every row of blue'
    return 'neither database holds every row of the other; blue (production) is the candidate%s' % cost


def refusal(plan, blue_name='blue', green_name='green', backups=()):
    """The message of a refused plan: per table counts, one-sided tables/columns, what to do."""
    kept = (' (backups: %s)' % ', '.join(b for b in backups if b)) if any(backups) else ''
    parts = ['Pair %s/%s: the base %s does not hold every row of the other database, so sharing it would lose data '
             '(tables: %s). Nothing was changed%s.' % (blue_name, green_name, plan['base'], ', '.join(plan['lost_tables']), kept)]
    parts.append('Per table (blue rows / green rows; only in blue / only in green / differing):')
    for t in sorted(plan['tables']):
        c = plan['tables'][t]
        parts.append('%s: %s/%s; %s/%s/%s%s%s.' % (t, c.get('rows_here'), c.get('rows_there'), c.get('only_here'), c.get('only_there'),
                                                   c.get('differ'), '' if c.get('primary_key') else ' (no primary key)',
                                                   ' (ignored)' if t in plan['ignored_tables'] else ''))
    for key, label in (('tables_only_blue', 'Tables only in blue'), ('tables_only_green', 'Tables only in green')):
        if plan[key]:
            parts.append('%s: %s.' % (label, ', '.join(plan[key])))
    for key, label in (('columns_only_blue', 'Columns only in blue'), ('columns_only_green', 'Columns only in green')):
        if plan[key]:
            parts.append('%s: %s.' % (label, '; '.join('%s(%s)' % (t, ', '.join(c)) for t, c in sorted(plan[key].items()))))
    parts.append('Merge the missing rows into one database first, pick the other base (dbfix_phase2_base), list bookkeeping tables '
                 'in dbfix_phase2_ignore_tables, or set dbfix_phase2_allow_data_loss=true to keep them only in the .OLD file and '
                 'the backups.')
    return ' '.join(parts)
