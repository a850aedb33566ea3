# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles on an app that is not ours: phase 1 -> phase 2 -> CORS -> rollback of each phase.

The app (``tests/foreignapp/app.py``) is a Python notes service (stdlib
``http.server`` + ``sqlite3``) run by real pm2 with ``interpreter: python3`` and
``--port`` passed as script arguments; its schema has no ``users`` or
``time_entries``, it has no migrator, and its health endpoint (``/health``)
answers only ``{"status": "ok"}``. Its folder has no ``server/`` subfolder, its
DB is ``data/notes.sqlite3`` and its pm2 names are ``notes-<color>``: nothing of
the TimeTracking layout. Everything is real: pm2 (own ``PM2_HOME`` under
``tmp_path``, killed at teardown), SQLite files, ``.env`` files, and
``ansible-playbook`` with local connections, as an operator would run it.
No mocks.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PM2 = ROOT / "tests" / "tools" / "node_modules" / ".bin" / "pm2"
APP = ROOT / "tests" / "foreignapp" / "app.py"
TAURI = "tauri://localhost"
SECRET = "s3cr3t-foreign-token-9f2c"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            if s.getsockname()[1] not in (3000, 3001):
                ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def request(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None), resp
    finally:
        conn.close()


def preflight(port: int, origin: str) -> str | None:
    _status, _body, resp = request(port, "OPTIONS", "/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    return resp.getheader("Access-Control-Allow-Origin")


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def rows(db: Path) -> dict[str, list[tuple]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("notes", "tags")}


class Foreign:
    """One blue/green pair of the notes service under ``root``, with its own pm2 daemon."""

    def __init__(self, root: Path):
        self.root = root
        self.pm2_home = root / "pm2"
        self.shared = root / "shared" / "notes-shared.sqlite3"
        self.reports = root / "reports"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        ports = free_ports(2)
        self.hosts = {}
        for color, port in zip(("blue", "green"), ports, strict=True):
            d = root / f"notes-{color}"
            self.hosts[color] = {"color": color, "port": port, "dir": d, "db": d / "data" / "notes.sqlite3",
                                 "env": d / ".env", "name": f"notes-{color}"}

    def env(self) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{VENV_BIN}:{PM2.parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env["PM2_HOME"] = str(self.pm2_home)
        env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_LOCAL_TEMP"] = str(self.root / "ansible-tmp")
        env["ANSIBLE_REMOTE_TEMP"] = str(self.root / "ansible-tmp")
        return env

    def pm2(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(PM2), *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=check)

    def jlist(self) -> dict[str, dict]:
        out = self.pm2("jlist").stdout
        for line in reversed(out.splitlines()):
            if line.startswith("[") and line.rstrip().endswith("]"):
                return {p["name"]: p for p in json.loads(line)}
        return {}

    def build(self, blue_rows: int = 50, green_rows: int = 40) -> None:
        """Each color's own DB: GREEN holds the first ``green_rows`` notes of BLUE, so BLUE holds every row of both.

        The shared DB's folder is prepared by the operator (phase 2 refuses a missing one)."""
        self.shared.parent.mkdir(mode=0o755)
        for h in self.hosts.values():
            (h["dir"] / "data").mkdir(parents=True)
            shutil.copy(APP, h["dir"] / "app.py")
            n = blue_rows if h["color"] == "blue" else green_rows
            with contextlib.closing(sqlite3.connect(h["db"])) as c:
                c.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created REAL NOT NULL);"
                                "CREATE TABLE tags (note_id INTEGER NOT NULL REFERENCES notes(id), tag TEXT NOT NULL,"
                                " PRIMARY KEY (note_id, tag));")
                c.executemany("INSERT INTO notes VALUES (?, ?, ?)", [(i, f"note {i}", 1700000000 + i) for i in range(1, n + 1)])
                c.executemany("INSERT INTO tags VALUES (?, ?)", [(i, "t%d" % (i % 3)) for i in range(1, n + 1, 2)])
                c.commit()
            fd = os.open(h["env"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"# notes service\nAPI_TOKEN={SECRET}\nDB_PATH=data/notes.sqlite3\n")
            self.pm2("start", str(h["dir"] / "app.py"), "--name", h["name"], "--interpreter", "python3",
                     "--cwd", str(h["dir"]), "--", "--port", str(h["port"]))
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.hosts)
        while pending and time.monotonic() < deadline:
            for c in list(pending):
                with contextlib.suppress(OSError):
                    if request(self.hosts[c]["port"], "GET", "/health")[0] == 200:
                        pending.discard(c)
            time.sleep(0.1)
        if pending:
            raise AssertionError(f"not healthy after {timeout}s: {sorted(pending)}")

    def inventory(self) -> Path:
        lines = ["[notes]"]
        for h in self.hosts.values():
            lines.append(f"{h['color']} dbfix_color={h['color']} dbfix_app_dir={h['dir']} dbfix_port={h['port']}"
                         f" dbfix_pm2_name={h['name']}")
        lines += ["", "[notes:vars]", "ansible_connection=local", f"ansible_python_interpreter={VENV_BIN / 'python'}",
                  f"dbfix_shared_db={self.shared}", f"dbfix_pm2_home={self.pm2_home}", f"dbfix_pm2_executable={PM2}", ""]
        inv = self.root / "inventory.ini"
        inv.write_text("\n".join(lines), encoding="utf-8")
        # What a foreign app needs, as an operator would write it in group_vars.
        gv = self.root / "group_vars"
        gv.mkdir(exist_ok=True)
        (gv / "notes.yml").write_text(json.dumps({
            "dbfix_server_dir": "{{ dbfix_app_dir }}",
            "dbfix_db_path": "{{ dbfix_app_dir }}/data/notes.sqlite3",
            "dbfix_env_file": "{{ dbfix_app_dir }}/.env",
            "dbfix_health_url": "http://127.0.0.1:{{ dbfix_port }}/health",
            "dbfix_app_script": "app.py",
            "dbfix_app_interpreter": "python3",
            "dbfix_app_args": ["--port", "{{ dbfix_port }}"],
            "dbfix_phase1_migrations": "none",
            **({"dbfix_report_dir": str(self.reports)} if self.reports else {}),
        }), encoding="utf-8")
        return inv

    def playbook(self, name: str, *args: str, extra: dict | None = None, log: str = "",
                 env: dict | None = None) -> tuple[int, str]:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory()), str(ROOT / "playbooks" / name)]
        if extra:
            cmd += ["-e", json.dumps(extra)]
        cmd += list(args)
        proc = subprocess.run(cmd, check=False, cwd=ROOT, env={**self.env(), **(env or {})}, capture_output=True, text=True, timeout=900)
        text = proc.stdout + proc.stderr
        (self.logs / f"{log or name}-{time.strftime('%H%M%S')}.log").write_text(text, encoding="utf-8")
        return proc.returncode, text

    def state(self, color: str) -> dict:
        return json.loads((self.hosts[color]["dir"] / ".dbfix" / "state.json").read_text())

    def kill(self) -> None:
        """pm2 kill with a timeout, then the God Daemon's pid if it is still alive."""
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.pm2_home / "pm2.pid").read_text().strip())
        with contextlib.suppress(Exception):
            self.pm2("kill", check=False, timeout=60)
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture
def foreign(tmp_path):
    for tool in (PM2, VENV_BIN / "ansible-playbook"):
        if not tool.exists():
            pytest.fail(f"{tool} missing (make node-tools / make venv): this test needs the real tool")
    if shutil.which("python3") is None:
        pytest.fail("python3 not on PATH: pm2 runs the foreign app with interpreter python3")
    f = Foreign(tmp_path / "estate")
    try:
        f.build()
        yield f
    finally:
        f.kill()


def test_foreign_app_phase1_phase2_cors_and_rollbacks(foreign):
    blue, green = foreign.hosts["blue"], foreign.hosts["green"]
    rows_before = {c: rows(h["db"]) for c, h in foreign.hosts.items()}
    db_sha_before = {c: sha256(h["db"]) for c, h in foreign.hosts.items()}
    env_before = {c: h["env"].read_bytes() for c, h in foreign.hosts.items()}

    # pm2 lost GREEN: phase 1's health gate must start it again with interpreter python3 and its --port argument.
    foreign.pm2("delete", green["name"])

    # ---- phase 1: no migrations, a body pattern on a plain {"status": "ok"} health answer
    rc, out = foreign.playbook("phase1.yml", extra={"dbfix_health_body_regex": '"status": *"ok"'}, log="phase1")
    assert rc == 0, tail(out)
    procs = foreign.jlist()
    env = procs[green["name"]]["pm2_env"]
    assert procs[green["name"]]["pm2_env"]["status"] == "online"
    assert os.path.basename(env["exec_interpreter"]) == "python3", env["exec_interpreter"]
    assert env.get("args") == ["--port", str(green["port"])], env.get("args")
    for c, h in foreign.hosts.items():
        assert request(h["port"], "GET", "/health")[:2] == (200, {"status": "ok"})
        assert rows(h["db"]) == rows_before[c], "phase 1 without migrations must not touch a row"
        backups = sorted(h["db"].parent.glob("notes.sqlite3.backup.*"))
        assert len(backups) == 1, backups
        assert rows(backups[0]) == rows_before[c]
        rec = foreign.state(c)["phase1"]
        assert rec["backup_file"] == str(backups[0]) and rec["db_path"] == str(h["db"])
        assert rec["db_inode"] == h["db"].stat().st_ino
    report = json.loads(sorted(foreign.reports.glob("*-phase1.json"))[-1].read_text())
    assert report["ok"] is True
    assert report["hosts"]["blue"]["phase1"]["migrations"]["mode"] == "none"

    # ---- phase 2: one shared DB (BLUE holds every row of GREEN)
    rc, out = foreign.playbook("phase2.yml", log="phase2")
    assert rc == 0, tail(out, 80)
    shared = foreign.shared.resolve()
    for c, h in foreign.hosts.items():
        assert h["db"].is_symlink() and h["db"].resolve() == shared
        old = Path(str(h["db"]) + ".OLD")
        assert old.is_file() and rows(old) == rows_before[c]
        assert request(h["port"], "GET", "/health")[0] == 200
    assert rows(shared) == rows_before["blue"], "the shared DB holds every row of the base"
    status, body, _dummy = request(blue["port"], "POST", "/notes", {"body": "written through blue"})
    assert status == 201, body
    assert request(green["port"], "GET", "/notes")[1]["count"] == len(rows_before["blue"]["notes"]) + 1

    # ---- CORS: ALLOWED_ORIGINS in the app's own .env, the other keys kept, preflight through the health path
    rc, out = foreign.playbook("cors.yml", log="cors")
    assert rc == 0, tail(out)
    for h in foreign.hosts.values():
        text = h["env"].read_text()
        assert f"API_TOKEN={SECRET}" in text and "DB_PATH=data/notes.sqlite3" in text
        assert "ALLOWED_ORIGINS=" in text and TAURI in text
        assert oct(h["env"].stat().st_mode & 0o777) == "0o600"
        assert preflight(h["port"], TAURI) == TAURI
        assert preflight(h["port"], "https://evil.example") is None
    assert SECRET not in out
    for f in foreign.reports.glob("*"):
        assert SECRET not in f.read_text()

    # ---- rollback, newest first: CORS, phase 2, phase 1
    rc, out = foreign.playbook("rollback.yml", extra={"dbfix_rollback_phase": "cors"}, log="rb-cors")
    assert rc == 0, tail(out)
    for c, h in foreign.hosts.items():
        assert h["env"].read_bytes() == env_before[c]
        assert preflight(h["port"], TAURI) is None

    rc, out = foreign.playbook("rollback.yml", extra={"dbfix_rollback_phase": "phase2"}, log="rb-phase2")
    assert rc == 0, tail(out)
    for c, h in foreign.hosts.items():
        assert not h["db"].is_symlink() and h["db"].is_file()
        assert not Path(str(h["db"]) + ".OLD").exists()
        assert rows(h["db"]) == rows_before[c]
        assert request(h["port"], "GET", "/health")[0] == 200
    assert shared.exists(), "the shared DB (with the row written after phase 2) stays"

    rc, out = foreign.playbook("rollback.yml", extra={"dbfix_rollback_phase": "phase1"}, log="rb-phase1")
    assert rc == 0, tail(out)
    foreign.pm2("stop", blue["name"], green["name"])
    try:
        for c, h in foreign.hosts.items():
            assert rows(h["db"]) == rows_before[c]
            assert sha256(h["db"]) == db_sha_before[c], "the app's own DB file is back byte for byte"
            assert foreign.state(c)["phase1"]["rolled_back"]
    finally:
        foreign.pm2("start", blue["name"], green["name"])
    foreign.wait_healthy()

    # A second rollback of phase 1 has nothing left to do. Without dbfix_report_dir the report goes to the
    # controller user's data folder ($XDG_DATA_HOME/bluegreen.dbfix/reports), never into the collection.
    xdg = foreign.root / "xdg"
    foreign.reports = None
    before = {p for p in ROOT.rglob("*-rollback.json") if ".venv" not in p.parts}
    rc, out = foreign.playbook("rollback.yml", extra={"dbfix_rollback_phase": "phase1"}, log="rb-phase1-again",
                               env={"XDG_DATA_HOME": str(xdg)})
    assert rc == 0, tail(out)
    written = sorted((xdg / "bluegreen.dbfix" / "reports").glob("*-rollback.json"))
    assert len(written) == 1, out
    report = json.loads(written[0].read_text())
    assert report["hosts"]["blue"]["rollback"]["changed"] is False
    assert "already rolled back" in report["hosts"]["blue"]["rollback"]["note"]
    assert {p for p in ROOT.rglob("*-rollback.json") if ".venv" not in p.parts} == before


def test_foreign_app_health_body_pattern_that_does_not_match_fails_phase1(foreign):
    """Only the configured status counts, and a configured body pattern that the answer lacks fails the gate."""
    dbs = {c: sha256(h["db"]) for c, h in foreign.hosts.items()}
    rc, out = foreign.playbook("phase1.yml", extra={"dbfix_health_body_regex": "^never-in-this-body$"}, log="p1-body")
    assert rc != 0
    assert "Phase 1 failed" in out and "does not match health_body_regex" in out
    for c, h in foreign.hosts.items():
        assert sha256(h["db"]) == dbs[c]
        assert request(h["port"], "GET", "/health")[0] == 200
