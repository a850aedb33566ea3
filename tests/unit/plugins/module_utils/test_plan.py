# SPDX-License-Identifier: GPL-3.0-or-later
"""Truth table of phase 2's decisions (module_utils/_plan.py): the loss rule and the base choice.

The comparisons are built by hand in the shape ``_sqlite_compare.compare()`` returns (blue "here", green
"there"); tests/unit/plugins/modules/test_shared_db_plan.py runs the same rule on real SQLite files.
"""
from __future__ import annotations

import itertools

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _plan


def cmp(*, only_here=0, only_there=0, differ=0, table='t', tables_only_here=(), tables_only_there=(), cols_here=None, cols_there=None):
    return {
        'tables': {table: {'rows_here': 5 + only_here, 'rows_there': 5 + only_there, 'only_here': only_here, 'only_there': only_there,
                           'differ': differ, 'primary_key': ['id']}},
        'tables_only_here': list(tables_only_here), 'tables_only_there': list(tables_only_there),
        'columns_only_here': cols_here or {}, 'columns_only_there': cols_there or {},
    }


# (comparison, lost if blue is the base, lost if green is the base)
LOSS_CASES = [
    (cmp(), [], []),
    (cmp(only_here=2), [], ['t']),                       # blue has rows green lacks
    (cmp(only_there=1), ['t'], []),                      # green has rows blue lacks
    (cmp(differ=1), ['t'], ['t']),                       # a row with the same key differs: both lose
    (cmp(only_here=1, only_there=1), ['t'], ['t']),
    (cmp(tables_only_here=['x']), [], ['x']),            # a table only one side has
    (cmp(tables_only_there=['y']), ['y'], []),
    (cmp(cols_here={'users': ['position']}), [], ['users']),   # columns only one side has
    (cmp(cols_there={'users': ['position']}), ['users'], []),
]


@pytest.mark.parametrize(('comparison', 'lost_blue', 'lost_green'), LOSS_CASES)
def test_loss_rule(comparison, lost_blue, lost_green):
    assert _plan.lost_if_base(comparison, 'here') == lost_blue
    assert _plan.lost_if_base(comparison, 'there') == lost_green


@pytest.mark.parametrize(('comparison', 'lost_blue', 'lost_green'), LOSS_CASES)
def test_ignored_tables_never_count(comparison, lost_blue, lost_green):
    ignore = set(lost_blue) | set(lost_green) | {'t'}
    assert _plan.lost_if_base(comparison, 'here', ignore) == []
    assert _plan.lost_if_base(comparison, 'there', ignore) == []


def test_unknown_side_is_a_programming_error():
    with pytest.raises(ValueError):
        _plan.lost_if_base(cmp(), 'blue')
    with pytest.raises(ValueError):
        _plan.choose(cmp(), base='purple')


# Every combination of: blue holds all, green holds all, requested base, allow_data_loss.
# Expected: (base, lossless, refused).
def expected(blue_all, green_all, base, allow):
    chosen = base if base != 'auto' else ('blue' if blue_all or not green_all else 'green')
    lossless = blue_all if chosen == 'blue' else green_all
    return chosen, lossless, (not lossless) and not allow


def comparison_for(blue_all, green_all):
    return cmp(only_here=0 if green_all else 3, only_there=0 if blue_all else 4)


@pytest.mark.parametrize(('blue_all', 'green_all', 'base', 'allow'),
                         list(itertools.product([True, False], [True, False], ['auto', 'blue', 'green'], [False, True])))
def test_base_choice_truth_table(blue_all, green_all, base, allow):
    plan = _plan.choose(comparison_for(blue_all, green_all), base=base, allow_data_loss=allow, sizes={'blue': 1, 'green': 2})
    chosen, lossless, refused = expected(blue_all, green_all, base, allow)
    assert (plan['base'], plan['lossless'], plan['refused']) == (chosen, lossless, refused)
    assert plan['blue_holds_all'] is blue_all and plan['green_holds_all'] is green_all
    assert plan['identical'] is (blue_all and green_all)
    assert plan['lost_tables'] == ([] if lossless else ['t'])
    assert plan['size_rule_pick'] == 'green'
    # The reason never claims the flag is true when it is false (issue 11, class 10), and names it when it matters.
    if not allow:
        assert 'allow_data_loss=true' not in plan['why']
    if not lossless:
        assert ('dbfix_phase2_allow_data_loss=%s' % ('true' if allow else 'false')) in plan['why']
        assert 'refused' in plan['why'] if refused else 'kept only in' in plan['why']
    if base != 'auto':
        assert plan['why'].startswith('dbfix_phase2_base=%s (set by the operator)' % base)


@pytest.mark.parametrize(('blue_all', 'green_all', 'why'), [
    (True, True, 'both databases hold the same rows; blue (production) is kept'),
    (True, False, 'blue holds every row of green'),
    (False, True, 'green holds every row of blue'),
])
def test_why_of_a_lossless_auto_choice(blue_all, green_all, why):
    assert _plan.choose(comparison_for(blue_all, green_all))['why'] == why


def test_refusal_names_tables_counts_and_the_variables():
    plan = _plan.choose(cmp(only_here=1, only_there=2, differ=1, table='time_entries', cols_there={'users': ['position']}))
    msg = _plan.refusal(plan, 'blue-host', 'green-host', backups=('/b/blue.bak', '/b/green.bak'))
    assert 'would lose data' in msg and 'Nothing was changed' in msg and '/b/green.bak' in msg
    assert 'time_entries: 6/7; 1/2/1.' in msg
    assert 'Columns only in green: users(position).' in msg
    assert 'dbfix_phase2_allow_data_loss=true' in msg and 'dbfix_phase2_ignore_tables' in msg
