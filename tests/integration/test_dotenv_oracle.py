# SPDX-License-Identifier: GPL-3.0-or-later
"""dotenv_set against the real npm packages: dotenv 16.6.1, 17.4.1 and 18.0.10.

tests/integration/node/dotenv_oracle.js parses file bytes with each package (and
18's opt-in fast parser) and prints the result as JSON. Many files go through one
Node call, so hundreds of values are checked in about a second.

* corpus: hard values x file shapes (LF, CRLF, no final newline, export, comments,
  duplicates); every written file must read back as the value plus every other
  key unchanged, in all parsers; every refusal must leave the file byte-identical.
* the Python port of the parser must agree with Node on random and hostile files,
  since every edit is verified with it.
* hypothesis: any string is either read back exactly by all parsers or refused,
  with the file on disk unchanged (through the module itself).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import shutil
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _dotenv as d
from ansible_collections.bluegreen.dbfix.plugins.modules import dotenv_set

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORACLE = os.path.join(HERE, 'node', 'dotenv_oracle.js')
TOOLS = os.path.join(ROOT, 'tests', 'tools', 'node_modules')
PARSERS = ('16', '17', '18', '18fast')


@pytest.fixture(autouse=True)
def _needs_node_and_dotenv():
    """A missing tool fails the test (it never skips): install with make node-tools."""
    assert shutil.which('node'), 'node is not on PATH (make node-tools)'
    missing = [v for v in (16, 17, 18) if not os.path.isdir(os.path.join(TOOLS, 'dotenv%d' % v))]
    assert not missing, 'dotenv %s missing under %s (make node-tools)' % (missing, TOOLS)


def oracle(blobs):
    """Parse each byte string with every dotenv; returns one dict per blob: {parser: {key: value}}."""
    payload = json.dumps([base64.b64encode(b).decode() for b in blobs])
    proc = subprocess.run(['node', ORACLE, TOOLS], input=payload, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(proc.stdout)


def run_module(args, check=False):
    """Run dotenv_set in-process through the real exit_json/fail_json (so no_log masking applies)."""
    args = dict(args, _ansible_check_mode=check, _ansible_diff=True)
    buf = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        dotenv_set.main()
    return json.loads(buf.getvalue())


# Values chosen to hit every rule of the dotenv grammar.
HARD_VALUES = [
    '', ' ', 'plain', 'a b', '  lead', 'trail  ', "it's", "'", '"', '`', 'say "hi"', 'back`tick', '\'"`',
    "'single'", '"double"', '`tick`', "'unbalanced", 'unbalanced"', '#', 'a#b', 'a #b', '# lead', 'x # y',
    '\\n', '\\r', 'a\\nb', '\\\\n', 'x\\', '\\', "\\'", '\\"', 'a\\', "a'\\", 'l1\nl2', 'l1\r\nl2', '\n', 'lead\n',
    'trail\n', 'cr\r', '\r', 'tab\there', '\t', '$HOME', '${A}', '$(whoami)', 'é ü ß', '😀', '中文', '=', 'a=b',
    '==', ':', 'k: v', 'export X=1', 'X=1\nY=2', '\u2028', 'a\u2028b', '\u00a0nbsp\u00a0', '\ufeffbom', "'\n'",
    '"\n"', '`\n`', 'a"\n"b', "x'y'z", '"a"b', "'a'b", '`a`b', 'tauri://localhost,https://tauri.localhost,http://localhost:1420',
    'postgres://user:p@ss#w0rd@host/db?x=1&y=2', '-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n', ' "x" ',
    "' x '", 'a\'#"\\n', 'it\'s a "#" \\n', 'x\\nb\r', 'nul\0byte',
]

BASES = [
    b'',
    b'# settings\nexport A=1\nB="two"   # note\n#KEY=commented\n\nC=\'3\'\n',
    b'# settings\r\nexport A=1\r\nB="two"   # note\r\n#KEY=commented\r\n\r\nC=\'3\'\r\n',
    b'A=1\nB=2',                                  # no final newline
    b'KEY=old\nA=1\nexport KEY="dup" # second\nB=`multi\nline`\n',
    b'export KEY=old\n',
    b'KEY=\nNEXT=1\n',
    b'\xef\xbb\xbfA=bom\n',
]


def _written(values, bases=None):
    """Edit every base with every value; returns [(value, base, new_bytes)] and [(value, base)] refused."""
    written, refused = [], []
    for v in values:
        for b in BASES if bases is None else bases:
            text = b.decode('utf-8', 'surrogateescape')
            try:
                new, _keys = d.edit(text, {'KEY': v})
            except d.DotenvError:
                refused.append((v, b))
                continue
            written.append((v, b, new.encode('utf-8', 'surrogateescape')))
    return written, refused


def _check_against_oracle(written):
    results = oracle([w[2] for w in written] + [w[1] for w in written])
    n = len(written)
    bad = []
    for i, (v, b, new) in enumerate(written):
        before, after = results[n + i], results[i]
        for parser in PARSERS:
            want = dict(before[parser])
            want['KEY'] = v
            if after[parser] != want:
                bad.append((parser, v, b, new, after[parser], want))
    return bad


def test_corpus_reads_back_exactly_in_every_dotenv():
    written, refused = _written(HARD_VALUES)
    bad = _check_against_oracle(written)
    assert not bad, bad[:5]
    # the corpus must exercise both outcomes, and every written style
    assert written and refused
    refused_values = {v for v, _base in refused}
    assert refused_values <= {'x\\nb\r', 'nul\0byte'}, refused_values
    styles = set()
    for _v, _b, new in written:
        line = [ln for ln in new.decode('utf-8', 'surrogateescape').splitlines() if ln.startswith('KEY=')]
        styles.update(ln[4:5] for ln in line)
    assert {"'", '"', '`'} <= styles


def test_plain_values_stay_unquoted_and_other_lines_untouched():
    base = BASES[2]
    new, keys = d.edit(base.decode(), {'KEY': 'tauri://localhost,https://tauri.localhost'})
    assert new.encode() == base + b'KEY=tauri://localhost,https://tauri.localhost\r\n'
    assert keys == ['KEY']


def _random_file(rng):
    parts = ['A', 'B', 'KEY', '=', '=', ' ', '\t', '\n', '\n', '\r\n', '\r', '#', '"', "'", '`', '\\', 'n', 'r',
             'export ', ':', ': ', '\u2028', '\u00a0', 'x', '.', '-', '$', 'é']
    return ''.join(rng.choice(parts) for _i in range(rng.randint(0, 40)))


def test_python_port_agrees_with_node_on_hostile_files():
    rng = random.Random(20261125)
    files = [_random_file(rng) for _i in range(3000)] + [b.decode('utf-8') for b in BASES]
    results = oracle([f.encode('utf-8') for f in files])
    mismatches = []
    for f, r in zip(files, results, strict=True):
        mine = d.parse(f)
        for parser in PARSERS:
            if r[parser] != mine:
                mismatches.append((parser, f, r[parser], mine))
    assert not mismatches, mismatches[:5]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(min_size=0, max_size=24), min_size=1, max_size=30))
def test_property_any_string_read_back_or_refused(values):
    written, refused = _written(values, bases=[BASES[1], BASES[2], BASES[4]])
    assert not _check_against_oracle(written)
    for v, _b in refused:
        # only values no syntax carries may be refused
        assert '\0' in v or '\r' in v, repr(v)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(alphabet=st.sampled_from(list('ab \'"`#\\nr\r\n\0$=')), max_size=12), st.text(max_size=12)))
def test_property_through_the_module_file_unchanged_on_refusal(tmp_path_factory, value):
    path = tmp_path_factory.mktemp('prop') / '.env'
    original = BASES[2]
    path.write_bytes(original)
    os.chmod(path, 0o600)
    res = run_module({'path': str(path), 'key': 'KEY', 'value': value})
    data = path.read_bytes()
    if res.get('failed'):
        assert data == original
        assert 'left unchanged' in res['msg']
    else:
        parsed = oracle([data])[0]
        for parser in PARSERS:
            assert parsed[parser]['KEY'] == value
            assert {k: v for k, v in parsed[parser].items() if k != 'KEY'} == {'A': '1', 'B': 'two', 'C': '3'}
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_edits_of_hostile_files_read_back_or_are_refused():
    """Random odd files (unterminated quotes, U+2028, CR, duplicates) x set/unset: Node must read
    exactly the intended mapping whenever the editor accepts, and every refusal is a DotenvError."""
    rng = random.Random(4242)
    cases = []
    for _i in range(1500):
        text = _random_file(rng)
        if rng.random() < 0.5:
            cases.append((text, {'KEY': rng.choice(HARD_VALUES[:-1])}, []))
        else:
            cases.append((text, {}, ['KEY', 'A']))
    accepted = []
    refusals = 0
    for text, sets, unsets in cases:
        try:
            new, _keys = d.edit(text, sets, unsets)
        except d.DotenvError:
            refusals += 1
            continue
        accepted.append((text, sets, unsets, new))
    results = oracle([c[0].encode() for c in accepted] + [c[3].encode() for c in accepted])
    n = len(accepted)
    bad = []
    for i, (text, sets, unsets, new) in enumerate(accepted):
        for parser in PARSERS:
            want = dict(results[i][parser])
            for k in unsets:
                want.pop(k, None)
            want.update(sets)
            if results[n + i][parser] != want:
                bad.append((parser, text, sets, unsets, new))
    assert not bad, bad[:3]
    assert refusals < len(cases) // 10, refusals       # odd files are mostly still editable
    assert accepted, "nothing was accepted"


SPECIAL_KEYS = sorted(d.DROPPED_KEYS | d.SHADOWING_KEYS)

# What the app gets from each dotenv: the parsed keys, whether the inherited members still work, and what lands
# in a process environment.
MEMBERS_JS = r"""
const path = require('path')
const base = process.argv[1]
const buf = Buffer.from(process.argv[2], 'base64')
const out = {}
for (const v of ['16', '17', '18']) {
  const dotenv = require(path.join(base, 'dotenv' + v))
  const parsed = dotenv.parse(buf)
  const env = {}
  dotenv.populate(env, parsed)
  out[v] = {
    keys: Object.keys(parsed),
    proto_is_object_prototype: Object.getPrototypeOf(parsed) === Object.prototype,
    hasOwnProperty_works: typeof parsed.hasOwnProperty === 'function',
    constructor_is_Object: parsed.constructor === Object,
    env_keys: Object.keys(env),
  }
}
process.stdout.write(JSON.stringify(out))
"""


def test_special_keys_behave_in_dotenv_as_the_module_assumes(tmp_path):
    """dotenv 16/17/18 really drop __proto__ (silently: no key, prototype unchanged) and really let
    constructor/hasOwnProperty/... replace the inherited members; the port parses like them and the module refuses
    to set any of these names, leaving the file byte-identical."""
    text = ''.join('%s=v_%s\n' % (k, k) for k in SPECIAL_KEYS) + 'A=1\n'
    proc = subprocess.run(['node', '-e', MEMBERS_JS, TOOLS, base64.b64encode(text.encode()).decode()],
                          capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(proc.stdout)
    kept = [k for k in SPECIAL_KEYS if k not in d.DROPPED_KEYS] + ['A']
    for v in ('16', '17', '18'):
        assert sorted(seen[v]['keys']) == sorted(kept), seen[v]
        assert '__proto__' not in seen[v]['env_keys']
        assert seen[v]['proto_is_object_prototype']          # __proto__=... changed nothing
        assert not seen[v]['hasOwnProperty_works']           # ... but hasOwnProperty=... broke the member
        assert not seen[v]['constructor_is_Object']
    parsed = oracle([text.encode()])[0]
    for parser in PARSERS:
        assert parsed[parser] == d.parse(text), parser       # the port drops exactly what dotenv drops
    env = tmp_path / '.env'
    env.write_bytes(b'A=1\n')
    os.chmod(env, 0o600)
    for key in SPECIAL_KEYS:
        res = run_module({'path': str(env), 'key': key, 'value': 'x'})
        assert res.get('failed') and repr(key) in res['msg'] and 'refused' in res['msg'], res
        assert env.read_bytes() == b'A=1\n'
