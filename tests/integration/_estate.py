# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest helper: a real local blue/green estate in a temp dir.

The harness itself (estate, prober, writer, snapshots) is ``tests/harness/estate.py``,
loaded here under the name ``dbfix_harness_estate`` (as ``bench/_estate.py`` loads it) so the
benchmarks and the reliability tests measure with the same code. This file adds what tests need:
an estate built once per test module by the real estate builder
(``tests/estate/build.yml``) with free ports and its own PM2_HOME under a temp
dir, ``pm2 kill`` at teardown, and fast resets between cases (snapshots of the
pair dirs instead of a rebuild).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAULT_CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


def _load_harness():
    name = "dbfix_harness_estate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "harness" / "estate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


H = _load_harness()
Estate = H.Estate
Prober = H.Prober
Writer = H.Writer


def requirements_missing() -> str:
    """Why a real estate can't be built here ('' when it can)."""
    if not H.PM2.exists():
        return f"pm2 not installed at {H.PM2} (run make node-tools)"
    if not (ROOT / "tests" / "app" / "node_modules" / "better-sqlite3").exists():
        return "tests/app/node_modules missing (run make node-tools)"
    if not H.BUILD_PLAYBOOK.exists():
        return f"estate builder {H.BUILD_PLAYBOOK} missing"
    if shutil.which("node") is None:
        return "node not on PATH"
    return ""


def require(*playbooks: str) -> None:
    """Fail (not skip) when something the test needs is absent: make test must not pass by skipping."""
    why = requirements_missing()
    for pb in playbooks:
        if not (ROOT / "playbooks" / pb).exists():
            why = why or f"playbooks/{pb} missing"
    if why:
        pytest.fail(why)


def fault_env(role: str, after: int, action: str = "sigkill", trace: Path | None = None) -> dict:
    """Environment enabling tests/integration/callback_plugins/dbfix_fault.py."""
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(FAULT_CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "dbfix_fault",
        "DBFIX_FAULT_ROLE": role,
        "DBFIX_FAULT_AFTER": str(after) if after is not None else "",
        "DBFIX_FAULT_ACTION": action,
    }
    if trace is not None:
        env["DBFIX_FAULT_TRACE"] = str(trace)
    return env


def trace_env(role: str, trace: Path) -> dict:
    """Only record task starts (no fault): enumerate the kill points of a clean run."""
    env = fault_env(role, None, trace=trace)
    env["DBFIX_FAULT_AFTER"] = ""
    return env


def make_estate(prefix: str, pairs: int = 1) -> Estate:
    root = Path(tempfile.mkdtemp(prefix=f"dbfix-{prefix}-"))
    os.chmod(root, 0o755)
    return Estate(root, pairs=pairs)


@contextlib.contextmanager
def built(prefix: str, pairs: int = 1, playbooks: tuple[str, ...] = ()):
    """A built, healthy estate with snapshot 'pristine'; pm2 killed and the dir removed on exit
    (kept, with its logs, when DBFIX_KEEP_ESTATE is set). ``playbooks``: what the tests will run (see ``require``)."""
    require(*playbooks)
    estate = make_estate(prefix, pairs)
    try:
        estate.build()
        H.snapshot(estate, "pristine")
        yield estate
    finally:
        estate.kill()
        if os.environ.get("DBFIX_KEEP_ESTATE"):
            print(f"estate kept at {estate.root}")
        else:
            shutil.rmtree(estate.root, ignore_errors=True)


def db_state(estate: Estate) -> dict:
    """What a reset/rollback must bring back: per host, sha256 of its DB file and .env, and whether the DB is a link."""
    out = {}
    for h in estate.hosts:
        out[h.name] = {
            "db_is_link": h.db_path.is_symlink(),
            "db": H.sha256_file(h.db_path) if h.db_path.exists() else None,
            "env": H.sha256_file(h.env_file) if h.env_file.exists() else None,
        }
    return out


@pytest.fixture(scope="module")
def built_estate():
    """One pair, built and healthy, snapshot 'pristine' taken; torn down after the module (import it into a test module)."""
    with built("it") as estate:
        yield estate
