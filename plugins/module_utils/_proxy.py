# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nginx side of a promotion: the upstream file of one pair, probes through the proxy, and the verdicts.

Stdlib only (runs on the managed host). The decisions - what the file says, whether a probe through the
proxy counts as a failure, whether a watch period passed - are plain functions with unit tests; the modules
``proxy_upstream`` and ``promote_gate`` only act on their answers.
"""

from __future__ import annotations

import http.client
import os
import re
import time

MARKER = '# dbfix-production: '
HEADER_COLOR = 'X-Dbfix-Production'
HEADER_UPSTREAM = 'X-Dbfix-Upstream'


def slug(name):
    """A pair name (often the shared DB path) as a file/upstream name: letters, digits, '_', '-', '.'."""
    s = re.sub(r'[^A-Za-z0-9_.-]+', '-', name or '').strip('-.')
    return s or 'pair'


def conf_name(name):
    return 'dbfix-%s.conf' % slug(name)


def upstream_name(name):
    return 'dbfix_' + re.sub(r'[^A-Za-z0-9_]', '_', slug(name))


def render(name, listen_address, listen_port, production, *, backup=None, keepalive=16,
           read_timeout=60, connect_timeout=2):
    """The whole upstream file for one pair.

    ``production`` and ``backup`` are dicts with ``color``, ``host``, ``port``. A backup (the old color, only
    while the new one is watched) gets the requests nginx could not pass to the production color (connection
    refused, timeout, 502, 503 - ``proxy_next_upstream``), so a candidate that stops answering during the watch
    costs no client request while the watch reverts.
    """
    up = upstream_name(name)
    lines = [
        '# Managed by bluegreen.dbfix (proxy_upstream). Do not edit: the next promotion rewrites it.',
        '# pair: %s' % name,
        MARKER + production['color'],
        'upstream %s {' % up,
        '    server %s:%d max_fails=0;' % (production['host'], int(production['port'])),
    ]
    if backup:
        lines.append('    server %s:%d backup max_fails=0;' % (backup['host'], int(backup['port'])))
    lines += [
        '    keepalive %d;' % int(keepalive),
        '}',
        '',
        'server {',
        '    listen %s:%d;' % (listen_address, int(listen_port)),
        '    location / {',
        '        proxy_pass http://%s;' % up,
        '        proxy_http_version 1.1;',
        '        proxy_set_header Connection "";',
        '        proxy_set_header Host $host;',
        '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
        '        proxy_set_header X-Forwarded-Proto $scheme;',
        '        proxy_connect_timeout %ds;' % int(connect_timeout),
        '        proxy_read_timeout %ds;' % int(read_timeout),
        '        proxy_next_upstream error timeout http_502 http_503;',
        '        proxy_next_upstream_tries 2;',
        '        add_header %s %s always;' % (HEADER_COLOR, production['color']),
        '        add_header %s $upstream_addr always;' % HEADER_UPSTREAM,
        '    }',
        '}',
        '',
    ]
    return '\n'.join(lines)


def production_of(text):
    """The color a managed upstream file routes to ('' when the text is not one of ours)."""
    for line in (text or '').splitlines():
        if line.startswith(MARKER):
            return line[len(MARKER):].strip()
    return ''


def nginx_cmd(executable, prefix=None, conf=None):
    cmd = [executable]
    if prefix:
        cmd += ['-p', prefix]
    if conf:
        cmd += ['-c', conf]
    return cmd


def write_atomic(path, data):
    """Write ``data`` (text) to ``path`` through a temp file in the same folder and a rename.

    The temp name does not end in ``.conf``, so an ``include conf.d/*.conf`` never reads a half-written file.
    An existing file keeps its mode and owner; a new one is 0644 (an nginx config holds no secret).
    """
    folder = os.path.dirname(path) or '.'
    st = os.stat(path) if os.path.exists(path) else None
    mode = (st.st_mode & 0o7777) if st else 0o644
    tmp = os.path.join(folder, '.%s.dbfix-tmp.%d' % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            if st is not None and os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.write(fd, data.encode('utf-8'))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def probe(host, port, path, timeout=2.0):
    """One GET through a fresh connection: dict(status, color, upstream, error, ms)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request('GET', path, headers={'Connection': 'close', 'User-Agent': 'bluegreen.dbfix-promote'})
        resp = conn.getresponse()
        resp.read()
        return dict(status=resp.status, color=resp.getheader(HEADER_COLOR, '') or '',
                    upstream=resp.getheader(HEADER_UPSTREAM, '') or '', error='',
                    ms=round((time.monotonic() - t0) * 1000, 1))
    except (OSError, http.client.HTTPException) as e:
        return dict(status=0, color='', upstream='', error='%s: %s' % (type(e).__name__, e),
                    ms=round((time.monotonic() - t0) * 1000, 1))
    finally:
        conn.close()


def sample_failure(sample, color, address, status=200):
    """Why one probe through the proxy during the watch counts as a failure ('' when it does not).

    A probe fails when it got no answer, the wrong status, an answer of another nginx generation than the
    promoted one (header ``X-Dbfix-Production``), or an answer that did not come from the promoted color alone
    (``$upstream_addr`` lists the backup when nginx had to fall back to it - the client saw no error, but
    the new color did not serve).
    """
    if sample.get('error'):
        return 'no answer through the proxy (%s)' % sample['error']
    if sample.get('status') != status:
        return 'HTTP %s through the proxy, expected %s' % (sample.get('status'), status)
    if sample.get('color') != color:
        return 'answered by the %r configuration, not %r' % (sample.get('color'), color)
    # nginx resolves a host name, so compare the port; several addresses mean it had to try the next server.
    ups = [u.strip() for u in re.split(r'[,:]\s', sample.get('upstream') or '') if u.strip()]
    if len(ups) > 1 or (ups and ups[0].rsplit(':', 1)[-1] != address.rsplit(':', 1)[-1]):
        return 'served by %s, not by %s alone (nginx fell back to the backup)' % (sample.get('upstream'), address)
    return ''


def watch(probe_fn, color, address, status, *, seconds, interval, switch_timeout, clock=time.monotonic, sleep=time.sleep):
    """Probe through the proxy after a reload; the verdict of the watch as a dict.

    First wait (at most ``switch_timeout`` s) until an answer carries the new configuration's color: after a
    graceful reload the old workers may still answer, which is not a failure. Then probe every ``interval`` s
    for ``seconds`` s; the first failing probe ends the watch with ``ok`` false.
    """
    result = dict(ok=False, probes=0, failures=0, switch_ms=None, seconds=seconds, first_failure='', max_ms=0.0)
    t0 = clock()
    deadline = t0 + switch_timeout
    while True:
        s = probe_fn()
        result['probes'] += 1
        result['max_ms'] = max(result['max_ms'], s.get('ms', 0.0))
        if not sample_failure(s, color, address, status):
            result['switch_ms'] = round((clock() - t0) * 1000, 1)
            break
        if s.get('error') or s.get('status') != status or s.get('color') == color:
            # No answer, a bad status, or the new generation fell back to the backup: a failure, not a slow switch.
            result['failures'] = 1
            result['first_failure'] = sample_failure(s, color, address, status)
            return result
        if clock() >= deadline:
            result['failures'] = 1
            result['first_failure'] = ('nginx did not switch to the new configuration within %ss: %s'
                                       % (switch_timeout, sample_failure(s, color, address, status)))
            return result
        sleep(min(interval, 0.05))
    end = clock() + seconds
    while clock() < end:
        sleep(interval)
        s = probe_fn()
        result['probes'] += 1
        result['max_ms'] = max(result['max_ms'], s.get('ms', 0.0))
        why = sample_failure(s, color, address, status)
        if why:
            result['failures'] += 1
            result['first_failure'] = why
            return result
    result['ok'] = True
    return result
