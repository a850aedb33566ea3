# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ``ansible_collections.bluegreen.dbfix``.

`.collections/ansible_collections/bluegreen/dbfix` is a committed symlink to the
repository root, so tests exercise the working tree, never an installed copy.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
