# SPDX-License-Identifier: GPL-3.0-or-later
"""Make molecule/resources/tests (shared checks) importable."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "resources", "tests"))
