# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks shared by the Molecule scenarios' testinfra tests.

Everything runs *inside* the containers (``podman exec`` through testinfra's
podman backend): HTTP goes to 127.0.0.1 in the app's own container, SQLite is
read with the sqlite3 CLI, pm2 with ``pm2 jlist``. What prepare recorded is in
``/var/lib/dbfix-molecule/before.json`` (+ ``before.db``) of each container.
"""

from __future__ import annotations

import glob
import json
import os
import shlex

import testinfra

RECORD_DIR = "/var/lib/dbfix-molecule"
COLORS = ("blue", "green")
FOREIGN_ORIGIN = "http://evil.example"
TAURI_ORIGIN = "tauri://localhost"


def get_host(color):
    return testinfra.get_host("podman://" + color)


def run_ok(host, cmd):
    """Run a shell command in the container; fail the test with its output otherwise."""
    res = host.run(cmd)
    assert res.rc == 0, "command failed in %s (rc=%s): %s\nstdout: %s\nstderr: %s" % (
        host.backend.get_hostname(), res.rc, cmd, res.stdout, res.stderr)
    return res.stdout


def before(host):
    """The record prepare wrote before any fix ran."""
    return json.loads(run_ok(host, "cat %s/before.json" % RECORD_DIR))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTP %s %r %s>" % (self.status, self.headers, self.body[:300])


def http(host, method, port, path, *, headers=None, data=None):
    """curl inside the container against 127.0.0.1:port; returns a Response."""
    cmd = ["curl", "-sS", "-i", "--max-time", "10", "-X", method]
    for name, value in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (name, value)]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(data)]
    cmd.append("http://127.0.0.1:%d%s" % (int(port), path))
    out = run_ok(host, " ".join(shlex.quote(c) for c in cmd))
    head, _sep, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        hdrs[name.strip().lower()] = value.strip()
    return Response(status, hdrs, body)


def sqlite_json(host, db, sql):
    """Rows of a query as a list of dicts (sqlite3 -json, read-only)."""
    out = run_ok(host, "sqlite3 -readonly -json %s %s" % (shlex.quote(db), shlex.quote(sql)))
    return json.loads(out) if out.strip() else []


def sha256(host, path):
    return run_ok(host, "sha256sum %s" % shlex.quote(path)).split()[0]


def pm2_processes(host):
    """pm2 jlist as a list of dicts. `pm2 ping` first: pm2's very first call
    in a container prints a banner on stdout, which would break the JSON."""
    run_ok(host, "pm2 ping >/dev/null 2>&1; true")
    return json.loads(run_ok(host, "pm2 jlist"))


def pm2_status(host, name):
    procs = {p["name"]: p for p in pm2_processes(host)}
    assert name in procs, "pm2 in %s has no process %s (has %s)" % (host.backend.get_hostname(), name, sorted(procs))
    return procs[name]["pm2_env"]["status"]


def tables(host, db):
    return [r["name"] for r in sqlite_json(
        host, db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def columns(host, db, table):
    return [r["name"] for r in sqlite_json(host, db, "SELECT name FROM pragma_table_info('%s')" % table.replace("'", "''"))]


def rows_missing(host, db, other_db, skip_tables=("app_migrations", "schema_migrations")):
    """Rows of ``db`` that ``other_db`` lacks, per table, compared on the
    columns ``db`` has (a column added by a migration on the other side is
    ignored). Returns {table: count} for tables with missing rows."""
    missing = {}
    for table in tables(host, db):
        if table in skip_tables:
            continue
        cols = ", ".join('"%s"' % c.replace('"', '""') for c in columns(host, db, table))
        quoted = '"%s"' % table.replace('"', '""')
        sql = ("ATTACH %s AS other; SELECT count(*) AS n FROM (SELECT %s FROM main.%s EXCEPT SELECT %s FROM other.%s);"
               % ("'%s'" % other_db.replace("'", "''"), cols, quoted, cols, quoted))
        n = sqlite_json(host, db, sql)[0]["n"]
        if n:
            missing[table] = n
    return missing


def quick_check(host, db):
    return run_ok(host, "sqlite3 -readonly %s 'PRAGMA quick_check'" % shlex.quote(db)).strip()


def reports_of_this_run(playbook):
    """JSON reports (parsed, with their path) of ``playbook`` written on the
    controller under the repo's reports/ since this scenario's prepare, for
    this scenario's hosts (other runs, e.g. `make demo`, write there too).
    Oldest first."""
    root = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.getcwd()
    since = prepared_at()
    found = []
    for path in glob.glob(os.path.join(root, "reports", "*-%s.json" % playbook)):
        if os.path.getmtime(path) < since:
            continue
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
        hosts = report.get("hosts", {})
        if hosts.get("blue", {}).get("app_dir") == "/home/ubuntu/TimeTracking-BLUE" and "green" in hosts:
            report["_path"] = path
            found.append(report)
    return sorted(found, key=lambda r: os.path.getmtime(r["_path"]))


def prepared_at():
    """Epoch seconds when prepare finished (written by record.yml)."""
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "prepared_at"), encoding="utf-8") as fh:
        return int(fh.read().strip())


def after_phase1(host):
    """The record converge-phase2-must-fail.yml wrote between phase 1 and phase 2."""
    return json.loads(run_ok(host, "cat %s/after-phase1.json" % RECORD_DIR))


def phase2_run():
    """rc/stdout/stderr of the phase 2 run that had to fail (controller side)."""
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "phase2-run.json"), encoding="utf-8") as fh:
        return json.load(fh)


def assert_on_own_db(host, rec, expect_sha256=None):
    """database.db is the app's own regular file again (no link, no .OLD left),
    optionally byte-identical to a recorded sha256, and the app has it open."""
    db = host.file(rec["db_path"])
    assert db.exists and db.is_file and not db.is_symlink, "%s is not a regular file" % rec["db_path"]
    assert not host.file(rec["db_path"] + ".OLD").exists, "%s.OLD is still there" % rec["db_path"]
    if expect_sha256 is not None:
        assert sha256(host, rec["db_path"]) == expect_sha256, "%s is not byte-identical to the recorded file" % rec["db_path"]
    resp = http(host, "GET", rec["port"], "/api/health")
    assert resp.status == 200, resp
    assert resp.json()["db"] == rec["db_path"], resp
