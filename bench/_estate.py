# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark harness is ``tests/harness/estate.py``: the tests own it and the benchmarks import it from there.

This file only loads it, so ``import _estate`` (bench scripts with ``bench/`` on ``sys.path``) and loading
``bench/_estate.py`` by path keep working; it defines nothing of its own.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "tests" / "harness" / "estate.py"
_NAME = "dbfix_harness_estate"


def _load():
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, HARNESS)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = mod
        spec.loader.exec_module(mod)
    return sys.modules[_NAME]


globals().update({k: v for k, v in vars(_load()).items() if not k.startswith("__")})
