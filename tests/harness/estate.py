# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared harness for the tests (estate, fault injection, roles) and the whole-fix and scale benchmarks.

It lives under ``tests/`` and the benchmarks import it from here (``bench/_estate.py`` only loads this file).

* ``Estate``  - N blue/green pairs on this machine (``ansible_connection=local``),
  each with its own app dirs, ports and shared-DB path, one ``PM2_HOME`` for the
  run, built by the real estate builder ``tests/estate/build.yml``.
* ``Prober``  - polls every color's ``/api/health`` at 20 Hz and records the gaps.
* ``Writer``  - POSTs time entries to a color at a steady rate and records every
  acknowledged write (201 + id) by a unique note, so the final DB can be checked
  for acknowledged writes that went missing.

Loopback only: every URL is ``http://127.0.0.1:PORT``. Stdlib only.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PM2 = ROOT / "tests" / "tools" / "node_modules" / ".bin" / "pm2"
BUILD_PLAYBOOK = ROOT / "tests" / "estate" / "build.yml"
PLAYBOOKS = ROOT / "playbooks"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
RESERVED_PORTS = {3000, 3001}
TIMEOUT_RC = 124  # what Estate.playbook returns when it had to kill a run that hung


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (never 3000/3001), all held until chosen."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in RESERVED_PORTS:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def http_request(port: int, method: str, path: str, body: dict | None = None, *, timeout: float = 2.0,
                 headers: dict | None = None) -> tuple[int, dict | str]:
    """One request to 127.0.0.1:port; (status, parsed JSON or text). Raises OSError on no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if payload is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read().decode("utf-8", "replace")
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pm2_version() -> str:
    """pm2's version from its package.json: `pm2 --version` would spawn a God Daemon in ~/.pm2 and leave it running."""
    try:
        return json.loads((PM2.resolve().parents[1] / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def machine_info() -> dict:
    """What the figures were measured on."""
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        except OSError:
            return "?"
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    ansible = out([str(VENV_BIN / "ansible-playbook"), "--version"]).splitlines()
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": out(["node", "--version"]),
        "pm2": pm2_version(),
        "ansible_core": ansible[0] if ansible else "?",
        "loadavg": " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]),
    }


# --------------------------------------------------------------------------- DB helpers


def table_digest(db: Path) -> dict[str, tuple[int, str]]:
    """{table: (rows, sha256 of the rows in rowid order)} of a SQLite file, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        result = {}
        for t in tables:
            h = hashlib.sha256()
            n = 0
            for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid'):
                h.update(repr(row).encode())
                n += 1
            result[t] = (n, h.hexdigest())
        return result
    finally:
        conn.close()


def table_rows(db: Path, table: str) -> set[tuple]:
    """Every row of ``table`` as a tuple of the columns both sides share is left to the caller."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return set(conn.execute(f'SELECT * FROM "{table}"'))
    finally:
        conn.close()


def rows_by_columns(db: Path, table: str, columns: list[str]) -> set[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        return set(conn.execute(f'SELECT {cols} FROM "{table}"'))
    finally:
        conn.close()


def columns_of(db: Path, table: str) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    finally:
        conn.close()


def integrity_ok(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def notes_in(db: Path, prefix: str) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in conn.execute("SELECT note FROM time_entries WHERE note LIKE ? ", (prefix + "%",))}
    finally:
        conn.close()


# --------------------------------------------------------------------------- estate


@dataclass
class Host:
    name: str
    pair: int
    color: str
    port: int
    app_dir: Path
    shared_db: Path

    @property
    def server_dir(self) -> Path:
        return self.app_dir / "server"

    @property
    def db_path(self) -> Path:
        return self.server_dir / "database.db"

    @property
    def env_file(self) -> Path:
        return self.server_dir / ".env"

    @property
    def pm2_name(self) -> str:
        return f"timetracking-{self.color}-p{self.pair}"

    def health(self, timeout: float = 2.0) -> tuple[int, dict | str]:
        return http_request(self.port, "GET", "/api/health", timeout=timeout)


@dataclass
class Estate:
    """N local blue/green pairs under ``root`` with one PM2_HOME."""

    root: Path
    pairs: int = 1
    size: str = ""          # estate builder's size knob (empty: its default)
    extra_vars: dict = field(default_factory=dict)
    hosts: list[Host] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.pm2_home = self.root / "pm2"
        self.inventory = self.root / "inventory.ini"
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        # Reports of the phases go under the estate, not into the checkout.
        self.extra_vars.setdefault("dbfix_report_dir", str(self.root / "reports"))
        if not self.hosts:
            ports = free_ports(2 * self.pairs)
            for p in range(1, self.pairs + 1):
                pair_dir = self.root / f"pair{p}"
                for i, color in enumerate(("blue", "green")):
                    self.hosts.append(Host(
                        name=f"p{p}-{color}", pair=p, color=color, port=ports[2 * (p - 1) + i],
                        app_dir=pair_dir / ("TimeTracking-BLUE" if color == "blue" else "TimeTracking-Clean"),
                        shared_db=pair_dir / "shared" / "database-shared.db"))
        self.write_inventory()

    # ---- inventory / environment

    def write_inventory(self) -> None:
        lines = []
        for p in range(1, self.pairs + 1):
            lines.append(f"[pair{p}]")
            for h in self.pair_hosts(p):
                lines.append(
                    f"{h.name} dbfix_color={h.color} dbfix_app_dir={h.app_dir} dbfix_port={h.port} dbfix_pm2_name={h.pm2_name}")
            lines.append("")
            lines.append(f"[pair{p}:vars]")
            lines.append(f"dbfix_shared_db={self.pair_hosts(p)[0].shared_db}")
            lines.append(f"dbfix_pair=pair{p}")
            lines.append("")
        lines.append("[timetracking:children]")
        lines.extend(f"pair{p}" for p in range(1, self.pairs + 1))
        lines.append("")
        lines.append("[timetracking:vars]")
        lines.append("ansible_connection=local")
        lines.append("ansible_python_interpreter=" + str(VENV_BIN / "python"))
        lines.append(f"dbfix_pm2_home={self.pm2_home}")
        lines.append(f"dbfix_pm2_executable={PM2}")
        lines.append(f"estate_pm2_home={self.pm2_home}")
        lines.append(f"estate_pm2_executable={PM2}")
        lines.append("")
        self.inventory.write_text("\n".join(lines), encoding="utf-8")

    def pair_hosts(self, pair: int) -> list[Host]:
        return [h for h in self.hosts if h.pair == pair]

    def host(self, pair: int, color: str) -> Host:
        return next(h for h in self.hosts if h.pair == pair and h.color == color)

    def env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{VENV_BIN}:{PM2.parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env["PM2_HOME"] = str(self.pm2_home)
        env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_FORCE_COLOR"] = "0"
        env["ANSIBLE_LOCAL_TEMP"] = str(self.root / "ansible-tmp")
        env["ANSIBLE_REMOTE_TEMP"] = str(self.root / "ansible-tmp")
        env.update(extra or {})
        return env

    # ---- running things

    def playbook(self, playbook: str | Path, *args: str, extra_vars: dict | None = None, env: dict | None = None,
                 log_name: str | None = None, timeout: float = 900, check: bool = False) -> PlaybookRun:
        """Run ansible-playbook from the checkout; output to logs/<log_name>.log."""
        pb = Path(playbook)
        if not pb.is_absolute():
            pb = PLAYBOOKS / pb if (PLAYBOOKS / pb).exists() else ROOT / pb
        evars = dict(self.extra_vars)
        evars.update(extra_vars or {})
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(pb)]
        if evars:
            cmd += ["-e", json.dumps(evars)]
        cmd += list(args)
        log = self.logs / f"{log_name or pb.stem}-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}.log"
        t0 = time.monotonic()
        # Own process group: on a timeout the whole run goes, including a hung `pm2` CLI
        # under a module (pm2's daemon detaches into its own session and is not touched).
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                out.write(f"\n*** HARNESS: killed after {timeout:.0f} s timeout ***\n".encode())
                rc = TIMEOUT_RC
        run = PlaybookRun(cmd=cmd, rc=rc, seconds=time.monotonic() - t0, log=log)
        if check and run.rc != 0:
            raise RuntimeError(f"{pb.name} failed (rc={run.rc}); last lines of {log}:\n{run.tail()}")
        return run

    def build(self) -> PlaybookRun:
        """Lay out the estate with the incident (GREEN without users.position) and start it under pm2."""
        if not BUILD_PLAYBOOK.exists():
            raise RuntimeError(f"{BUILD_PLAYBOOK} does not exist yet (estate builder)")
        evars = {}
        if self.size:
            evars["estate_db_size_mb"] = int(self.size)
        run = self.playbook(BUILD_PLAYBOOK, extra_vars=evars, log_name="build", check=True)
        self.wait_healthy()
        return run

    def pm2(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(PM2), *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=check)

    def pm2_jlist(self) -> list[dict]:
        # pm2 prints a banner (e.g. "[PM2] Spawning PM2 daemon") before the JSON on its first call.
        out = self.pm2("jlist").stdout
        for line in reversed(out.splitlines()):
            if line.startswith("[{") or line.strip() == "[]":
                return json.loads(line)
        return []

    def pm2_daemon_pid(self) -> int | None:
        try:
            return int((self.pm2_home / "pm2.pid").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 60, hosts: list[Host] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(hosts or self.hosts)
        last = {}
        while pending and time.monotonic() < deadline:
            for h in list(pending):
                try:
                    status, body = h.health(timeout=1)
                except OSError as exc:
                    status, body = 0, str(exc)
                last[h.name] = (status, body)
                if status == 200:
                    pending.remove(h)
            if pending:
                time.sleep(0.1)
        if pending:
            raise RuntimeError(f"not healthy after {timeout}s: " + ", ".join(f"{h.name}: {last.get(h.name)}" for h in pending))

    def kill(self) -> None:
        """Stop every pm2 process and the daemon of this estate (teardown)."""
        if self.pm2_home.exists():
            with contextlib.suppress(Exception):
                self.pm2("kill", check=False, timeout=60)
        # A daemon respawned by a playbook that was SIGKILLed mid-task (fault injection) outlives `pm2 kill`:
        # stop whatever still runs with this estate's PM2_HOME or in its folders.
        import sys
        if str(ROOT / "tests") not in sys.path:
            sys.path.insert(0, str(ROOT / "tests"))
        from _procs import kill_processes_under
        kill_processes_under(self.root)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- state snapshots (fast reset between fault-injection points)

    def files_of(self, host: Host) -> dict[str, str]:
        """sha256 of every regular file under the host's server dir (no node_modules, no logs), links as '->target'."""
        result = {}
        base = host.server_dir
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", "logs")]
            for fn in filenames:
                p = Path(dirpath) / fn
                rel = str(p.relative_to(base))
                if p.is_symlink():
                    result[rel] = "->" + os.readlink(p)
                elif p.is_file():
                    result[rel] = sha256_file(p)
        return result


@dataclass
class PlaybookRun:
    cmd: list[str]
    rc: int
    seconds: float
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-n:])


# --------------------------------------------------------------------------- prober


def _ticks(period: float, stop: threading.Event):
    """Yield every ``period`` seconds until ``stop`` is set (the loop of the prober and the writer).

    The schedule is kept from the first tick, so a slow iteration shortens the next wait;
    one that overran a whole period restarts the schedule instead of firing a burst to catch up.
    """
    nxt = time.monotonic()
    while not stop.is_set():
        yield
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()


class Prober:
    """Poll ``/api/health`` of each host at ``hz`` and record unavailability.

    A sample is *up* only on HTTP 200 within ``timeout``. A gap starts at the first
    failed sample and ends at the next good one; its length is measured between the
    two sample start times, so a 50 ms polling period bounds the error.
    """

    def __init__(self, hosts: list[Host], hz: float = 20.0, timeout: float = 1.0):
        self.hosts = hosts
        self.period = 1.0 / hz
        self.timeout = timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.samples: dict[str, list[tuple[float, bool]]] = {h.name: [] for h in hosts}

    def _run(self, host: Host) -> None:
        samples = self.samples[host.name]
        for _tick in _ticks(self.period, self._stop):
            t = time.monotonic()
            try:
                status = host.health(timeout=self.timeout)[0]
                ok = status == 200
            except OSError:
                ok = False
            samples.append((t, ok))

    def start(self) -> Prober:
        for h in self.hosts:
            th = threading.Thread(target=self._run, args=(h,), name=f"prober-{h.name}", daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=5)

    def gaps(self, name: str) -> list[tuple[float, float]]:
        """[(start, end)] monotonic times of unavailability for host ``name``."""
        out = []
        start = None
        samples = self.samples[name]
        for t, ok in samples:
            if not ok and start is None:
                start = t
            elif ok and start is not None:
                out.append((start, t))
                start = None
        if start is not None and samples:
            out.append((start, samples[-1][0] + self.period))
        return out

    def summary(self) -> dict[str, dict]:
        res = {}
        for h in self.hosts:
            g = self.gaps(h.name)
            s = self.samples[h.name]
            res[h.name] = {
                "samples": len(s),
                "achieved_hz": round(len(s) / (s[-1][0] - s[0][0]), 1) if len(s) > 1 else 0.0,
                "gaps": len(g),
                "longest_gap_ms": round(max((e - b for b, e in g), default=0.0) * 1000),
                "total_unavailable_ms": round(sum(e - b for b, e in g) * 1000),
                "gap_windows": [(round(b, 3), round(e, 3)) for b, e in g],
            }
        return res


# --------------------------------------------------------------------------- writer


class Writer:
    """POST /api/time-entries to one host at ``rate``/s; remember every acknowledged write.

    Each entry carries a unique note ``<prefix><seq>``. A write is *acknowledged*
    when the app answered 201 with an id; only those must survive the fix.
    Requests run one at a time, so a stalled request delays the next (its latency
    is recorded as the writer's stall).
    """

    def __init__(self, host: Host, rate: float = 20.0, timeout: float = 3.0, user_id: int = 1):
        self.host = host
        self.period = 1.0 / rate
        self.timeout = timeout
        self.user_id = user_id
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        self.acked: dict[str, int] = {}
        self.failed: list[tuple[float, str]] = []
        self.latencies: list[float] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        for seq, _tick in enumerate(_ticks(self.period, self._stop), start=1):
            note = f"{self.prefix}{seq}"
            t = time.monotonic()
            try:
                status, body = http_request(self.host.port, "POST", "/api/time-entries",
                                            {"user_id": self.user_id, "minutes": 1, "note": note}, timeout=self.timeout)
                if status == 201 and isinstance(body, dict) and "id" in body:
                    self.acked[note] = int(body["id"])
                else:
                    self.failed.append((t, f"HTTP {status}"))
            except OSError as exc:
                self.failed.append((t, type(exc).__name__))
            self.sent += 1
            self.latencies.append(time.monotonic() - t)

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.host.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def missing_from(self, db: Path) -> list[str]:
        """Acknowledged notes not present in ``db`` (must be empty)."""
        present = notes_in(db, self.prefix)
        return sorted(n for n in self.acked if n not in present)

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "sent": self.sent,
            "acknowledged": len(self.acked),
            "not_acknowledged": len(self.failed),
            "max_latency_ms": round(lat[-1] * 1000) if lat else 0,
            "p99_latency_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000) if len(lat) >= 100 else None,
        }


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- timing and docs


def timing_env(timing_file: Path, extra_callbacks: tuple[str, ...] = ()) -> dict:
    """Environment that enables the dbfix_timing callback writing to ``timing_file``."""
    enabled = ",".join(("dbfix_timing", *extra_callbacks))
    return {
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": enabled,
        "DBFIX_TIMING_FILE": str(timing_file),
    }


def load_timing(timing_file: Path) -> dict:
    """What dbfix_timing wrote; no plays and no tasks when it wrote nothing (the run died before its end)."""
    if not timing_file.exists():
        return {"tasks": [], "plays": []}
    return json.loads(timing_file.read_text(encoding="utf-8"))


def run_figures(run: PlaybookRun, build_s: float, total_s: float, timing: dict) -> dict:
    """The figures every benchmark run starts with: exit code, log, build and run wall time, seconds per phase, tasks."""
    return {
        "rc": run.rc,
        "log": str(run.log),
        "build_s": round(build_s, 1),
        "total_s": round(total_s, 2),
        "phases_s": phase_times(timing),
        "tasks": len(timing["tasks"]),
    }


PHASES = ("phase1", "phase2", "cors", "rollback")


def role_phase(role: str) -> str:
    """phase1/phase2/cors/rollback for a role name (FQCN or short); '' for others."""
    short = role.rsplit(".", maxsplit=1)[-1]
    return short if short in PHASES else ""


def phase_times(timing: dict) -> dict[str, float]:
    """Wall seconds per phase: the sum of its tasks' times (tasks run one after the other).

    ``playbook`` is the playbook's own tasks (timestamps, includes, the report),
    ``setup`` anything before the first role.
    """
    sums: dict[str, float] = {}
    for t in with_phases(timing):
        if t["end"] is not None:
            sums[t["phase"]] = sums.get(t["phase"], 0.0) + t["end"] - t["start"]
    return {ph: round(v, 2) for ph, v in sums.items()}


def with_phases(timing: dict) -> list[dict]:
    """Tasks with a ``phase``: their role's, or for helper roles (``_common``
    imported by a phase role) the phase of the task before them."""
    current = "setup"
    out = []
    for t in timing["tasks"]:
        short = t["role"].rsplit(".", maxsplit=1)[-1]
        if not short:
            current = "playbook"
        elif not short.startswith("_"):
            current = short
        out.append(dict(t, phase=current))
    return out


def slowest_tasks(timing: dict, n: int = 10) -> list[dict]:
    tasks = [t for t in timing["tasks"] if t["end"] is not None]
    tasks.sort(key=lambda t: t["end"] - t["start"], reverse=True)
    return [{"role": t["role"].split(".")[-1], "name": t["name"], "action": t["action"].split(".")[-1],
             "seconds": round(t["end"] - t["start"], 2)} for t in tasks[:n]]


def by_action(timing: dict) -> list[dict]:
    """Where the wall time goes by module: [{action, tasks, seconds, median_s}], biggest first."""
    groups: dict[str, list[float]] = {}
    for t in timing["tasks"]:
        if t["end"] is not None:
            groups.setdefault(t["action"].rsplit(".", maxsplit=1)[-1], []).append(t["end"] - t["start"])
    out = [{"action": a, "tasks": len(v), "seconds": round(sum(v), 2), "median_s": round(sorted(v)[len(v) // 2], 2)}
           for a, v in groups.items()]
    return sorted(out, key=lambda r: r["seconds"], reverse=True)


def pm2_cli_seconds(estate: Estate, n: int = 5) -> float:
    """Median wall time of one `pm2 jlist` against a running daemon: the floor of every pm2 call a module makes."""
    times = []
    for _attempt in range(n):
        t0 = time.monotonic()
        estate.pm2("jlist")
        times.append(time.monotonic() - t0)
    return round(sorted(times)[n // 2], 3)


def tasks_in_window(timing: dict, start_wall: float, end_wall: float) -> list[dict]:
    """Tasks overlapping [start_wall, end_wall] with the seconds of each inside that window."""
    out = []
    for t in timing["tasks"]:
        if t["end"] is None:
            continue
        b, e = max(t["start"], start_wall), min(t["end"], end_wall)
        if e > b:
            out.append({"role": t["role"].split(".")[-1], "name": t["name"], "action": t["action"].split(".")[-1],
                        "seconds_in_window": round(e - b, 3)})
    return out


def update_doc_section(heading: str, body: str, doc: Path | None = None) -> Path:
    """Replace the ``## heading`` section of docs/benchmarks.md (or append it), keeping the others."""
    doc = doc or ROOT / "docs" / "benchmarks.md"
    intro = "# Benchmarks\n\nFigures measured on this project's machines; each section names its machine and date.\n"
    text = doc.read_text(encoding="utf-8") if doc.exists() else intro
    lines = text.splitlines()
    marker = f"## {heading}"
    start = next((i for i, line in enumerate(lines) if line.strip() == marker), None)
    new = [marker, "", *body.strip("\n").splitlines(), ""]
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.extend(new)
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = new
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return doc


def machine_line(info: dict) -> str:
    return (f"Machine: {info['nproc']} CPUs, {info['ram_gib']} GiB RAM, Linux {info['kernel']}, Python {info['python']}, "
            f"Node {info['node']}, pm2 {info['pm2']}, {info['ansible_core']}; load average at start {info['loadavg']}; "
            f"measured {info['date_utc']}.")


# --------------------------------------------------------------------------- snapshots


def _copy_pairs(src_root: Path, dst_root: Path, pairs: int) -> None:
    for p in range(1, pairs + 1):
        src = src_root / f"pair{p}"
        dst = dst_root / f"pair{p}"
        if dst.exists() or dst.is_symlink():
            shutil.rmtree(dst)
        if src.exists():
            shutil.copytree(src, dst, symlinks=True)


def snapshot(estate: Estate, name: str) -> Path:
    """Copy every pair dir (app dirs, DBs, .env, state, shared dir) with the apps stopped, then start them again."""
    dest = estate.root / "snapshots" / name
    dest.mkdir(parents=True, exist_ok=True)
    names = [h.pm2_name for h in estate.hosts]
    estate.pm2("stop", *names)
    try:
        _copy_pairs(estate.root, dest, estate.pairs)
    finally:
        estate.pm2("start", *names)
    estate.wait_healthy()
    return dest


def restore(estate: Estate, name: str) -> None:
    """Put the pair dirs back exactly as snapshot ``name`` saw them and restart the apps.

    The apps are stopped first: a running app would keep the replaced DB inode open.
    If the pm2 daemon lost the processes (killed), the estate builder starts them again.
    """
    src = estate.root / "snapshots" / name
    known = {p["name"] for p in estate.pm2_jlist()}
    names = [h.pm2_name for h in estate.hosts]
    present = [n for n in names if n in known]
    if present:
        estate.pm2("stop", *present)
    _copy_pairs(src, estate.root, estate.pairs)
    if len(present) == len(names):
        estate.pm2("start", *names)
        estate.wait_healthy()
    else:
        if present:
            estate.pm2("delete", *present)
        estate.playbook(BUILD_PLAYBOOK, log_name="rebuild", check=True)
        estate.wait_healthy()
