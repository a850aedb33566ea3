# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared parts of the fault-injection tests (``test_fault_injection*.py``).

The tests were one file; they are split so pytest-xdist (``--dist loadfile``) runs the two long kill
sweeps and the other fault cases on different workers at the same time. Each file builds its own estate
with ``fault_estate`` (same set-up as before: a clean phase 1, snapshot ``pre_phase2``, the phase-2 kill
points enumerated by a clean traced phase-2 run, snapshot ``post_phase2``, and, when asked, the rollback's
kill points). The checks, the lock holder and the results writer are here, unchanged.

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

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _estate import H, built, db_state, require, trace_env

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
    # The sweeps run in separate files, so on separate xdist workers at the same time: the read-modify-write
    # of the shared results file is done under a lock, or one sweep's section could be lost.
    with open(RESULTS / ".fault-injection.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = out.read_text(encoding="utf-8") if out.exists() else "# Fault injection: kill points covered\n"
        # Replace this section if present.
        parts = text.split("\n## ")
        parts = [p for p in parts if not p.startswith(name)]
        text = "\n## ".join(parts).rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
        out.write_text(text, encoding="utf-8")
    print("\n".join(lines))


# --------------------------------------------------------------------------- estate


@contextlib.contextmanager
def fault_estate(prefix: str, rollback_points: bool = False):
    """The estate after a clean phase 1, snapshot 'pre_phase2'; the phase-2 kill points enumerated (a clean
    traced phase-2 run), snapshot 'post_phase2'; with ``rollback_points`` also the rollback's kill points
    (a clean traced rollback of phase 2)."""
    require("site.yml", "phase1.yml", "phase2.yml", "rollback.yml")
    with built(prefix) as estate:
        run = estate.playbook("phase1.yml", extra_vars=FAST, log_name="phase1")
        assert run.rc == 0, f"phase1.yml failed on a fresh estate:\n{run.tail()}"
        snap = H.snapshot(estate, "pre_phase2")
        pre = pre_rows(snap, estate)
        p2_points = enumerate_points(estate, "phase2.yml", "phase2", FAST)
        H.snapshot(estate, "post_phase2")
        rb_points = None
        if rollback_points:
            rb_points = enumerate_points(estate, "rollback.yml", "rollback", {**FAST, "dbfix_rollback_phase": "phase2"})
        yield {"estate": estate, "pre": pre, "p2_points": p2_points, "rb_points": rb_points}


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
