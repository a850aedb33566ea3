# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error class of the collection's modules.

A module raises :class:`DbfixError` for a refusal or a failure whose message is ready for ``fail_json``: it names
the path, what was found and what to do. Subclasses exist only where a caller must tell a kind apart
(e.g. ``_dotenv.DotenvError``, which dotenv_set rewrites with the file's path).
"""

from __future__ import annotations


class DbfixError(Exception):
    """An error whose message is ready for ``fail_json``; ``details`` are extra result keys, if any."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details
