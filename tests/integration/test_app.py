# SPDX-License-Identifier: GPL-3.0-or-later
"""The Node.js test app (tests/app) and the estate's DB generator, for real.

Each test copies the app into a temp server folder (node_modules linked, as the
estate does), builds its DB with the estate's generator, starts ``node
server.js`` on a free port and talks HTTP to it on 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "app"
GENERATOR = ROOT / "tests" / "estate" / "roles" / "estate" / "files" / "make_estate_db.py"
APP_FILES = ("package.json", "package-lock.json", "config.js", "migrate.js", "server.js")
UP_TO_DATE = "No pending migrations - database is up to date"
# Variables the app reads; the test's own environment must not leak into it.
APP_ENV_KEYS = ("PORT", "HOST", "APP_COLOR", "COLOR", "DB_PATH", "ALLOWED_ORIGINS", "JWT_SECRET", "NODE_ENV")


@pytest.fixture(scope="session", autouse=True)
def node_modules():
    if not (APP / "node_modules" / "better-sqlite3" / "package.json").exists():
        pytest.fail(f"{APP}/node_modules is missing: run `make node-tools` (npm ci in tests/app)")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js >= 18")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(db: Path, role: str, *extra: str, migrations: Path = APP / "migrations") -> dict:
    proc = subprocess.run([sys.executable, str(GENERATOR), "--db", str(db), "--role", role,
                           "--migrations-dir", str(migrations), *extra],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def dump_sha(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def rows(db: Path, table: str) -> set:
    conn = sqlite3.connect(db)
    try:
        return set(conn.execute(f'SELECT * FROM "{table}"'))
    finally:
        conn.close()


def columns(db: Path, table: str) -> list:
    conn = sqlite3.connect(db)
    try:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    finally:
        conn.close()


class App:
    """A server folder under tmp_path, and the node process serving it."""

    def __init__(self, base: Path, color: str = "green", role: str = "staging", env_lines: tuple = ()):
        self.dir = base / f"TimeTracking-{color}" / "server"
        self.dir.mkdir(parents=True)
        for name in APP_FILES:
            shutil.copy2(APP / name, self.dir / name)
        shutil.copytree(APP / "migrations", self.dir / "migrations")
        (self.dir / "node_modules").symlink_to(APP / "node_modules")
        self.port = free_port()
        self.color = color
        self.role = role
        (self.dir / ".env").write_text("\n".join((f"PORT={self.port}", "NODE_ENV=production", "JWT_SECRET=test-only",
                                                 f"APP_COLOR={color}", *env_lines)) + "\n", encoding="utf-8")
        self.db = self.dir / "database.db"
        self.proc = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in APP_ENV_KEYS}
        return env

    def build_db(self, *extra: str) -> dict:
        return generate(self.db, self.role, *extra)

    def start(self) -> App:
        self.log = open(self.dir / "server.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(["node", "server.js"], cwd=self.dir, env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {(self.dir / 'server.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server on port {self.port} never listened: {(self.dir / 'server.log').read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            hdrs = dict(headers or {})
            if payload is not None:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            data = json.loads(raw) if raw else None
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def migrate(self) -> subprocess.CompletedProcess:
        return subprocess.run(["npm", "run", "migrate"], cwd=self.dir, env=self.env(), capture_output=True, text=True,
                              check=False, timeout=120)


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def factory(**kwargs) -> App:
        app = App(tmp_path, **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.stop(signal.SIGKILL)


# ---- the app -----------------------------------------------------------------


def test_health_reports_real_path_of_the_db_it_opened(make_app, tmp_path):
    app = make_app(color="blue", role="production")
    shared = tmp_path / "database-shared.db"
    generate(shared, "production")
    app.db.symlink_to(shared)  # what phase 2 does: database.db -> shared DB

    status, _headers, body = app.start().request("GET", "/api/health")

    assert status == 200
    assert body == {"status": "ok", "color": "blue", "db": str(shared.resolve())}


def test_health_is_500_when_the_db_is_missing(make_app):
    app = make_app(color="blue", role="production").start()  # no DB built

    status, _headers, body = app.request("GET", "/api/health")

    assert status == 500
    assert body["status"] == "error"
    assert "database.db" in body["error"] or "unable to open" in body["error"]
    assert not app.db.exists(), "the server must not create an empty DB"


def test_users_me_is_500_without_position_and_200_after_the_apps_migrator(make_app):
    app = make_app(color="green", role="staging")
    app.build_db()
    app.start()

    status, _headers, body = app.request("GET", "/api/users/me")
    assert status == 500
    assert "no such column: position" in body["error"]

    first = app.migrate()
    assert first.returncode == 0, first.stderr
    assert "Applied 002_add_users_position.sql" in first.stdout.splitlines()
    assert UP_TO_DATE not in first.stdout

    second = app.migrate()
    assert second.returncode == 0, second.stderr
    assert UP_TO_DATE in second.stdout.splitlines()
    assert "Applied" not in second.stdout

    status, _headers, body = app.request("GET", "/api/users/me")
    assert status == 200
    assert body == {"id": 1, "name": "Anna Schmidt", "email": "anna.schmidt@timetracking.example", "position": None}
    assert "position" in columns(app.db, "users")
    assert {r[0] for r in rows(app.db, "app_migrations")} == {"001_init.sql", "002_add_users_position.sql"}


def test_migrator_rolls_back_a_failing_migration_and_keeps_earlier_ones(make_app):
    app = make_app(color="green", role="staging")
    app.build_db()
    # 003 changes the schema, then fails: its ALTER must be rolled back with it.
    (app.dir / "migrations" / "003_broken.sql").write_text(
        "ALTER TABLE users ADD COLUMN nickname TEXT;\nINSERT INTO no_such_table VALUES (1);\n", encoding="utf-8")

    proc = app.migrate()

    assert proc.returncode != 0
    assert "Applied 002_add_users_position.sql" in proc.stdout
    assert "003_broken.sql" in proc.stderr and "no such table" in proc.stderr
    assert "nickname" not in columns(app.db, "users")
    assert "position" in columns(app.db, "users")
    assert {r[0] for r in rows(app.db, "app_migrations")} == {"001_init.sql", "002_add_users_position.sql"}


def test_post_time_entry_writes_a_row(make_app):
    app = make_app(color="blue", role="production")
    app.build_db()
    before = len(rows(app.db, "time_entries"))
    app.start()

    status, _headers, body = app.request("POST", "/api/time-entries", {"user_id": 3, "minutes": 45, "note": "pytest entry"})

    assert status == 201
    conn = sqlite3.connect(app.db)
    try:
        row = conn.execute("SELECT user_id, minutes, note FROM time_entries WHERE id = ?", (body["id"],)).fetchone()
        count = conn.execute("SELECT count(*) FROM time_entries").fetchone()[0]
    finally:
        conn.close()
    assert row == (3, 45, "pytest entry")
    assert count == before + 1


def test_post_time_entry_rejects_unknown_user_and_bad_input(make_app):
    app = make_app(color="blue", role="production")
    app.build_db()
    before = rows(app.db, "time_entries")
    app.start()

    assert app.request("POST", "/api/time-entries", {"user_id": 999, "minutes": 30})[0] == 400
    assert app.request("POST", "/api/time-entries", {"user_id": 1, "minutes": -5})[0] == 400
    assert rows(app.db, "time_entries") == before


def test_stats_counts_rows_per_table(make_app):
    app = make_app(color="blue", role="production")
    built = app.build_db()
    app.start()

    status, _headers, body = app.request("GET", "/api/stats")

    assert status == 200
    assert body["tables"] == built["rows"]
    assert body["tables"]["users"] == 14


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_exits_0(make_app, sig):
    app = make_app(color="blue", role="production")
    app.build_db()
    app.start()

    assert app.stop(sig) == 0
    assert f"{signal.Signals(sig).name} received" in (app.dir / "server.log").read_text()


# ---- CORS ----------------------------------------------------------------------

ORIGINS = "tauri://localhost,https://tauri.localhost,http://localhost:1420,http://localhost:1421"


def test_cors_preflight_allows_only_listed_origins(make_app):
    app = make_app(color="blue", role="production", env_lines=(f"ALLOWED_ORIGINS={ORIGINS}",))
    app.build_db()
    app.start()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    status, headers, _body = app.request("OPTIONS", "/api/time-entries", headers={"Origin": "tauri://localhost", **preflight})
    assert status == 204
    assert headers["access-control-allow-origin"] == "tauri://localhost"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["vary"] == "Origin"

    status, headers, _body = app.request("OPTIONS", "/api/time-entries", headers={"Origin": "http://evil.example", **preflight})
    assert status == 204
    assert "access-control-allow-origin" not in headers

    status, headers, _body = app.request("GET", "/api/health", headers={"Origin": "http://localhost:1421"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://localhost:1421"


def test_cors_refuses_every_origin_without_allowed_origins(make_app):
    app = make_app(color="green", role="staging")  # the estate's .env: no ALLOWED_ORIGINS
    app.build_db()
    app.start()

    preflight = {"Origin": "tauri://localhost", "Access-Control-Request-Method": "GET"}
    status, headers, _body = app.request("OPTIONS", "/api/health", headers=preflight)

    assert status == 204
    assert "access-control-allow-origin" not in headers


# ---- the estate's DB generator -------------------------------------------------


def test_generator_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    generate(a, "production")
    generate(b, "production")
    generate(c, "production", "--seed", "7")

    assert dump_sha(a) == dump_sha(b)
    assert dump_sha(a) != dump_sha(c), "the seed must matter, or this test proves nothing"


def test_generator_leaves_an_existing_db_alone_without_force(tmp_path):
    db = tmp_path / "blue.db"
    generate(db, "production")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM time_entries WHERE id = 1")
    conn.commit()
    conn.close()
    before = dump_sha(db)

    result = generate(db, "production")
    assert result["changed"] is False
    assert dump_sha(db) == before

    result = generate(db, "production", "--force")
    assert result["changed"] is True
    assert dump_sha(db) != before


def test_data_story_blue_holds_every_green_row_after_green_migrates(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    b = generate(blue, "production")
    g = generate(green, "staging")

    assert b["users_columns"][-1] == "position" and "position" not in g["users_columns"]
    assert g["migrations_pending"] == ["002_add_users_position.sql"] and b["migrations_pending"] == []
    assert green.stat().st_size > blue.stat().st_size, "GREEN must be the bigger file (the seed's size rule picks it)"
    assert b["newest_time_entry"] > g["newest_time_entry"]
    conn = sqlite3.connect(blue)
    inactive = conn.execute("SELECT count(*) FROM users WHERE active = 0").fetchone()[0]
    conn.close()
    assert b["rows"]["users"] == 14 and 0 < inactive < 14

    conn = sqlite3.connect(green)
    conn.execute("ALTER TABLE users ADD COLUMN position TEXT")  # what migration 002 does
    conn.commit()
    conn.close()
    for table in ("users", "projects", "time_entries"):
        missing = rows(green, table) - rows(blue, table)
        assert not missing, f"{table}: GREEN rows BLUE lacks: {sorted(missing)[:3]}"
    assert len(rows(blue, "time_entries")) > len(rows(green, "time_entries")), "BLUE has production-only rows"


def test_data_story_diverged_gives_each_db_rows_the_other_lacks(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    generate(blue, "production", "--diverged")
    generate(green, "staging", "--diverged")
    conn = sqlite3.connect(green)
    conn.execute("ALTER TABLE users ADD COLUMN position TEXT")
    conn.commit()
    conn.close()

    for table in ("users", "time_entries"):
        assert rows(green, table) - rows(blue, table), f"{table}: GREEN has nothing BLUE lacks"
        assert rows(blue, table) - rows(green, table), f"{table}: BLUE has nothing GREEN lacks"


def test_generator_size_knob_grows_both_colors_with_the_same_rows(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    b = generate(blue, "production", "--size-mb", "8")
    g = generate(green, "staging", "--size-mb", "8")

    assert b["history_rows"] == g["history_rows"] > 0
    assert blue.stat().st_size >= 8 * 1024 * 1024
    assert green.stat().st_size > blue.stat().st_size
    conn = sqlite3.connect(green)
    conn.execute("ALTER TABLE users ADD COLUMN position TEXT")
    conn.commit()
    conn.close()
    assert not rows(green, "time_entries") - rows(blue, "time_entries")
