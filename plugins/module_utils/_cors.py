# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Does an app's CORS answer what it should? The verdict on a set of preflight answers. Stdlib only, unit-tested."""

from __future__ import annotations

ALLOWED_STATUS = (200, 204)


def allow_origin(answer):
    """The Access-Control-Allow-Origin of an answer (from _http.request), stripped; '' when there is none."""
    return ((answer or {}).get('headers') or {}).get('access-control-allow-origin', '').strip()


def verdict(url, answers, allowed, foreign, ok_status=ALLOWED_STATUS):
    """The verdict on preflights to ``url``: ``answers`` maps each origin (every one of ``allowed`` and ``foreign``)
    to its answer. Each allowed origin must be answered with one of ``ok_status`` and echoed back exactly in
    Access-Control-Allow-Origin (a ``*`` does not count: browsers refuse it for credentialed requests). The foreign
    origin must be answered, and neither echoed nor ``*``.

    Returns dict(ok, problems, allowed={origin: allow-origin header}, foreign_refused).
    """
    problems = []
    seen = {}
    for origin in allowed:
        a = answers.get(origin) or {'error': 'not asked', 'status': 0}
        got = allow_origin(a)
        seen[origin] = got
        if a.get('error'):
            problems.append('no answer to the preflight from %s (%s)' % (origin, a['error']))
        elif a.get('status') not in ok_status:
            problems.append('the preflight from %s was answered HTTP %s, expected %s'
                            % (origin, a.get('status'), ' or '.join(str(s) for s in ok_status)))
        elif got != origin:
            problems.append('the preflight from %s was not allowed (Access-Control-Allow-Origin: %s)' % (origin, got or 'none'))
    f = answers.get(foreign) or {'error': 'not asked', 'status': 0}
    f_got = allow_origin(f)
    refused = not f.get('error') and f_got not in (foreign, '*')
    if f.get('error'):
        problems.append('no answer to the preflight from the foreign origin %s (%s)' % (foreign, f['error']))
    elif not refused:
        problems.append('the foreign origin %s was allowed (Access-Control-Allow-Origin: %s): the app lets origins through '
                        'that are not in its list' % (foreign, f_got))
    if problems:
        problems = ['%s: %s' % (url, p) for p in problems]
    return dict(ok=not problems, problems=problems, allowed=seen, foreign_refused=refused)
