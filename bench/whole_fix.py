# SPDX-License-Identifier: GPL-3.0-or-later
"""Whole-fix benchmark: ``playbooks/site.yml`` on a local blue/green estate.

For each run: build a fresh estate (1 pair, the estate builder's realistic DB),
start a prober (``/api/health`` of both colors at 20 Hz) and a writer (time
entries POSTed to BLUE at 20/s), run site.yml (phase 1 -> phase 2 -> CORS) with
a timing callback, keep probing/writing 2 s after it ends, then check:

* wall time per phase and total                      (target, issue 12: median total <= 15 s)
* unavailability per color: longest gap, total ms    (target, issue 12: BLUE <= 1.0 s in total)
* acknowledged writes missing from the final shared DB (must be 0)
* task executions per host                           (target, issue 12: <= 45 for site.yml)
* where BLUE's longest gap went: seconds of each task inside it
* a picture of the median run (docs/benchmarks-whole-fix.png): availability per color over time,
  the phase boundaries and the writer's acknowledged writes

Usage: .venv/bin/python bench/whole_fix.py [--runs 3] [--size-mb 0] [--keep] [--no-doc]
Figures go to the ``## Whole fix`` section of docs/benchmarks.md; raw JSON to
bench/results/ (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _estate as E
import _png

TARGET_TOTAL_S = 15.0
TARGET_BLUE_MS = 1000
TARGET_TASKS = 45
PICTURE = E.ROOT / "docs" / "benchmarks-whole-fix.png"


class TimedWriter(E.Writer):
    """The harness's writer, also remembering when each acknowledged write was sent (for the picture)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acked_at: list[float] = []

    def _run(self) -> None:
        for seq, _tick in enumerate(E._ticks(self.period, self._stop), start=1):
            note = f"{self.prefix}{seq}"
            t = time.monotonic()
            try:
                status, body = E.http_request(self.host.port, "POST", "/api/time-entries",
                                              {"user_id": self.user_id, "minutes": 1, "note": note}, timeout=self.timeout)
                if status == 201 and isinstance(body, dict) and "id" in body:
                    self.acked[note] = int(body["id"])
                    self.acked_at.append(t)
                else:
                    self.failed.append((t, f"HTTP {status}"))
            except OSError as exc:
                self.failed.append((t, type(exc).__name__))
            self.sent += 1
            self.latencies.append(time.monotonic() - t)


def tasks_per_host(timing: dict) -> int:
    """Task executions per host: tasks (and handlers) that ran (not skipped) on the busiest host."""
    counts: dict[str, int] = {}
    for t in timing["tasks"]:
        for host, status in t["hosts"].items():
            if status != "skipped":
                counts[host] = counts.get(host, 0) + 1
    return max(counts.values(), default=0)


def phase_starts(timing: dict, offset: float) -> list[tuple[str, float]]:
    """(phase, monotonic start) of phase 1, phase 2, CORS and the end of the run."""
    out, seen = [], set()
    for t in E.with_phases(timing):
        if t["phase"] in ("phase1", "phase2", "cors") and t["phase"] not in seen:
            seen.add(t["phase"])
            out.append((t["phase"], t["start"] - offset))
    if timing.get("end"):
        out.append(("end", timing["end"] - offset))
    return out


def one_run(workdir: Path, idx: int, size_mb: int, rate: float) -> dict:
    estate = E.Estate(workdir / f"run{idx}", pairs=1, size=str(size_mb) if size_mb else "")
    try:
        t0 = time.monotonic()
        estate.build()
        build_s = time.monotonic() - t0
        blue, green = estate.host(1, "blue"), estate.host(1, "green")
        before = {h.name: E.sha256_file(h.db_path) for h in estate.hosts}
        pm2_call_s = E.pm2_cli_seconds(estate)
        timing_file = estate.root / "timing-site.json"
        prober = E.Prober(estate.hosts).start()
        writer = TimedWriter(blue, rate=rate).start()
        time.sleep(2)  # baseline: both up, writes flowing
        wall0 = time.time()
        mono0 = time.monotonic()
        run = estate.playbook("site.yml", env=E.timing_env(timing_file), log_name="site")
        total_s = time.monotonic() - mono0
        time.sleep(2)
        writer.stop()
        prober.stop()
        final_blue = Path(os.path.realpath(blue.db_path))
        final_green = Path(os.path.realpath(green.db_path))
        missing = writer.missing_from(final_blue)
        timing = E.load_timing(timing_file)
        # Map prober gaps (monotonic) to wall clock for the task overlap.
        offset = wall0 - mono0
        probe = prober.summary()
        blue_gaps = prober.gaps(blue.name)
        longest = max(blue_gaps, key=lambda g: g[1] - g[0], default=None)
        in_window = E.tasks_in_window(timing, longest[0] + offset, longest[1] + offset) if longest else []
        green_gaps = prober.gaps(green.name)
        glongest = max(green_gaps, key=lambda g: g[1] - g[0], default=None)
        return {
            **E.run_figures(run, build_s, total_s, timing),
            "probe": probe,
            "writer": writer.summary(),
            "missing_acknowledged": len(missing),
            "missing_sample": missing[:5],
            "final_db_blue": str(final_blue),
            "final_db_green": str(final_green),
            "same_db": final_blue == final_green,
            "db_changed": {h.name: before[h.name] != (E.sha256_file(h.db_path) if h.db_path.exists() else "") for h in estate.hosts},
            "blue_longest_gap_tasks": in_window,
            "green_longest_gap_tasks": (E.tasks_in_window(timing, glongest[0] + offset, glongest[1] + offset) if glongest else []),
            "slowest_tasks": E.slowest_tasks(timing, 10),
            "by_action": E.by_action(timing),
            "pm2_cli_s": pm2_call_s,
            "task_headers": len(timing["tasks"]),
            "tasks_per_host": tasks_per_host(timing),
            # For the picture (monotonic clock): samples per color, acknowledged writes, phase starts.
            "trace": {
                "t0": prober.samples[blue.name][0][0] if prober.samples[blue.name] else mono0,
                "t1": time.monotonic(),
                "samples": {("BLUE" if h.color == "blue" else "GREEN"): prober.samples[h.name] for h in estate.hosts},
                "acked": writer.acked_at,
                "phases": phase_starts(timing, offset),
            },
        }
    finally:
        estate.kill()


def fmt_section(info: dict, runs: list[dict], size_mb: int, rate: float) -> str:
    ok = [r for r in runs if r["rc"] == 0]
    lines = [
        "`make bench-fix` (`bench/whole_fix.py`): `playbooks/site.yml` (phase 1 -> phase 2 -> CORS) on a freshly built",
        "local estate of one pair (both colors `ansible_connection=local`, real pm2, real Node app, "
        + (f"DBs grown to ~{size_mb} MiB" if size_mb else "the estate builder's realistic DBs: 14 users, ~1,000 time entries")
        + "). A prober polls both colors' `/api/health` at 20 Hz (a sample is *up* only on HTTP 200 within 1 s) and a",
        f"writer POSTs a time entry to BLUE every {1000 / rate:.0f} ms for the whole run (from 2 s before to 2 s after).",
        "An *acknowledged* write is one the app answered 201 + id; each carries a unique note, looked up in the final shared DB.",
        "",
        E.machine_line(info),
        "",
        "| run | rc | total s | phase1 s | phase2 s | cors s | tasks per host (headers) | BLUE longest gap ms "
        "| BLUE total unavailable ms | GREEN longest gap ms | GREEN total ms | writes acked | not acked | acked missing |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        ph = r["phases_s"]
        pb = r["probe"]["p1-blue"]
        pg = r["probe"]["p1-green"]
        lines.append(
            f"| {i} | {r['rc']} | {r['total_s']:.1f} | {ph.get('phase1', 0):.1f} | {ph.get('phase2', 0):.1f} | {ph.get('cors', 0):.1f} "
            f"| {r.get('tasks_per_host', '?')} ({r.get('task_headers', '?')}) | {pb['longest_gap_ms']} | {pb['total_unavailable_ms']} "
            f"| {pg['longest_gap_ms']} | {pg['total_unavailable_ms']} "
            f"| {r['writer']['acknowledged']} | {r['writer']['not_acknowledged']} | **{r['missing_acknowledged']}** |")
    if ok:
        med_total = statistics.median(r["total_s"] for r in ok)
        med_blue = statistics.median(r["probe"]["p1-blue"]["total_unavailable_ms"] for r in ok)
        max_blue = max(r["probe"]["p1-blue"]["longest_gap_ms"] for r in ok)
        missing = sum(r["missing_acknowledged"] for r in runs)
        lines += [
            "",
            f"Median of {len(ok)} successful run(s): total **{med_total:.1f} s** (target <= {TARGET_TOTAL_S:.0f} s: "
            f"{'met' if med_total <= TARGET_TOTAL_S else 'MISSED'}); BLUE unavailable **{med_blue} ms** in total, longest gap "
            f"{max_blue} ms over all runs (target <= {TARGET_BLUE_MS} ms: {'met' if med_blue <= TARGET_BLUE_MS else 'MISSED'}); "
            f"acknowledged writes missing from the final DB: **{missing}** (must be 0); task executions per host "
            f"**{max(r.get('tasks_per_host', 0) for r in ok)}** (target <= {TARGET_TASKS}: "
            f"{'met' if max(r.get('tasks_per_host', 0) for r in ok) <= TARGET_TASKS else 'MISSED'}).",
            "",
            f"![The median run: availability of each color over time (green = HTTP 200, red = not), the phase starts "
            f"and BLUE's acknowledged writes]({PICTURE.name})",
            "",
            f"The picture ([{PICTURE.name}]({PICTURE.name}), drawn by the benchmark with the standard library): one row per "
            "color (green = the prober got HTTP 200, red = it did not), one tick per acknowledged write to BLUE, vertical "
            "lines where phase 1 (blue), phase 2 (orange) and CORS (purple) started and where the playbook ended (black); "
            "the axis is seconds since the prober started (2 s before the playbook).",
        ]
        worst = max(ok, key=lambda r: r["probe"]["p1-blue"]["longest_gap_ms"])
        if worst["blue_longest_gap_tasks"]:
            lines += [
                "",
                f"Where BLUE's longest gap ({worst['probe']['p1-blue']['longest_gap_ms']} ms, run {runs.index(worst) + 1}) went, "
                "task by task (seconds of each task inside the gap, from the timing callback `tests/harness/callback_plugins/dbfix_timing.py`):",
                "",
                "| role | task | module | s in gap |",
                "|---|---|---|---|",
            ]
            lines += [f"| {t['role']} | {t['name']} | {t['action']} | {t['seconds_in_window']:.2f} |" for t in worst["blue_longest_gap_tasks"]]
            if worst["probe"]["p1-blue"]["longest_gap_ms"] > TARGET_BLUE_MS:
                mods = [t for t in worst["blue_longest_gap_tasks"] if t["action"] not in ("assert", "set_fact", "debug")]
                lines += [
                    "",
                    f"Why the {TARGET_BLUE_MS / 1000:g} s target is missed (measured): the gap is exactly the quiesce-to-health window; "
                    f"{len(mods)} of the {len(worst['blue_longest_gap_tasks'])} tasks inside it run modules on the host, "
                    f"{sum(t['seconds_in_window'] for t in mods):.2f} s together. Each of those pays a fresh Python module "
                    + (f"process plus pm2 CLI calls at {worst['pm2_cli_s']:.2f} s each (a pm2 call is a Node.js start), and "
                       if worst.get("pm2_cli_s") else "process plus pm2 CLI calls (each one a Node.js start), and ")
                    +
                    "the health gate polls until the restarted Node app answers. The window cannot shrink below "
                    "stop + start + first healthy answer of the app itself; what is left above that is Ansible/pm2 overhead.",
                ]
            lines += [
                "",
                "While BLUE is down the writer's requests fail (connection refused) and are *not* acknowledged, so the client "
                "knows to retry; none of them counts as lost. Every acknowledged write, including those BLUE took between phase 2's "
                "backups and the quiesce, is in the shared DB.",
            ]
        load = info.get("loadavg") or ""
        pm2_s = worst.get("pm2_cli_s") or 0
        if pm2_s > 1.0:
            lines += ["", f"**This machine was overloaded during the run** (load average at start {load}; one `pm2 jlist` took "
                      f"{pm2_s:.2f} s, against 0.21 s on the idle machine of 2026-11-25): wall times and gaps above measure the "
                      "machine's queue more than the playbook. The task count and the acknowledged writes still hold."]
        lines += ["", "Slowest tasks of the median run:", "", "| role | task | module | s |", "|---|---|---|---|"]
        med_run = sorted(ok, key=lambda r: r["total_s"])[len(ok) // 2]
        lines += [f"| {t['role']} | {t['name']} | {t['action']} | {t['seconds']:.2f} |" for t in med_run["slowest_tasks"]]
        if med_run.get("by_action"):
            n_tasks = sum(a["tasks"] for a in med_run["by_action"])
            lines += ["", f"Where the total goes (median run, {n_tasks} tasks, each run on both hosts in parallel), by module; "
                      f"one `pm2 jlist` on this machine takes {med_run['pm2_cli_s']:.2f} s (median of 5), and every pm2_service "
                      "task makes several pm2 calls:", "",
                      "| module | tasks | s total | median s per task |", "|---|---|---|---|"]
            lines += [f"| {a['action']} | {a['tasks']} | {a['seconds']:.2f} | {a['median_s']:.2f} |" for a in med_run["by_action"][:12]]
        if med_total > TARGET_TOTAL_S:
            lines += ["", f"Why the {TARGET_TOTAL_S:.0f} s total is missed (measured): the run is {med_run['tasks']} "
                      "tasks one after the other (linear strategy, both hosts in parallel per task); the table above shows the "
                      "time per module. Controller-only tasks (set_fact, assert) still cost a strategy round-trip each, and every "
                      "pm2_service/uri/health task waits for real processes."]
    failed = [r for r in runs if r["rc"] != 0]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed (rc != 0); their logs were kept under bench/results/."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=0, help="grow each DB to about this size (estate_db_size_mb); 0 = realistic small DB")
    ap.add_argument("--rate", type=float, default=20.0, help="writer rate, writes per second")
    ap.add_argument("--keep", action="store_true", help="keep the estate folders (logs, DBs) for inspection")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    info = E.machine_info()
    results_dir = E.ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dbfix-bench-fix-"))
    runs = []
    for i in range(1, args.runs + 1):
        r = one_run(work, i, args.size_mb, args.rate)
        runs.append(r)
        pb = r["probe"]["p1-blue"]
        print(f"run {i}: rc={r['rc']} total={r['total_s']:.1f}s phases={r['phases_s']} BLUE longest={pb['longest_gap_ms']}ms "
              f"total={pb['total_unavailable_ms']}ms acked={r['writer']['acknowledged']} missing={r['missing_acknowledged']}", flush=True)
        if r["rc"] != 0:
            print(f"  site.yml failed, log: {r['log']}", flush=True)
    out = results_dir / f"whole_fix-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"machine": info, "runs": runs}, indent=1), encoding="utf-8")
    ok = sorted((r for r in runs if r["rc"] == 0), key=lambda r: r["total_s"])
    if ok and not args.no_doc:
        med = ok[len(ok) // 2]
        tr = med["trace"]
        _png.draw_run(PICTURE, tr["t0"], tr["t1"], colors=tr["samples"], acked=tr["acked"], phases=tr["phases"],
                      title=f"SITE.YML, 1 PAIR: {med['total_s']:.1f} S, BLUE DOWN {med['probe']['p1-blue']['total_unavailable_ms']} MS")
        print("drew", PICTURE)
    section = fmt_section(info, runs, args.size_mb, args.rate)
    print(section)
    if not args.no_doc:
        print("updated", E.update_doc_section("Whole fix", section))
    if not args.keep and all(r["rc"] == 0 for r in runs):
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("estates kept under", work)
    bad = any(r["rc"] != 0 or r["missing_acknowledged"] for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
