# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and edit ``.env`` files exactly the way Node's ``dotenv`` reads them.

The parser below is a faithful port of ``parse()`` in dotenv 16.x, 17.x and the
default ("classic") parser of 18.x; the three share the same ``LINE`` regular
expression and post-processing. JavaScript regex semantics are spelled out
explicitly because Python's differ: JS ``\\s`` is a fixed Unicode set, JS ``\\w``
is ASCII only, and with the ``m`` flag JS ``^``/``$``/``.`` treat U+2028 and
U+2029 as line terminators. The oracle tests (tests/integration/test_dotenv_oracle.py)
run the real npm packages against this port.

Editing never trusts the encoder alone: every edit is re-parsed, and it is only
accepted when the new file yields exactly the intended mapping (the key with the
new value, every other key unchanged). Candidate quotings are tried in order;
when none survives, ``DotenvError`` is raised and the caller leaves the file
alone.
"""

from __future__ import annotations

import re

from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError

# JS WhiteSpace + LineTerminator, the set matched by \s and removed by trim().
_JS_WS_CHARS = '\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'
_WS = '[' + _JS_WS_CHARS + ']'
_LT = '\n\r\u2028\u2029'
_BOL = '(?<![^' + _LT + '])'     # JS ^ with the m flag
_EOL = '(?![^' + _LT + '])'      # JS $ with the m flag
_DOT = '[^' + _LT + ']'          # JS .

# dotenv: /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/mg
# Only extra capture groups (export, separator) are added; they do not change what matches.
LINE = re.compile(
    _BOL + _WS + '*'
    + '(export' + _WS + '+)?'
    + '([A-Za-z0-9_.-]+)'
    + '((?:' + _WS + '*=' + _WS + '*?|:' + _WS + '+?))'
    + '(' + _WS + "*'(?:\\\\'|[^'])*'"
    + '|' + _WS + '*"(?:\\\\"|[^"])*"'
    + '|' + _WS + '*`(?:\\\\`|[^`])*`'
    + '|[^#\r\n]+)?'
    + _WS + '*'
    + '(?:#' + _DOT + '*)?'
    + _EOL
)
# value.replace(/^(['"`])([\s\S]*)\1$/mg, '$2')
_STRIP_QUOTES = re.compile(_BOL + '([\'"`])([\\s\\S]*)\\1' + _EOL)
_TRIM = re.compile('^' + _WS + '+|' + _WS + '+$')   # no MULTILINE: whole-string ends, as JS trim()

KEY_RE = re.compile(r'\A[A-Za-z0-9_.-]+\Z')

# dotenv builds its result in a plain object (``obj[key] = value``): ``__proto__`` there sets the object's prototype
# (to a string: ignored), so dotenv 16, 17 and 18 drop that definition without a word and the app never sees it.
DROPPED_KEYS = frozenset(('__proto__',))
# Names that dotenv keeps but that replace a member every JavaScript object inherits (``parsed.hasOwnProperty(...)``,
# ``String(parsed)``, ``parsed.constructor``) in dotenv's result and in whatever the app merges it into; together with
# ``prototype`` these are the names prototype-pollution attacks use. Refused as keys to set.
SHADOWING_KEYS = frozenset((
    'constructor', 'prototype', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toString',
    'toLocaleString', 'valueOf', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__',
))

# Unquoted values are only used for this conservative set, so the file stays
# readable by humans and by other .env readers (shells, docker compose).
_PLAIN_RE = re.compile(r'\A[A-Za-z0-9_./:,@%+=^~!*?\[\]{}-]+\Z')

MASK = '********'


class DotenvError(DbfixError):
    """An edit that cannot be made without changing what dotenv reads."""


def js_trim(s):
    return _TRIM.sub('', s)


def _normalise(text):
    """Return ``(norm, omap)``: dotenv's ``\\r\\n?`` -> ``\\n`` and a map back to ``text``.

    ``omap[i]`` is the index in ``text`` of ``norm[i]``; ``omap[len(norm)]`` is ``len(text)``.
    """
    if '\r' not in text:
        return text, None
    norm = []
    omap = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        omap.append(i)
        if c == '\r':
            norm.append('\n')
            i += 2 if i + 1 < n and text[i + 1] == '\n' else 1
        else:
            norm.append(c)
            i += 1
    omap.append(n)
    return ''.join(norm), omap


def _value_of(raw):
    value = js_trim(raw or '')
    maybe_quote = value[:1]
    value = _STRIP_QUOTES.sub(r'\2', value)
    if maybe_quote == '"':
        value = value.replace('\\n', '\n').replace('\\r', '\r')
    return value


class Entry:
    """One definition the dotenv regex matched, positions in the original text."""

    __slots__ = ('end', 'key', 'key_start', 'raw_end', 'raw_start', 'sep_end', 'start', 'value')

    def __init__(self, *, key, value, start, end, key_start, sep_end, raw_start, raw_end):
        self.key = key
        self.value = value
        self.start = start          # first non-blank char of the definition (``export`` or key)
        self.end = end              # end of the regex match
        self.key_start = key_start
        self.sep_end = sep_end      # after ``=`` (or ``: ``)
        self.raw_start = raw_start  # group 2 (value text incl. quotes), -1 when absent
        self.raw_end = raw_end


def entries(text):
    """All definitions in ``text`` (a ``str``) in file order, as dotenv's regex finds them."""
    norm, omap = _normalise(text)

    def o(i):
        return i if omap is None else omap[i]

    found = []
    for m in LINE.finditer(norm):
        first = m.start(1) if m.group(1) is not None else m.start(2)
        raw = m.group(4)
        found.append(Entry(
            key=m.group(2),
            value=_value_of(raw),
            start=o(first),
            end=o(m.end()),
            key_start=o(m.start(2)),
            sep_end=o(m.end(3)),
            raw_start=o(m.start(4)) if raw is not None else -1,
            raw_end=o(m.end(4)) if raw is not None else -1,
        ))
    return found


def parse(text):
    """``dotenv.parse()`` of ``text``: a dict, the last definition of a key wins; ``__proto__`` is dropped, as in JS."""
    result = {}
    for e in entries(text):
        if e.key not in DROPPED_KEYS:
            result[e.key] = e.value
    return result


def newline_of(text):
    """The file's line ending: CRLF when the file uses it, else LF."""
    return '\r\n' if '\r\n' in text else '\n'


_TERMINATORS = '\n\r\u2028\u2029'   # what JS ^/$ treat as line ends; dotenv definitions start after any of them


def _line_start(text, pos):
    return max(text.rfind(t, 0, pos) for t in _TERMINATORS) + 1


def _line_end_incl(text, pos):
    """Index just after the line terminator of the line containing ``pos``."""
    n = len(text)
    i = pos
    while i < n and text[i] not in _TERMINATORS:
        i += 1
    if i < n:
        i += 2 if text.startswith('\r\n', i) else 1
    return i


def _value_region(text, e):
    """``(start, end)`` of the value text to replace for entry ``e`` (quotes included, blanks excluded)."""
    if e.raw_start < 0:
        return e.sep_end, e.sep_end
    s, t = e.raw_start, e.raw_end
    ws = set(_expand_ws())
    while s < t and text[s] in ws:
        s += 1
    while t > s and text[t - 1] in ws:
        t -= 1
    if s == t:
        return e.sep_end, e.sep_end
    if any(c in '\r\n' for c in text[e.sep_end:s]):
        # the value starts on a later line (``KEY=`` followed by a quoted line): put it back on the key's line
        return e.sep_end, t
    return s, t


_WS_SET = None


def _expand_ws():
    global _WS_SET
    if _WS_SET is None:
        chars = set('\t\n\x0b\x0c\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff')
        chars.update(chr(c) for c in range(0x2000, 0x200b))
        _WS_SET = frozenset(chars)
    return _WS_SET


def quote_style(raw):
    """``'``, ``"``, `````` or ``''`` (unquoted) for an existing raw value."""
    raw = js_trim(raw or '')
    return raw[0] if raw[:1] in ('"', "'", '`') else ''


def candidates(value, nl='\n', prefer=None):
    """Encodings of ``value`` to try, best first. Raw newlines follow the file's style ``nl``."""
    out = []
    if value == '' or _PLAIN_RE.match(value):
        out.append(('', value))
    multi = value.replace('\n', nl)
    if '\r' not in value:
        out.append(("'", "'" + multi + "'"))
    out.append(('"', '"' + value.replace('\n', '\\n').replace('\r', '\\r') + '"'))
    if '\r' not in value:
        out.append(('`', '`' + multi + '`'))
        out.append(('"', '"' + multi + '"'))
    if prefer is not None:
        out.sort(key=lambda c: c[0] != prefer)   # stable: the preferred style first, else unchanged order
    seen = set()
    return [c for c in out if not (c[1] in seen or seen.add(c[1]))]


def why_refused(value):
    """Name the features of ``value`` that no dotenv quoting carries together (never the value)."""
    found = []
    if '\0' in value:
        found.append('a NUL character (environment variables cannot hold one)')
    if '\r' in value:
        found.append('a carriage return (only double quotes carry one, as \\r)')
    if '\\n' in value or '\\r' in value:
        found.append('a literal backslash-n or backslash-r (double quotes would turn it into a line break)')
    for q, name in (("'", 'single quote'), ('"', 'double quote'), ('`', 'backtick')):
        if q in value:
            found.append('a %s' % name)
    return ', '.join(found) or 'a combination of characters that the file around it makes ambiguous'


def check_key(key):
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise DotenvError("key %r is not a name dotenv can read: use only letters, digits, '_', '.' and '-'" % (key,))


def check_settable_key(key):
    """``check_key`` plus the names dotenv drops or that shadow JavaScript's object members (see above)."""
    check_key(key)
    if key in DROPPED_KEYS:
        raise DotenvError("key %r is refused: dotenv 16, 17 and 18 silently drop it (in JavaScript obj['__proto__'] = "
                          "value sets the object's prototype, not a key), so the app would never see it. Choose another "
                          "name" % (key,))
    if key in SHADOWING_KEYS:
        raise DotenvError("key %r is refused: it is the name of a member every JavaScript object has; as a dotenv key it "
                          "replaces that member in dotenv's parsed result and in anything the app merges it into (the "
                          "pattern of prototype-pollution attacks). Choose another name" % (key,))


def _expected(before, sets, unsets):
    exp = dict(before)
    for k in unsets:
        exp.pop(k, None)
    exp.update(sets)
    return exp


def _surrogate_free(value):
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def edit(text, sets=None, unsets=None):
    """Apply ``sets`` (``{key: value}``) and ``unsets`` (keys) to ``text``.

    Returns ``(new_text, changed_keys)``. Rules:

    * A key that is already defined exactly once with the wanted value is left
      untouched (no re-quoting), so a second run changes no byte.
    * With several definitions of a key, the last one (the one dotenv uses) is
      rewritten in place and the earlier ones are removed, so exactly one
      definition remains.
    * A new key is appended at the end, in the file's line-ending style; a file
      without a final newline keeps lacking it.
    * Commented-out lines are never touched: dotenv's regex does not match them.
    * Everything else is kept byte for byte.

    Raises ``DotenvError`` when a value cannot be written so that dotenv reads it
    back exactly, or when the existing file would be misread after the edit.
    """
    sets = dict(sets or {})
    unsets = list(unsets or [])
    for k in sets:
        check_settable_key(k)
    for k in unsets:
        check_key(k)
    for k, v in sets.items():
        if not isinstance(v, str):
            raise DotenvError('the value for %s must be a string' % k)
        if '\0' in v or not _surrogate_free(v):
            raise DotenvError('the value for %s cannot be written: it contains %s' % (
                k, 'a NUL character (environment variables cannot hold one)' if '\0' in v else 'text that is not valid Unicode'))
    before = parse(text)
    expected = _expected(before, sets, unsets)
    changed = []
    nl = newline_of(text)
    for key in unsets:
        defs = [e for e in entries(text) if e.key == key]
        if not defs:
            continue
        text = _delete(text, defs)
        changed.append(key)
    for key, value in sets.items():
        defs = [e for e in entries(text) if e.key == key]
        if len(defs) == 1 and defs[0].value == value:
            continue
        text = _set_one(text, key, value, defs, nl)
        changed.append(key)
    if changed and parse(text) != expected:
        raise DotenvError('removing %s would change how dotenv reads the rest of the file (definitions share lines in an '
                          'unusual way); edit the file by hand' % ', '.join(changed))
    return text, changed


def _delete(text, defs):
    for e in sorted(defs, key=lambda d: d.start, reverse=True):
        s = _line_start(text, e.start)
        end = e.raw_end if e.raw_end >= 0 else e.sep_end
        t = _line_end_incl(text, max(end - 1, e.sep_end - 1))
        text = text[:s] + text[t:]
    return text


def _set_one(text, key, value, defs, nl):
    before = parse(text)
    want = dict(before)
    want[key] = value
    if defs:
        base = _delete(text, defs[:-1]) if len(defs) > 1 else text
        last = [e for e in entries(base) if e.key == key][-1]
        if last.value == value and parse(base) == want and sum(1 for e in entries(base) if e.key == key) == 1:
            return base   # only duplicates to drop: keep the effective definition's bytes
        rs, re_ = _value_region(base, last)
        prefer = quote_style(base[last.raw_start:last.raw_end]) if last.raw_start >= 0 else ''

        def build(enc):
            return base[:rs] + enc + base[re_:]
    else:
        prefer = None
        if text == '':
            prefix = ''
            suffix = nl
        elif text.endswith(('\n', '\r')):
            prefix = text
            suffix = nl
        else:
            prefix = text + nl
            suffix = ''

        def build(enc):
            return prefix + key + '=' + enc + suffix
    for _style, enc in candidates(value, nl, prefer):
        new = build(enc)
        if parse(new) == want and sum(1 for e in entries(new) if e.key == key) == 1:
            return new
    raise DotenvError('the value for %s cannot be written so that dotenv 16, 17 and 18 read it back exactly: it contains %s'
                      % (key, why_refused(value)))


def masked(text, changed=()):
    """``text`` with every value replaced by a mask, for diffs that must not show secrets.

    Values of the keys in ``changed`` get a distinct mask so a diff still shows that they changed.
    """
    out = []
    pos = 0
    for e in entries(text):
        s, t = _value_region(text, e)
        if s == t and e.key not in changed:
            continue
        out.append(text[pos:s])
        out.append(MASK + ' (changed)' if e.key in changed else MASK)
        pos = t
    out.append(text[pos:])
    return ''.join(out)


def diff_view(text, changed=(), show_values=False):
    """What dotenv reads from ``text``, one definition a line, for diffs: ``[export ]KEY=value``.

    Nothing else of the file is shown: comments (often old, commented-out secrets) and lines dotenv does not read
    (a followed symlink may lead to a file that is not a ``.env`` at all) never reach a diff. Values are masked
    (changed keys with a distinct mask) unless ``show_values``; then they are shown as written in the file.
    """
    out = []
    for e in entries(text):
        s, t = _value_region(text, e)
        if show_values:
            value = text[s:t]
        elif e.key in changed:
            value = MASK + ' (changed)'
        else:
            value = MASK if s != t else ''
        export = 'export ' if e.start != e.key_start else ''
        out.append('%s%s=%s\n' % (export, e.key, value))
    return ''.join(out)
