# SPDX-License-Identifier: GPL-3.0-or-later
"""The dotenv parser port and the editor, without Node.

Expected parse results below were taken from the real packages (dotenv 16.6.1,
17.4.1 and 18.0.10 agree on every one); tests/integration/test_dotenv_oracle.py
re-checks the port against them on every run.
"""
from __future__ import annotations

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _dotenv as d

# (file text, what dotenv.parse returns) -- read off the real packages
PARSE_CASES = [
    ('A=1\nB=2\n', {'A': '1', 'B': '2'}),
    ('export A=1', {'A': '1'}),
    ('A = spaced  \n', {'A': 'spaced'}),
    ('A: yaml-ish\n', {'A': 'yaml-ish'}),
    ('A=x # comment\n', {'A': 'x'}),
    ('A=x#not-a-comment-either\n', {'A': 'x'}),
    ('A="a#b" # c\n', {'A': 'a#b'}),
    ("A='x'y'\nB=2", {'A': "x'y", 'B': '2'}),
    ('A="a\\nb"\n', {'A': 'a\nb'}),
    ("A='a\\nb'\n", {'A': 'a\\nb'}),
    ('A=`a\nb`\n', {'A': 'a\nb'}),
    ('A="line1\nline2"\n', {'A': 'line1\nline2'}),
    ('A=\n"q"', {'A': 'q'}),                        # an empty value swallows a quoted next line
    ('A=first\nA=second\n', {'A': 'second'}),      # the last definition wins
    ('#A=commented\n', {}),
    ('A=1\r\nB="x\r\ny"\r\n', {'A': '1', 'B': 'x\ny'}),
    ("A='it\\'s'", {'A': "it\\'s"}),              # no unescaping in single quotes
    ('A="abc"def\\n', {'A': '"abc"def\n'}),        # starts with " -> escapes expanded although not stripped
    ('A=a\u2028\'b\'', {'A': 'a\u2028b'}),           # U+2028 is a line terminator for JS ^ and $
    ('\ufeffA=bom', {'A': 'bom'}),
    ('A=', {'A': ''}),
    ('A', {}),
    ('__proto__=p\nA=1\n', {'A': '1'}),           # obj['__proto__'] = 'p' sets no key: dropped
    ('constructor=c\nprototype=x\n', {'constructor': 'c', 'prototype': 'x'}),
]


@pytest.mark.parametrize(('text', 'expected'), PARSE_CASES)
def test_parse_matches_dotenv(text, expected):
    assert d.parse(text) == expected


BASE = '# app settings\nexport A=1\nB="two"   # note\n#KEY=commented-out\n\nC=\'3\'\n'


def test_new_key_appended_rest_byte_identical():
    new, keys = d.edit(BASE, {'KEY': 'v'})
    assert keys == ['KEY']
    assert new == BASE + 'KEY=v\n'


def test_existing_key_rewritten_in_place_keeps_export_comment_and_quote_style():
    new, _keys = d.edit(BASE, {'A': 'x y', 'B': 'zz'})
    assert new == BASE.replace('export A=1', "export A='x y'").replace('B="two"', 'B="zz"')


def test_crlf_and_missing_final_newline_kept():
    text = 'A=1\r\nB=2'
    new, _keys = d.edit(text, {'C': 'line1\nline2'})
    assert new == "A=1\r\nB=2\r\nC='line1\r\nline2'"
    assert d.parse(new)['C'] == 'line1\nline2'


def test_commented_line_never_edited():
    new, _keys = d.edit('#KEY=old\n', {'KEY': 'new'})
    assert new == '#KEY=old\nKEY=new\n'
    new, keys = d.edit('#KEY=old\n', None, ['KEY'])
    assert new == '#KEY=old\n' and keys == []


def test_duplicates_leave_one_definition_at_the_effective_place():
    text = 'KEY=first\nA=1\nKEY="second" # wins\nB=2\n'
    new, keys = d.edit(text, {'KEY': 'third'})
    assert new == 'A=1\nKEY="third" # wins\nB=2\n'
    assert keys == ['KEY']
    # already the effective value: only the dead definition goes
    new, keys = d.edit(text, {'KEY': 'second'})
    assert new == 'A=1\nKEY="second" # wins\nB=2\n'
    assert keys == ['KEY']


def test_unchanged_value_changes_no_byte():
    text = "A='1'\r\nB=x"
    new, keys = d.edit(text, {'A': '1', 'B': 'x'})
    assert new == text and keys == []


def test_absent_removes_every_definition_and_only_them():
    text = 'export KEY=1\nA=2\nKEY="multi\nline"\n# KEY=3\n'
    new, keys = d.edit(text, None, ['KEY'])
    assert new == 'A=2\n# KEY=3\n' and keys == ['KEY']


@pytest.mark.parametrize('value', [
    '', 'plain', 'a b', ' lead', 'trail ', "it's", 'say "hi"', 'a#b', 'a #b', '\\n', 'l1\nl2', 'cr\r', '$HOME',
    'é 😀', 'a=b', '\'"', "'\"`\n", 'x\\', '\u2028', "'quoted'", '"dq"',
])
def test_written_values_read_back_exactly(value):
    for base in ('', BASE, BASE.replace('\n', '\r\n'), BASE.rstrip('\n'), 'KEY=old\nKEY=dup\n'):
        new, _keys = d.edit(base, {'KEY': value})
        want = d.parse(base)
        want['KEY'] = value
        assert d.parse(new) == want
        assert sum(1 for e in d.entries(new) if e.key == 'KEY') == 1


@pytest.mark.parametrize(('value', 'reason'), [
    ('a\\nb\r', 'carriage return'),             # CR needs double quotes, where \n would be expanded
    ('x\\r\r', 'carriage return'),            # literal backslash-r next to a real CR
    ('nul\0', 'NUL'),
])
def test_uncarriable_value_refused_without_value_in_message(value, reason):
    with pytest.raises(d.DotenvError) as err:
        d.edit(BASE, {'KEY': value})
    assert reason in str(err.value)
    assert value not in str(err.value)


@pytest.mark.parametrize('key', ['', 'has space', 'ÄPFEL', 'a=b', '#x'])
def test_bad_key_refused(key):
    with pytest.raises(d.DotenvError, match='not a name dotenv can read'):
        d.edit('', {key: 'v'})


def test_masked_hides_every_value_keeps_structure():
    m = d.masked(BASE + 'S="sec ret"\n', changed={'S'})
    assert 'two' not in m and 'sec ret' not in m and '1' not in m.replace('# app', '')
    assert 'export A=********\n' in m
    assert 'S=******** (changed)' in m
    assert '#KEY=commented-out' in m     # comments are not values


def test_existing_file_that_would_swallow_the_new_line_is_refused_or_handled():
    # an unterminated double quote swallows everything up to the next " in the file
    text = 'A="unterminated\nB=2\n'
    before = d.parse(text)
    try:
        new, _keys = d.edit(text, {'KEY': 'say "x"'})
    except d.DotenvError:
        return
    after = d.parse(new)
    assert after['KEY'] == 'say "x"'
    assert {k: v for k, v in after.items() if k != 'KEY'} == before


@pytest.mark.parametrize('key', sorted(d.DROPPED_KEYS | d.SHADOWING_KEYS))
def test_keys_dotenv_drops_or_that_shadow_object_members_cannot_be_set(key):
    with pytest.raises(d.DotenvError, match='is refused'):
        d.edit('A=1\n', {key: 'v'})
    assert d.edit('A=1\n%s=v\n' % key, {}, [key]) == ('A=1\n', [key])    # removing one is the cleanup


def test_similar_names_are_plain_keys():
    for key in ('__PROTO__', 'proto', 'CONSTRUCTOR', 'Prototype', 'tostring', '__proto', 'constructor_'):
        new, keys = d.edit('', {key: 'v'})
        assert d.parse(new) == {key: 'v'} and keys == [key]


def test_diff_view_shows_only_definitions():
    text = '# comment with secret=xyz\nexport A=1\nnot a dotenv line: here\nB="two words" # c\n\nE=\nK: v\n'
    assert d.diff_view(text) == 'export A=********\nB=********\nE=\nK=********\n'
    assert d.diff_view(text, changed={'E'}) == 'export A=********\nB=********\nE=******** (changed)\nK=********\n'
    assert d.diff_view(text, show_values=True) == 'export A=1\nB="two words"\nE=\nK=v\n'
    assert d.diff_view('') == ''
