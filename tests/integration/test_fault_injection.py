# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on a real local estate (real pm2, real Node apps, real SQLite).

* A DB locked by another process (``BEGIN EXCLUSIVE``, held longer than the busy
  timeout) during phase 1 and during phase 2: clear failure, DB files unchanged,
  apps still serving.
* The app failing to start after the switch (its port taken by another
  process): phase 2 rolls back by itself.
* A row landing in the other color after the analysis: its quiet re-check refuses
  before the base is touched.
* GREEN as the base (it holds every row of BLUE): GREEN seeds first, BLUE's window is one step.
* A full disk (a real tmpfs filled to its last block) where phase 2 writes its
  backups: clear failure before any switch, no partial file, nothing changed.
* pm2's daemon SIGKILLed in the middle of phase 2: a rerun converges.

The SIGKILL sweeps of ``ansible-playbook`` (after each task of phase 2, after each task of the
phase-2 rollback) are in ``test_fault_injection_phase2.py`` and ``test_fault_injection_rollback.py``:
separate files, so pytest-xdist (``--dist loadfile``) runs them on other workers at the same time as
this one; shared parts (checks, lock holder, estate set-up): ``_fault_injection.py``.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from _estate import H, fault_env
from _fault_injection import FAST, Locker, app_files, check_converged, fault_estate

from ansible_collections.bluegreen.dbfix.tests._fsfaults import fill, tmpfs


@pytest.fixture(scope="module")
def fx():
    """The estate after a clean phase 1, snapshot 'pre_phase2'; the phase-2 kill points enumerated."""
    with fault_estate("fault") as fx:
        yield fx


def test_locked_db_during_phase1_fails_clearly_and_changes_nothing(fx):
    estate = fx["estate"]
    H.restore(estate, "pristine")
    green = estate.host(1, "green")  # GREEN needs migration 002: phase 1 must write to it
    before = app_files(estate)
    with Locker(green.db_path) as lock:
        run = estate.playbook("phase1.yml", extra_vars=FAST, log_name="phase1-locked")
        after = app_files(estate)
        out = run.text()
    assert run.rc != 0, "phase 1 succeeded although GREEN's DB was locked by another process"
    assert str(green.db_path) in out, "the failure does not name the locked DB"
    assert any(w in out.lower() for w in ("locked", "busy")), "the failure does not say the DB is locked/busy"
    assert after == before, f"files changed although phase 1 failed: {before} -> {after}"
    assert lock.proc.returncode is not None
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        assert not h.db_path.is_symlink()


def test_locked_db_during_phase2_fails_clearly_and_changes_nothing(fx):
    estate = fx["estate"]
    H.restore(estate, "pre_phase2")
    blue = estate.host(1, "blue")
    before = app_files(estate)
    with Locker(blue.db_path) as lock:
        pid = lock.proc.pid
        run = estate.playbook("phase2.yml", extra_vars=FAST, log_name="phase2-locked")
        out = run.text()
        after = app_files(estate)
    assert run.rc != 0, "phase 2 switched although BLUE's DB was held by another process"
    assert str(blue.db_path) in out, "the failure does not name the DB"
    assert str(pid) in out, f"the failure does not name the process holding the DB (pid {pid})"
    assert after == before, f"files changed although phase 2 failed: {before} -> {after}"
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        status, body = h.health()
        assert status == 200 and body["db"] == str(h.db_path), f"{h.name} not back on its own DB: {status} {body}"


# --------------------------------------------------------------------------- a row lands in the other color after the analysis


def test_row_landing_in_the_other_color_after_the_analysis_refuses_and_blue_keeps_serving(fx, tmp_path):
    """GREEN's app (the color that is not the base) takes a new row after phase 2's backups and plan, right when
    its quiesce starts: the quiet re-check finds a row the base's copy lacks and refuses, naming the table. GREEN
    goes first, so BLUE (the base) is never stopped (same pid), nothing is linked, and GREEN is
    started again on its own DB, which still holds the new row."""
    estate = fx["estate"]
    H.restore(estate, "pre_phase2")
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    before = app_files(estate)
    pid_before = {p["name"]: p["pid"] for p in estate.pm2_jlist()}
    note = "landed-after-the-analysis"
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).resolve().parent / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "dbfix_fault",
        "DBFIX_FAULT_ACTION": f"sql:{green.db_path}",
        "DBFIX_FAULT_SQL": ("INSERT INTO time_entries (user_id, started_at, minutes, note, created_at) "
                            f"VALUES (1, '2026-12-01T07:00:00Z', 5, '{note}', '2026-12-01T07:00:00Z')"),
        "DBFIX_FAULT_AT_TASK": "Quiesce GREEN",
        "DBFIX_FAULT_TRACE": str(tmp_path / "trace.jsonl"),
    }
    run = estate.playbook("phase2.yml", extra_vars=FAST, env=env, log_name="phase2-landed")
    out = run.text()
    assert '"fault": "sql"' in (tmp_path / "trace.jsonl").read_text(encoding="utf-8"), f"the row was never written: {run.tail()}"
    assert run.rc != 0, "phase 2 switched although GREEN took a row the base's copy lacks"
    assert "time_entries" in out and "would lose them" in out, f"the refusal does not name the table:\n{run.tail()}"
    after = app_files(estate)
    assert after[blue.name] == before[blue.name], f"BLUE's files changed: {before} -> {after}"
    assert after[green.name]["env"] == before[green.name]["env"], f"GREEN's .env changed: {before} -> {after}"
    assert not blue.db_path.is_symlink() and not green.db_path.is_symlink()
    assert note in H.notes_in(green.db_path, note), "GREEN's own DB lost the row it took"
    pid_after = {p["name"]: p["pid"] for p in estate.pm2_jlist()}
    assert pid_after[blue.pm2_name] == pid_before[blue.pm2_name], "BLUE was stopped although the other color refused first"
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        status, body = h.health()
        assert status == 200 and body["db"] == str(h.db_path), f"{h.name} not back on its own DB: {status} {body}"


def test_green_as_base_blue_switched_in_one_step(fx):
    """GREEN holds every row of BLUE and one more, so GREEN is the base (as in the incident). GREEN is quiesced
    first (stopped, seeds the shared DB, links) while BLUE serves; BLUE's whole window - stop, re-check against
    GREEN's copy, link, start, proof - is ONE task; GREEN starts last. Both end on the shared DB with every row."""
    estate = fx["estate"]
    H.restore(estate, "pre_phase2")
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    estate.pm2("stop", green.pm2_name)
    src = sqlite3.connect(f"file:{blue.db_path}?mode=ro", uri=True)
    dst = sqlite3.connect(green.db_path)
    try:
        src.backup(dst)
        with dst:
            dst.execute("INSERT INTO time_entries (user_id, started_at, minutes, note, created_at) "
                        "VALUES (1, '2026-12-01T07:00:00Z', 5, 'only-in-green', '2026-12-01T07:00:00Z')")
    finally:
        src.close()
        dst.close()
    estate.pm2("restart", green.pm2_name)
    estate.wait_healthy(timeout=30)
    blue_rows = H.table_rows(blue.db_path, "time_entries")
    run = estate.playbook("phase2.yml", extra_vars=FAST, log_name="phase2-green-base")
    assert run.rc == 0, run.tail(30)
    report = json.loads(sorted((estate.root / "reports").glob("*-phase2.json"))[-1].read_text())
    p2 = {h: report["hosts"][h]["phase2"] for h in (blue.name, green.name)}
    assert p2[blue.name]["plan"]["base"] == "green", p2[blue.name]["plan"]
    assert any(s.startswith("sqlite_backup: seed") for s in p2[green.name]["steps"]), p2[green.name]["steps"]
    blue_steps = p2[blue.name]["steps"]
    # BLUE: stop, re-check against GREEN's copy, link, start and proof in its one switch step
    for word in ("pm2_service: stop", "sqlite_info: re-check", "shared_db_link: link", "pm2_service: start", "pm2_info: see which files"):
        assert any(s.startswith(word) for s in blue_steps), (word, blue_steps)
    shared = Path(os.path.realpath(blue.db_path))
    assert shared == Path(os.path.realpath(green.db_path)) != blue.db_path
    assert blue_rows <= H.table_rows(shared, "time_entries")
    assert H.notes_in(shared, "only-in-green") == {"only-in-green"}
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        status, body = h.health()
        assert status == 200 and body["db"] in (str(h.db_path), str(shared)), f"{h.name}: {status} {body}"


# --------------------------------------------------------------------------- full disk during a backup


def test_full_disk_during_phase2_backup_fails_clearly_and_changes_nothing(fx, tmp_path):
    """Phase 2's backups go to a real tmpfs filled to its last block: the run fails naming the folder and the
    full disk before anything is switched, no partial backup is left, DBs and .env are as before and both apps
    keep serving their own DBs."""
    estate = fx["estate"]
    H.restore(estate, "pre_phase2")
    with tmpfs(tmp_path / "full", "size=256k") as full:
        fill(full)
        before = app_files(estate)
        run = estate.playbook("phase2.yml", extra_vars={**FAST, "dbfix_phase2_backup_dir": str(full)}, log_name="phase2-diskfull")
        out = run.text()
        after = app_files(estate)
        left = sorted(os.listdir(full))
    assert run.rc != 0, "phase 2 went on although its backups could not be written"
    assert "No space left on device" in out and str(full) in out, f"the failure does not name the full folder:\n{run.tail()}"
    assert left == ["filler"], f"a partial backup was left on the full disk: {left}"
    assert after == before, f"files changed although phase 2 failed: {before} -> {after}"
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        status, body = h.health()
        assert status == 200 and body["db"] == str(h.db_path), f"{h.name} not on its own DB: {status} {body}"


# --------------------------------------------------------------------------- app failing after the switch


def test_app_failing_to_start_after_switch_rolls_back(fx, tmp_path):
    """BLUE's port is taken by another process exactly when phase 2 starts BLUE on the shared DB.

    The squatter (a listening socket that never answers) lives in a helper process
    started by the test callback when the task that switches BLUE (stop, seed, link,
    start) begins; it binds the port the moment BLUE's stop frees it, and is stopped
    when the rescue begins, so the failure is real (EADDRINUSE, pm2
    restarts the crashing app, the health gate times out) and the rollback's
    restart can succeed.
    """
    estate = fx["estate"]
    H.restore(estate, "pre_phase2")
    blue = estate.host(1, "blue")
    before = app_files(estate)
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).resolve().parent / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "dbfix_fault",
        "DBFIX_FAULT_ACTION": f"squat:{blue.port}",
        "DBFIX_FAULT_AT_TASK": "Switch BLUE",
        "DBFIX_FAULT_RELEASE_AT": "phase 2 failed",
        "DBFIX_FAULT_TRACE": str(tmp_path / "trace.jsonl"),
    }
    run = estate.playbook("phase2.yml", extra_vars={**FAST, "dbfix_health_timeout": 8}, env=env, log_name="phase2-appfail")
    out = run.text()
    trace = (tmp_path / "trace.jsonl").read_text(encoding="utf-8")
    assert "squat" in trace, f"the fault was never injected (task not reached): {run.tail()}"
    assert run.rc != 0, "phase 2 reported success although BLUE could not start"
    assert "Rolled back" in out or "rolled back" in out, f"no rollback reported:\n{run.tail()}"
    after = app_files(estate)
    assert after == before, f"rollback did not restore the files: {before} -> {after}"
    estate.wait_healthy(timeout=30)
    for h in estate.hosts:
        status, body = h.health()
        assert status == 200 and body["db"] == str(h.db_path), f"{h.name} not back on its own DB: {status} {body}"


# --------------------------------------------------------------------------- pm2 daemon killed


def test_pm2_daemon_killed_mid_phase2_converges_on_rerun(fx):
    """SIGKILL pm2's daemon (its apps die with it) halfway through phase 2; rerunning site.yml converges.

    What happens for real: pm2's apps exit with their daemon, the next pm2 call
    starts an empty daemon, so the roles must be able to start an app pm2 no
    longer knows (pm2_service ``script``/``cwd``). Two pm2 CLIs started at the
    same moment with no daemon (the two colors' tasks run in parallel) race to
    spawn one and one of them can hang for good: reproduced with two concurrent
    ``pm2 jlist`` and no Ansible at all. The harness kills a run that hangs
    (300 s) and the test then fails with the log tail.
    """
    estate, pre, points = fx["estate"], fx["pre"], fx["p2_points"]
    H.restore(estate, "pre_phase2")
    k = next((i for i, p in enumerate(points, 1) if "quiesce" in p["name"].lower()), len(points) // 2)
    daemon = estate.pm2_daemon_pid()
    run = estate.playbook("phase2.yml", extra_vars=FAST, env=fault_env("phase2", k - 1, action="pm2-daemon"), log_name="phase2-pm2kill",
                          timeout=300)
    assert daemon is not None
    with pytest.raises(ProcessLookupError):
        os.kill(daemon, 0)
    rec = estate.playbook("site.yml", extra_vars=FAST, log_name="phase2-pm2kill-site", timeout=300)
    errs = check_converged(estate, pre, None)
    assert rec.rc == 0, f"site.yml rerun after the pm2 daemon died (first run rc={run.rc}) failed:\n{rec.tail(25)}"
    assert not errs, errs
