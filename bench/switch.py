# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: requests through a real nginx across a promotion, a revert and a refused promotion.

One local pair (the estate builder, site.yml so both colors share one DB), Debian's nginx as a plain process
with its own prefix under the estate's temp folder (loopback only), the proxy role then:

1. promote GREEN (gates, atomic rewrite, nginx -t, graceful reload, watch),
2. revert to BLUE (the same playbook with the other color),
3. promote GREEN again while GREEN fails a gate (its pm2 process stopped): refused, nothing changes.

A single client (``SwitchProber``) sends ``GET /api/health`` through the proxy back to back, each on a fresh
connection, for the whole run (bounded by the run's length and a request cap). Figures: requests sent, failed,
p99 latency before the first switch and during each switch; written to the ``## Promote`` section of
docs/benchmarks.md. Usage: ``make bench-switch`` (or ``python bench/switch.py [--no-doc]``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


SH = _load("dbfix_harness_switch", ROOT / "tests" / "harness" / "switch.py")
SwitchProber = SH.SwitchProber
promote_vars = SH.promote_vars


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-doc", action="store_true", help="print the figures, do not write docs/benchmarks.md")
    ap.add_argument("--estate", type=Path, help="reuse a built one-pair estate (after site.yml) instead of building one; "
                    "it is left as it is, its nginx (ESTATE/nginx) is started if it does not run")
    args = ap.parse_args()
    H = _load("dbfix_bench_estate", HERE / "_estate.py")
    NG = _load("dbfix_nginx", ROOT / "tests" / "integration" / "_nginx.py")
    own = args.estate is None
    root = Path(tempfile.mkdtemp(prefix="dbfix-bench-switch-")) if own else args.estate.resolve()
    estate = H.Estate(root) if own else H.Estate(root, hosts=hosts_of(H, root))
    nginx = NG.Nginx(root / "nginx")
    figures: dict = {"machine": H.machine_info()}
    try:
        if own:
            estate.build()
            estate.playbook("site.yml", log_name="site", check=True)
        proxy_port = H.free_ports(1)[0]
        nginx.stop()
        nginx.start()
        evars = promote_vars(nginx, proxy_port)
        estate.playbook("promote.yml", extra_vars=dict(evars, dbfix_promote_to="blue"), log_name="initial", check=True)
        time.sleep(2)  # the stability gate: the candidate must run >= 1 s
        prober = SwitchProber(proxy_port).start()
        time.sleep(5)
        steps = []
        for label, to, fail_gate in (("promote GREEN", "green", False), ("revert to BLUE", "blue", False),
                                     ("promote GREEN, gate fails", "green", True)):
            green = estate.host(1, "green")
            if fail_gate:
                estate.pm2("stop", green.pm2_name)
            t0 = time.monotonic()
            run = estate.playbook("promote.yml", extra_vars=dict(evars, dbfix_promote_to=to), log_name=f"promote-{to}")
            t1 = time.monotonic()
            if fail_gate:
                estate.pm2("start", green.pm2_name)
            steps.append({"step": label, "rc": run.rc, "playbook_s": round(t1 - t0, 1), **prober.window(t0, t1)})
            time.sleep(3)
        prober.stop()
        first = prober.samples[0][0] if prober.samples else 0
        figures["before"] = prober.window(first, first + 5)
        figures["steps"] = steps
        figures["total"] = prober.window(0, float("inf"))
        figures["failures"] = prober.failures()[:20]
    finally:
        nginx.stop()
        if own:
            estate.remove()
    print(json.dumps(figures, indent=2))
    if not args.no_doc:
        H.update_doc_section("Promote", render(figures, H))
    ok = figures["total"]["failed"] == 0 and [s["rc"] != 0 for s in figures["steps"]] == [False, False, True]
    return 0 if ok else 1


def hosts_of(H, root: Path) -> list:
    """The hosts of an estate's inventory.ini (its ports and folders as they were built)."""
    hosts = []
    for line in (root / "inventory.ini").read_text(encoding="utf-8").splitlines():
        if "dbfix_color=" not in line:
            continue
        name, *kv = line.split()
        v = dict(x.split("=", 1) for x in kv)
        app_dir = Path(v["dbfix_app_dir"])
        hosts.append(H.Host(name=name, pair=1, color=v["dbfix_color"], port=int(v["dbfix_port"]), app_dir=app_dir,
                            shared_db=app_dir.parent / "shared" / "database-shared.db"))
    return hosts


def render(f: dict, H) -> str:
    b = f["before"]
    rows = [
        "`make bench-switch` (bench/switch.py): one local pair after site.yml (one shared DB), Debian's nginx as a plain",
        "process on a loopback port, one client sending `GET /api/health` through the proxy back to back (a fresh",
        "connection per request) for the whole run. Each step is `playbooks/promote.yml` (gates, atomic rewrite of",
        "the pair's upstream file, `nginx -t`, graceful reload, 3 s watch with the old color as backup, state file).",
        "",
        H.machine_line(f["machine"]),
        "",
        "| window | playbook rc | requests sent | failed | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
        f"| before (5 s, no switch) | - | {b['sent']} | {b['failed']} | {b['p50_ms']} | {b['p99_ms']} | {b['max_ms']} |",
    ]
    for s in f["steps"]:
        rows.append(f"| {s['step']} ({s['playbook_s']} s) | {s['rc']} | {s['sent']} | {s['failed']} | {s['p50_ms']} | "
                    f"{s['p99_ms']} | {s['max_ms']} |")
    t = f["total"]
    rows += [
        f"| whole run | - | {t['sent']} | {t['failed']} | {t['p50_ms']} | {t['p99_ms']} | {t['max_ms']} |",
        "",
        "The refused promotion (GREEN's pm2 process stopped) ends with rc 2 and leaves the upstream file as it was;",
        "the prober kept being served by BLUE. Latency during a switch includes the playbook's own load on the same",
        "two CPUs (ansible-playbook, pm2 CLI calls); the reload itself drops no request because nginx's old workers",
        "finish what they accepted while new workers take new connections on the same listening socket.",
        "Playbook durations follow the machine's load (load average in the machine line; a shared 2-CPU machine",
        "makes every task slow), not the switch: the reload and the watch take a few seconds of each run.",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
