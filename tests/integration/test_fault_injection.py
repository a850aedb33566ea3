# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on a real local estate (real pm2, real Node apps, real SQLite).

* ``ansible-playbook`` SIGKILLed after each task of phase 2 in turn, and after
  each task of the phase-2 rollback. After every kill point the run is recovered
  (site.yml rerun -> converged, or rollback.yml -> pre-phase-2 state) and checked:
  integrity ok, no committed row of the pre-phase-2 DBs lost, no write the app
  acknowledged lost (a writer posts to BLUE during the killed run).
* A DB locked by another process (``BEGIN EXCLUSIVE``, held longer than the busy
  timeout) during phase 1 and during phase 2: clear failure, DB files unchanged,
  apps still serving.
* The app failing to start after the switch (its port taken by another
  process): phase 2 rolls back by itself.
* A full disk (a real tmpfs filled to its last block) where phase 2 writes its
  backups: clear failure before any switch, no partial file, nothing changed.
* pm2's daemon SIGKILLed in the middle of phase 2: a rerun converges.

The kill is exact: the test callback ``callback_plugins/dbfix_fault.py`` SIGKILLs
ansible-playbook itself when the next task is about to start after k tasks of
the role completed. Between kill points the estate is reset from a snapshot of
its pair dirs (apps stopped, files copied back, apps started), not rebuilt.

``DBFIX_FAULT_POINTS``: ``changes`` (default: after every task that changed
something in a clean run, and after every task while the apps are quiesced),
``all`` (every task; slow), or N (every N-th point). The covered kill points are written to
``bench/results/fault-injection.md``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _estate import H, built, db_state, fault_env, require, trace_env

from ansible_collections.bluegreen.dbfix.tests._fsfaults import fill, tmpfs

RESULTS = H.ROOT / "bench" / "results"
# Short timeouts keep the failure cases fast; the lock is held far longer than these.
FAST = {"dbfix_health_timeout": 15, "dbfix_busy_timeout": 1000}


# --------------------------------------------------------------------------- checks


def pre_rows(snapshot_dir: Path, estate) -> dict[str, dict[str, set]]:
    """{host: {table: rows}} of the DBs as they were in a snapshot (the committed rows that must survive)."""
    out = {}
    for h in estate.hosts:
        db = snapshot_dir / h.db_path.relative_to(estate.root)
        if db.is_symlink():
            db = snapshot_dir / Path(os.readlink(db)).relative_to(estate.root)
        tables = H.table_digest(db)
        out[h.name] = {t: (db, H.columns_of(db, t)) for t in tables}
    return out


def lost_rows(pre: dict, final_db: Path, hosts: list[str]) -> dict[str, int]:
    """Rows of the pre DBs (of ``hosts``) missing from ``final_db``, per table.

    Rows are compared whole, on the columns both sides have (GREEN's rows were
    written before ``users.position`` existed), except migration bookkeeping
    tables, compared on their key.
    """
    lost = {}
    final_tables = H.table_digest(final_db)
    for name in hosts:
        for table, (db, cols) in pre[name].items():
            if table not in final_tables:
                lost[f"{name}:{table}"] = -1
                continue
            final_cols = H.columns_of(final_db, table)
            common = [c for c in cols if c in final_cols]
            if table.endswith("migrations"):
                # Migration bookkeeping: each DB records when *it* applied a migration, so the
                # same migration has a different applied_at in BLUE and GREEN. What must survive
                # is the record of the migration, i.e. its key.
                common = [c for c in common if c in ("name", "version", "id")] or common
            missing = H.rows_by_columns(db, table, common) - H.rows_by_columns(final_db, table, common)
            if missing:
                lost[f"{name}:{table}"] = len(missing)
    return lost


def check_converged(estate, pre, writer) -> list[str]:
    errs = []
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    shared = Path(os.path.realpath(blue.shared_db))
    for h in (blue, green):
        if not h.db_path.is_symlink() or Path(os.path.realpath(h.db_path)) != shared:
            errs.append(f"{h.name}: {h.db_path} is not a link to {shared}")
        try:
            status, body = h.health()
        except OSError as exc:
            status, body = 0, str(exc)
        if status != 200 or not isinstance(body, dict) or body.get("db") != str(shared):
            errs.append(f"{h.name}: health {status} {body}")
    if not shared.exists():
        return [*errs, f"shared DB {shared} missing"]
    ic = H.integrity_ok(shared)
    if ic != "ok":
        errs.append(f"integrity_check of {shared}: {ic}")
    lost = lost_rows(pre, shared, [blue.name, green.name])
    if lost:
        errs.append(f"committed rows lost from the shared DB: {lost}")
    missing = writer.missing_from(shared) if writer else []
    if missing:
        errs.append(f"{len(missing)} acknowledged writes missing from the shared DB, e.g. {missing[:3]}")
    return errs


def check_rolled_back(estate, pre, writer) -> tuple[list[str], int]:
    """Each app back on its own DB, nothing lost; returns (errors, acknowledged writes left only in the shared DB)."""
    errs = []
    only_shared = 0
    for h in estate.hosts:
        if h.db_path.is_symlink() or not h.db_path.is_file():
            errs.append(f"{h.name}: {h.db_path} is not a regular file again")
            continue
        if Path(str(h.db_path) + ".OLD").exists():
            errs.append(f"{h.name}: {h.db_path}.OLD still there after the rollback")
        try:
            status, body = h.health()
        except OSError as exc:
            status, body = 0, str(exc)
        if status != 200 or not isinstance(body, dict) or body.get("db") != str(h.db_path):
            errs.append(f"{h.name}: health {status} {body}")
        ic = H.integrity_ok(h.db_path)
        if ic != "ok":
            errs.append(f"integrity_check of {h.db_path}: {ic}")
        lost = lost_rows(pre, h.db_path, [h.name])
        if lost:
            errs.append(f"committed rows lost from {h.db_path}: {lost}")
    if writer is not None:
        blue = estate.host(1, "blue")
        in_own = H.notes_in(blue.db_path, writer.prefix) if blue.db_path.is_file() else set()
        in_shared = H.notes_in(blue.shared_db, writer.prefix) if blue.shared_db.exists() else set()
        gone = [n for n in writer.acked if n not in in_own and n not in in_shared]
        if gone:
            errs.append(f"{len(gone)} acknowledged writes in neither BLUE's DB nor the shared DB, e.g. {gone[:3]}")
        only_shared = sum(1 for n in writer.acked if n not in in_own and n in in_shared)
    return errs, only_shared


def enumerate_points(estate, playbook: str, role: str, extra: dict | None = None) -> list[dict]:
    """The role's tasks of a clean run, in order: [{"name", "changed"}]; kill point k = after task k."""
    trace = estate.root / f"trace-{role}.jsonl"
    trace.unlink(missing_ok=True)
    run = estate.playbook(playbook, extra_vars=extra, env=trace_env(role, trace), log_name=f"trace-{role}")
    assert run.rc == 0, f"clean {playbook} run failed:\n{run.tail()}"
    entries = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    points = []
    for e in entries:
        if e.get("n"):
            points.append({"name": e["name"], "changed": False})
        elif "changed" in e and points and e["changed"] == points[-1]["name"]:
            points[-1]["changed"] = True
    return points


def select(points: list[dict]) -> list[int]:
    """Kill points to run. DBFIX_FAULT_POINTS: ``all``; ``changes`` (default): after every task that changed
    something in the clean run, and after every task from the quiesce to the apps' start (the apps are down
    there); N: every N-th point."""
    mode = os.environ.get("DBFIX_FAULT_POINTS", "changes")
    ks = list(range(1, len(points) + 1))
    if mode == "all":
        return ks
    if mode == "changes":
        first = next((i for i, p in enumerate(points, 1) if "quiesce" in p["name"].lower()), None)
        last = next((i for i, p in enumerate(points, 1) if "start the app on the shared db" in p["name"].lower()), None)
        window = set(range(first, last + 1)) if first and last else set()
        return [k for k in ks if points[k - 1]["changed"] or k in window]
    step = max(1, int(mode))
    return [k for k in ks if k % step == 1 or k == len(points)]


def write_results(name: str, rows: list[dict], seconds: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "fault-injection.md"
    lines = [f"## {name}", "", f"{len(rows)} kill points in {seconds:.0f} s ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
             "| k | killed after task | rc of killed run | recovery | recovery rc | acked writes | result |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {r['task']} | {r['killed_rc']} | {r['recovery']} | {r['rc']} | {r['acked']} | {r['result']} |" for r in rows]
    text = out.read_text(encoding="utf-8") if out.exists() else "# Fault injection: kill points covered\n"
    # Replace this section if present.
    parts = text.split("\n## ")
    parts = [p for p in parts if not p.startswith(name)]
    text = "\n## ".join(parts).rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    out.write_text(text, encoding="utf-8")
    print("\n".join(lines))


# --------------------------------------------------------------------------- fixture


@pytest.fixture(scope="module")
def fx():
    """The estate after a clean phase 1, snapshot 'pre_phase2'; the phase-2 and rollback kill points enumerated."""
    require("site.yml", "phase1.yml", "phase2.yml", "rollback.yml")
    with built("fault") as estate:
        run = estate.playbook("phase1.yml", extra_vars=FAST, log_name="phase1")
        assert run.rc == 0, f"phase1.yml failed on a fresh estate:\n{run.tail()}"
        snap = H.snapshot(estate, "pre_phase2")
        pre = pre_rows(snap, estate)
        p2_points = enumerate_points(estate, "phase2.yml", "phase2", FAST)
        H.snapshot(estate, "post_phase2")
        rb_points = enumerate_points(estate, "rollback.yml", "rollback", {**FAST, "dbfix_rollback_phase": "phase2"})
        yield {"estate": estate, "pre": pre, "p2_points": p2_points, "rb_points": rb_points}


# --------------------------------------------------------------------------- kill sweeps


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


# --------------------------------------------------------------------------- locks


LOCKER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


class Locker:
    """Another process holding ``BEGIN EXCLUSIVE`` on a DB (a real lock, not a mock)."""

    def __init__(self, db: Path, seconds: float = 300):
        self.proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line == "locked", f"locker did not get the lock on {db}: {line!r}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(timeout=10)


def app_files(estate) -> dict:
    """sha256 of each DB and .env (following a link) and whether the DB is a link."""
    return db_state(estate)


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
    started by the test callback at the task that starts the app on the shared DB and
    stopped when the rescue begins, so the failure is real (EADDRINUSE, pm2
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
        "DBFIX_FAULT_AT_TASK": "start the app on the shared DB",
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
