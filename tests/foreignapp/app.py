# SPDX-License-Identifier: GPL-3.0-or-later
"""A small notes service that is *not* the TimeTracking app: the roles must drive it too.

Another runtime (Python, stdlib only), another schema (``notes`` and ``tags``; no
``users`` or ``time_entries``), no migrator, and a health endpoint that answers
only ``{"status": "ok"}``. It holds one SQLite connection open for its whole life,
as most apps do.

    python3 app.py --port 8080 [--db data/notes.sqlite3]

Settings come from the process environment and, for keys not set there, from
``.env`` in the working directory (like Node's dotenv: the environment wins):
``DB_PATH`` (default ``data/notes.sqlite3``), ``ALLOWED_ORIGINS`` (comma
separated; CORS preflights from these origins are allowed).

Routes: ``GET /health``, ``GET /notes`` (count and newest ids), ``POST /notes``
(JSON ``{"body": ...}`` -> 201 ``{"id": N}``), ``OPTIONS *`` (CORS preflight).
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def read_dotenv(path: str) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments; single or double quotes around a value are removed."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return out
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _dummy, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def setting(name: str, default: str = "") -> str:
    if name in os.environ:
        return os.environ[name]
    return read_dotenv(".env").get(name, default)


SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tags (note_id INTEGER NOT NULL REFERENCES notes(id), tag TEXT NOT NULL,
                                 PRIMARY KEY (note_id, tag));
"""


class App:
    def __init__(self, db_path: str, origins: list[str]):
        self.db_path = db_path
        self.origins = origins
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(db_path, timeout=5, check_same_thread=False, isolation_level=None)
        self.conn.executescript(SCHEMA)


def make_handler(app: App):
    class Handler(BaseHTTPRequestHandler):
        server_version = "notes/1"

        def log_message(self, fmt, *args):  # quiet: pm2 keeps the logs small
            pass

        def _send(self, status: int, body: dict | None = None, headers: dict | None = None):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

        def _cors(self) -> dict:
            origin = self.headers.get("Origin", "")
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin in app.origins else {}

        def do_OPTIONS(self):
            headers = self._cors()
            if headers:
                headers["Access-Control-Allow-Methods"] = "GET, POST"
            self._send(204, None, headers)

        def do_GET(self):
            if self.path == "/health":
                self._send(200, {"status": "ok"}, self._cors())
            elif self.path == "/notes":
                with app.lock:
                    count = app.conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
                self._send(200, {"count": count}, self._cors())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/notes":
                self._send(404, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")["body"]
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": "JSON {\"body\": ...} expected"})
                return
            with app.lock:
                cur = app.conn.execute("INSERT INTO notes (body, created) VALUES (?, strftime('%s','now'))", (str(body),))
            self._send(201, {"id": cur.lastrowid}, self._cors())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    db_path = args.db or setting("DB_PATH", "data/notes.sqlite3")
    origins = [o.strip() for o in setting("ALLOWED_ORIGINS").split(",") if o.strip()]
    app = App(db_path, origins)
    ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(app)).serve_forever()


if __name__ == "__main__":
    main()
