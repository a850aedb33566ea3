# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on a real local estate (real pm2, real Node apps, real SQLite): phase 2 killed.

``ansible-playbook`` SIGKILLed after each task of phase 2 in turn. After every kill point the run is
recovered (site.yml rerun -> converged, or rollback.yml -> pre-phase-2 state) and checked: integrity ok,
no committed row of the pre-phase-2 DBs lost, no write the app acknowledged lost (a writer posts to BLUE
during the killed run).

How the kill works, which points are covered (``DBFIX_FAULT_POINTS``) and where the results go: see
``_fault_injection.py``.
"""
from __future__ import annotations

import signal
import time

import pytest
from _estate import H, fault_env
from _fault_injection import FAST, check_converged, check_rolled_back, fault_estate, select, write_results


@pytest.fixture(scope="module")
def fx():
    """The estate after a clean phase 1, snapshot 'pre_phase2'; the phase-2 kill points enumerated."""
    with fault_estate("fault-p2") as fx:
        yield fx


def test_sigkill_after_each_phase2_task(fx):
    """Kill after task k of phase 2; odd k -> rerun site.yml converges, even k -> rollback.yml restores. Nothing lost."""
    estate, pre, points = fx["estate"], fx["pre"], fx["p2_points"]
    assert len(points) >= 10, f"phase 2 ran only {len(points)} tasks: {points}"
    rows, failures = [], []
    t0 = time.monotonic()
    for i, k in enumerate(select(points)):
        H.restore(estate, "pre_phase2")
        writer = H.Writer(estate.host(1, "blue"), rate=10).start()
        killed = estate.playbook("phase2.yml", extra_vars=FAST, env=fault_env("phase2", k), log_name=f"p2-kill{k}")
        recovery = "rollback.yml" if i % 2 else "site.yml"
        if recovery == "site.yml":
            rec = estate.playbook("site.yml", extra_vars=FAST, log_name=f"p2-kill{k}-site")
            writer.stop()
            errs = check_converged(estate, pre, writer)
            extra = ""
        else:
            rec = estate.playbook("rollback.yml", extra_vars={**FAST, "dbfix_rollback_phase": "phase2"}, log_name=f"p2-kill{k}-rb")
            writer.stop()
            errs, only_shared = check_rolled_back(estate, pre, writer)
            extra = f" ({only_shared} acked writes remain only in the shared DB)" if only_shared else ""
        if killed.rc != -signal.SIGKILL:
            errs.insert(0, f"killed run ended with rc={killed.rc}, expected SIGKILL")
        if rec.rc != 0:
            errs.insert(0, f"{recovery} rc={rec.rc}: {rec.tail(15)}")
        rows.append({"k": k, "task": points[k - 1]["name"], "killed_rc": killed.rc, "recovery": recovery, "rc": rec.rc,
                     "acked": len(writer.acked), "result": ("ok" + extra) if not errs else "FAIL: " + "; ".join(errs)[:300]})
        if errs:
            failures.append(f"k={k} after '{points[k - 1]['name']}' -> {recovery}: " + "\n    ".join(errs))
    write_results(f"Phase 2 killed (SIGKILL of ansible-playbook), {len(rows)} of {len(points)} kill points", rows, time.monotonic() - t0)
    assert not failures, "\n".join(failures)
