# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on a real local estate (real pm2, real Node apps, real SQLite): the rollback killed.

``ansible-playbook rollback.yml`` (of phase 2) SIGKILLed after each of its tasks in turn, from the state a
clean phase 2 left; a rerun must restore the pre-phase-2 state: each app on its own DB, integrity ok, no
committed row of the pre-phase-2 DBs lost.

How the kill works, which points are covered (``DBFIX_FAULT_POINTS``) and where the results go: see
``_fault_injection.py``.
"""
from __future__ import annotations

import signal
import time

import pytest
from _estate import H, fault_env
from _fault_injection import FAST, check_rolled_back, fault_estate, select, write_results


@pytest.fixture(scope="module")
def fx():
    """The estate after a clean phase 1 ('pre_phase2') and a clean phase 2 ('post_phase2'); the rollback's kill points enumerated."""
    with fault_estate("fault-rb", rollback_points=True) as fx:
        yield fx


def test_sigkill_after_each_rollback_task(fx):
    """From the fixed state, kill rollback.yml (phase2) after task k; a rerun restores the pre-phase-2 state."""
    estate, pre, points = fx["estate"], fx["pre"], fx["rb_points"]
    assert len(points) >= 3, f"rollback ran only {len(points)} tasks: {points}"
    rows, failures = [], []
    t0 = time.monotonic()
    extra = {**FAST, "dbfix_rollback_phase": "phase2"}
    for k in select(points):
        H.restore(estate, "post_phase2")
        killed = estate.playbook("rollback.yml", extra_vars=extra, env=fault_env("rollback", k), log_name=f"rb-kill{k}")
        rec = estate.playbook("rollback.yml", extra_vars=extra, log_name=f"rb-kill{k}-rerun")
        errs = check_rolled_back(estate, pre, None)[0]
        if killed.rc != -signal.SIGKILL:
            errs.insert(0, f"killed run ended with rc={killed.rc}, expected SIGKILL")
        if rec.rc != 0:
            errs.insert(0, f"rollback rerun rc={rec.rc}: {rec.tail(15)}")
        rows.append({"k": k, "task": points[k - 1]["name"], "killed_rc": killed.rc, "recovery": "rollback.yml", "rc": rec.rc,
                     "acked": "-", "result": "ok" if not errs else "FAIL: " + "; ".join(errs)[:300]})
        if errs:
            failures.append(f"k={k} after '{points[k - 1]['name']}': " + "\n    ".join(errs))
    write_results(f"Rollback (phase2) killed (SIGKILL of ansible-playbook), {len(rows)} of {len(points)} kill points", rows,
                  time.monotonic() - t0)
    assert not failures, "\n".join(failures)
