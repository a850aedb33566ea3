# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Gates of a promotion: may this color become production? Plain functions, stdlib only, unit-tested."""

from __future__ import annotations

import re

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _http


def http_get(url, timeout=5.0):
    """GET ``url`` on a fresh connection: dict(url, status, body, error, ms). The body is kept to 4 KiB for matching."""
    answer = _http.request(url, 'GET', timeout=timeout, user_agent='bluegreen.dbfix-promote')
    answer.pop('headers', None)
    return answer


def http_verdict(answer, status, body_regex=''):
    """'' when ``answer`` (from http_get) has ``status`` (and a body matching ``body_regex``), else why not."""
    if answer.get('error'):
        return 'no answer from %s (%s)' % (answer['url'], answer['error'])
    if answer.get('status') != status:
        return '%s answered HTTP %s, expected %s' % (answer['url'], answer.get('status'), status)
    if body_regex and not re.search(body_regex, answer.get('body') or ''):
        return '%s answered HTTP %s but its body does not match %r' % (answer['url'], status, body_regex)
    return ''


def pm2_verdict(info, name, stable_seconds):
    """'' when pm2 process ``name`` (in a pm2_info result) is online and has not restarted for ``stable_seconds``."""
    if not info:
        return 'no pm2 facts for %s were given' % name
    if not info.get('daemon_running', True):
        return 'no pm2 daemon runs for PM2_HOME %s, so %s is not running' % (info.get('pm2_home', '?'), name)
    proc = next((p for p in info.get('processes') or [] if p.get('name') == name), None)
    if proc is None:
        return 'pm2 does not know a process named %s' % name
    if proc.get('status') != 'online':
        return 'pm2 process %s is %s, not online' % (name, proc.get('status'))
    up = (proc.get('uptime_ms') or 0) / 1000.0
    if up < stable_seconds:
        return ('pm2 process %s (re)started %.1f s ago (restart counter %s); it must run %g s without a restart '
                'before it is promoted' % (name, up, proc.get('restarts'), stable_seconds))
    return ''


def schema_verdict(info, db):
    """'' when a sqlite_info result (with expect_columns) says the expected columns are all there."""
    if not info:
        return ''
    if info.get('schema_ok', True):
        return ''
    missing = info.get('missing_columns') or {}
    return 'the shared database %s lacks columns the candidate expects: %s' % (
        db, ', '.join('%s.%s' % (t, c) for t in sorted(missing) for c in missing[t]))


def gate(color, *, health, health_status, health_body_regex, smoke, smoke_status, pm2_info, pm2_name,
         stable_seconds, schema, db):
    """The verdict on a candidate: dict(passed, reasons, checks). Every gate is evaluated (an operator wants
    the whole list), and one failing gate refuses the promotion."""
    checks = {
        'health': http_verdict(health, health_status, health_body_regex),
        'schema': schema_verdict(schema, db),
        'pm2': pm2_verdict(pm2_info, pm2_name, stable_seconds),
        'smoke': '; '.join(w for w in (http_verdict(a, smoke_status) for a in smoke) if w),
    }
    reasons = ['%s: %s' % (k, v) for k, v in checks.items() if v]
    return dict(passed=not reasons, reasons=reasons,
                checks=dict((k, 'ok' if not v else v) for k, v in checks.items()), color=color)
