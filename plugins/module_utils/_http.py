# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One HTTP request on a fresh connection, as data (stdlib only; the managed host needs nothing extra)."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

BODY_CAP = 4096


def request(url, method='GET', headers=None, timeout=5.0, user_agent='bluegreen.dbfix'):
    """``method`` ``url`` with ``headers``: dict(url, status, headers, body, error, ms); never raises.

    ``headers`` of the answer have lower-case names; the body is kept to 4 KiB (for matching and messages).
    ``status`` is 0 and ``error`` says why when there was no answer (refused, timed out, not an http(s) URL).
    """
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return dict(url=url, status=0, headers={}, body='', error='not an http(s) URL', ms=0.0)
    cls = http.client.HTTPSConnection if parts.scheme == 'https' else http.client.HTTPConnection
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    sent = {'Connection': 'close', 'User-Agent': user_agent}
    sent.update(headers or {})
    t0 = time.monotonic()

    def ms():
        return round((time.monotonic() - t0) * 1000, 1)

    try:
        conn = cls(parts.hostname, parts.port, timeout=max(0.001, float(timeout)))
    except (OSError, http.client.HTTPException, ValueError) as e:
        return dict(url=url, status=0, headers={}, body='', error='%s: %s' % (type(e).__name__, e), ms=ms())
    try:
        conn.request(method, path, headers=sent)
        resp = conn.getresponse()
        got = dict((k.lower(), v) for k, v in resp.getheaders())
        body = resp.read(BODY_CAP).decode('utf-8', 'replace')
        return dict(url=url, status=resp.status, headers=got, body=body, error='', ms=ms())
    except (OSError, http.client.HTTPException, ValueError) as e:
        return dict(url=url, status=0, headers={}, body='', error='%s: %s' % (type(e).__name__, e), ms=ms())
    finally:
        conn.close()
