# SPDX-License-Identifier: GPL-3.0-or-later
"""The promotion harness shared by tests/integration/test_promote.py and bench/switch.py (the tests own it; the
benchmark imports it from here, never the reverse): a prober through the proxy and the promote run's variables.
"""
from __future__ import annotations

import http.client
import threading
import time


class SwitchProber:
    """One client, as fast as it can, through the proxy on 127.0.0.1:port; every request recorded.

    A request fails on no answer or any status but ``status``. Bounded: stops at ``max_requests`` or ``stop()``.
    """

    def __init__(self, port: int, path: str = "/api/health", status: int = 200, timeout: float = 5.0,
                 max_requests: int = 2_000_000):
        self.port, self.path, self.status, self.timeout, self.max_requests = port, path, status, timeout, max_requests
        self.samples: list[tuple[float, float, bool, str]] = []  # (start monotonic, seconds, ok, what)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _one(self) -> tuple[bool, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            color = resp.getheader("X-Dbfix-Production", "")
            return resp.status == self.status, f"{resp.status} {color}"
        except (OSError, http.client.HTTPException) as exc:
            return False, type(exc).__name__
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self.max_requests:
            t = time.monotonic()
            ok, what = self._one()
            self.samples.append((t, time.monotonic() - t, ok, what))

    def start(self) -> SwitchProber:
        self._thread = threading.Thread(target=self._run, name="switch-prober", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout + 5)

    def failures(self, start: float = 0.0, end: float = float("inf")) -> list[tuple[float, str]]:
        return [(t, w) for t, _d, ok, w in self.samples if start <= t <= end and not ok]

    def window(self, start: float, end: float) -> dict:
        lat = sorted(d for t, d, _ok, _w in self.samples if start <= t <= end)
        n = len(lat)
        return {
            "sent": n,
            "failed": len(self.failures(start, end)),
            "p50_ms": round(lat[n // 2] * 1000, 2) if n else None,
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
            "max_ms": round(lat[-1] * 1000, 2) if n else None,
            "rps": round(n / (end - start), 1) if end > start else None,
        }


def promote_vars(nginx, proxy_port: int, **extra) -> dict:
    """Extra vars of a promote run against the local nginx (short watch, quick stability for a fresh estate)."""
    v = dict(nginx.vars())
    v.update({"dbfix_proxy_port": proxy_port, "dbfix_promote_stable_seconds": 1, "dbfix_promote_watch_seconds": 3,
              "dbfix_promote_expect_columns": {"users": ["id", "email", "position"]}})
    v.update(extra)
    return v
