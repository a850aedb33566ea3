# SPDX-License-Identifier: GPL-3.0-or-later
"""One client sending GET PATH to 127.0.0.1:PORT (nginx), a fresh connection per request, about 200 a second,
until STOP exists or MAX_SECONDS passed; then writes a summary to OUT (JSON): sent, failed, the first failures and
how many answers each production color (header X-Dbfix-Production) gave. Loopback only."""
import http.client
import json
import os
import sys
import time

port, path, stop, out, max_seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
deadline = time.monotonic() + max_seconds
sent, failures, colors, worst = 0, [], {}, 0.0
while not os.path.exists(stop) and time.monotonic() < deadline:
    t = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        color = resp.getheader("X-Dbfix-Production", "")
        ok, what = resp.status == 200, "%d %s" % (resp.status, color)
        if ok:
            colors[color] = colors.get(color, 0) + 1
    except (OSError, http.client.HTTPException) as exc:
        ok, what = False, type(exc).__name__
    finally:
        conn.close()
    sent += 1
    worst = max(worst, time.monotonic() - t)
    if not ok:
        failures.append(what)
    # A pause between requests: back to back, the prober, nginx and the app kept both cores busy (140,000
    # requests in one converge), which slowed the gates and watch it is meant to observe, and the scenarios
    # running beside it. About 200 requests a second still put several in every switch.
    time.sleep(0.005)
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"sent": sent, "failed": len(failures), "failures": failures[:20], "colors": colors,
               "max_ms": round(worst * 1000, 1), "stopped": os.path.exists(stop)}, f)
os.replace(tmp, out)
