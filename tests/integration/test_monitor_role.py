# SPDX-License-Identifier: GPL-3.0-or-later
"""The monitor role and check.yml on a real local estate (two pairs of the Node test app under real pm2).

The estate builder lays out the incident (each color on its own DB); ``share()`` then puts each pair in
the state phase 2 leaves (apps stopped, blue's DB copied with SQLite's backup API to the shared file, each
database.db moved to .OLD and replaced by a link, apps started again). It does this directly, not through
phase2.yml, so these tests do not depend on the phase roles.

Schedule: systemd is not PID 1 on this machine or in its containers, so the role chooses cron here
(``auto``). The tests (1) run the exact command line of the installed crontab entry, and (2) start the real
``cron`` daemon (Debian package cron) and wait for it to run the checker on its own (a ``*/1`` job fires
within about two minutes). The systemd units are checked with ``systemd-analyze verify``.

Drift: an app with an old SQLite is a real Python process (host libsqlite3, 3.40.1 on Debian 12) run under
pm2 as the green color, holding the shared DB open; a re-pointed DB is a real link to the .OLD file.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from _estate import H, built

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils'))
from test_monitor_checks import parse_prometheus

EXPECT = {'users': ['id', 'email', 'position']}
CHECKS = ('schema', 'migrations', 'quick_check', 'shared_link', 'process', 'open_files', 'sqlite_library', 'wal_size', 'disk_free')


def recap(run) -> dict[str, dict[str, int]]:
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", run.text(), re.M):
        out[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
    return out


def share(estate) -> None:
    """Put every pair on one shared DB, as phase 2 leaves it."""
    names = [h.pm2_name for h in estate.hosts]
    estate.pm2("stop", *names)
    for p in range(1, estate.pairs + 1):
        blue = estate.host(p, "blue")
        shared = blue.shared_db
        shared.parent.mkdir(parents=True, exist_ok=True)
        src, dst = sqlite3.connect(str(blue.db_path)), sqlite3.connect(str(shared))
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
        src.close()
        dst.close()
        for h in estate.pair_hosts(p):
            for suffix in ("", "-wal", "-shm"):
                f = Path(str(h.db_path) + suffix)
                if f.exists():
                    os.rename(f, str(h.db_path) + ".OLD" + suffix)
            h.db_path.symlink_to(shared)
    estate.pm2("start", *names)
    estate.wait_healthy()


@pytest.fixture(scope="module")
def mon_estate():
    with built("monitor", pairs=2, playbooks=("check.yml", "monitor.yml")) as estate:
        share(estate)
        H.snapshot(estate, "shared")
        yield estate


@pytest.fixture
def estate(mon_estate):
    H.restore(mon_estate, "shared")
    mon_estate.wait_healthy()
    return mon_estate


def report_rows(md: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
    rows = {}
    for line in md.read_text().splitlines():
        m = re.match(r"^\| (\S+) \| (\S+) \| (\S+) \| (ok|fail|skip) \| (.*) \|$", line)
        if m:
            rows[(m.group(1), m.group(2), m.group(3))] = (m.group(4), m.group(5))
    return rows


def test_check_playbook_prints_one_table_for_two_pairs(estate):
    reports = estate.root / "check-reports"
    evars = {"dbfix_monitor_expect_columns": EXPECT, "dbfix_monitor_report_dir": str(reports)}
    run = estate.playbook("check.yml", extra_vars=evars, log_name="check-1")
    assert run.rc == 0, run.tail(60)
    md = sorted(reports.glob("*-check.md"))[-1]
    rows = report_rows(md)
    assert len(rows) == 2 * 2 * len(CHECKS), rows
    bad = {k: v for k, v in rows.items() if v[0] == "fail"}
    assert not bad, bad
    assert rows[("pair2", "green", "sqlite_library")][0] == "ok" and "better_sqlite3.node" in rows[("pair2", "green", "sqlite_library")][1]
    assert rows[("pair1", "blue", "migrations")][0] == "skip"
    # the same table is printed
    text = run.text()
    assert re.search(r"pair\s+color\s+check\s+state\s+detail", text)
    assert re.search(r"pair2\s+green\s+shared_link\s+ok\s+", text)
    assert "0 problem(s) in 36 check(s)." in text
    assert json.loads(md.with_suffix(".json").read_text())["rows"]

    # Drift: pair 2's GREEN re-pointed to its old file (the staging DB without users.position).
    green = estate.host(2, "green")
    green.db_path.unlink()
    green.db_path.symlink_to(str(green.db_path) + ".OLD")
    time.sleep(1.1)  # a new report stamp
    run = estate.playbook("check.yml", extra_vars=dict(evars, dbfix_monitor_fail_on_problem=True), log_name="check-2")
    assert run.rc != 0 and recap(run)["p2-green"]["failed"] == 1 and recap(run)["p1-green"]["failed"] == 0, run.tail(60)
    rows = report_rows(sorted(reports.glob("*-check.md"))[-1])
    assert rows[("pair2", "green", "shared_link")][0] == "fail"
    assert rows[("pair2", "green", "schema")] == ("fail", "table users lacks column position")
    assert {k for k, v in rows.items() if v[0] == "fail"} == {("pair2", "green", "shared_link"), ("pair2", "green", "schema")}
    assert "2 problem(s) in 36 check(s)." in run.text()


# --------------------------------------------------------------------------- the scheduled checker


class Receiver:
    def __init__(self):
        self.posts = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/dbfix" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ok_metric(samples, pair, color, check):
    return samples.get(("dbfix_check_ok", frozenset({("pair", pair), ("color", color), ("check", check)})))


def cron_command(cron_file: Path) -> str:
    """The command of the one job line in a /etc/cron.d file (five time fields, then the user)."""
    jobs = [ln for ln in cron_file.read_text().splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    assert fields[:5] == ["*/1", "*", "*", "*", "*"] and fields[5] == "root", fields
    return fields[6]


def run_as_cron(command: str) -> int:
    """Run a crontab command line as cron does: /bin/sh -c, the file's PATH, no other environment."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SHELL": "/bin/sh", "HOME": "/root"}
    return subprocess.run(["/bin/sh", "-c", command], env=env, timeout=120, check=False).returncode


@contextlib.contextmanager
def cron_daemon():
    """The real cron daemon running (started here when it is not, and stopped again)."""
    cron = shutil.which("cron") or "/usr/sbin/cron"
    assert os.path.exists(cron), "cron is not installed (Debian package cron; scripts/setup-system.sh)"
    pid_file = Path("/run/crond.pid")

    def running():
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
            return True
        except (OSError, ValueError):
            return False

    started = None
    if not running():
        subprocess.run([cron], check=True, timeout=30)
        deadline = time.monotonic() + 10
        while not running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running(), "cron did not start"
        started = int(pid_file.read_text().strip())
    try:
        yield
    finally:
        if started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(started, signal.SIGTERM)


def python_app_under_pm2(estate, host, tmp: Path) -> None:
    """Replace the color's app with a Python process on the host's libsqlite3 holding its DB open."""
    script = tmp / "old_sqlite_app.py"
    script.write_text("import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1])\n"
                      "c.execute('SELECT count(*) FROM users').fetchone()\ntime.sleep(3600)\n")
    estate.pm2("delete", host.pm2_name)
    estate.pm2("start", str(script), "--name", host.pm2_name, "--interpreter", sys.executable, "--", str(host.db_path))


def node_app_under_pm2(estate, host) -> None:
    estate.pm2("delete", host.pm2_name)
    subprocess.run([str(H.PM2), "start", "server.js", "--name", host.pm2_name], cwd=host.server_dir, env=estate.env(),
                   capture_output=True, check=True, timeout=120)
    estate.wait_healthy(hosts=[host])


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))


def test_monitor_role_cron_drift_webhook_and_absent(estate, tmp_path):
    base = estate.root / "monitor"
    cron_file = Path("/etc/cron.d/dbfix-monitor-test-%s" % uuid.uuid4().hex[:8])
    receiver = Receiver()
    evars = {
        "dbfix_monitor_scheduler": "auto", "dbfix_monitor_interval_minutes": 1,
        "dbfix_monitor_bin": str(base / "bin" / "dbfix-monitor"), "dbfix_monitor_lib_dir": str(base / "lib"),
        "dbfix_monitor_conf_dir": str(base / "etc"), "dbfix_monitor_cron_file": str(cron_file),
        "dbfix_monitor_unit_dir": str(base / "units"),
        "dbfix_monitor_metrics_file": str(base / "textfile" / "dbfix.prom"),
        "dbfix_monitor_state_file": str(base / "state" / "state.json"),
        "dbfix_monitor_webhook_url": receiver.url, "dbfix_monitor_webhook_timeout": 5,
        "dbfix_monitor_expect_columns": EXPECT,
    }
    (base / "bin").mkdir(parents=True)
    prom = base / "textfile" / "dbfix.prom"
    try:
        first = estate.playbook("monitor.yml", extra_vars=evars, log_name="monitor-1")
        assert first.rc == 0, first.tail(60)
        assert cron_file.is_file() and not (base / "units").exists(), "systemd is not PID 1 here: cron must be chosen"
        assert (base / "etc" / "monitor.json").stat().st_mode & 0o777 == 0o600
        assert receiver.url not in first.text(), "the webhook URL is treated as a secret"
        assert sorted(os.listdir(base / "etc" / "targets.d")) == ["pair1-blue.json", "pair1-green.json", "pair2-blue.json", "pair2-green.json"]
        samples = parse_prometheus(prom.read_text())
        assert prom.stat().st_mode & 0o777 == 0o644
        for p in ("pair1", "pair2"):
            for c in ("blue", "green"):
                for check in CHECKS:
                    assert ok_metric(samples, p, c, check) == (None if check == "migrations" else 1.0), (p, c, check)
        assert receiver.posts == [], "a healthy estate sends no webhook"

        again = estate.playbook("monitor.yml", extra_vars=evars, log_name="monitor-2")
        assert again.rc == 0 and all(c["changed"] == 0 for c in recap(again).values()), recap(again)

        # The exact crontab command line, as cron runs it.
        command = cron_command(cron_file)
        assert run_as_cron(command) == 0
        assert receiver.posts == []

        # Drift: pair 1's GREEN runs on the host's old SQLite.
        green = estate.host(1, "green")
        python_app_under_pm2(estate, green, tmp_path)
        wait_for(lambda: any(p["name"] == green.pm2_name and p.get("pid") for p in estate.pm2_jlist()), 30, "the python app")
        time.sleep(1)
        assert run_as_cron(command) == 1
        samples = parse_prometheus(prom.read_text())
        assert ok_metric(samples, "pair1", "green", "sqlite_library") == 0.0
        assert ok_metric(samples, "pair1", "blue", "sqlite_library") == 1.0
        assert ok_metric(samples, "pair2", "green", "sqlite_library") == 1.0
        assert len(receiver.posts) == 1 and receiver.posts[0]["new"] == ["pair1/green/sqlite_library"], receiver.posts
        assert "WAL-reset bug" in receiver.posts[0]["problems"][0]["detail"]
        assert run_as_cron(command) == 1
        assert len(receiver.posts) == 1, "no second webhook while nothing changed"

        node_app_under_pm2(estate, green)
        assert run_as_cron(command) == 0
        assert len(receiver.posts) == 2 and receiver.posts[1]["ok"] is True
        assert receiver.posts[1]["resolved"] == ["pair1/green/sqlite_library"]

        # The real cron daemon runs the job on its own.
        def last_run():
            try:
                return parse_prometheus(prom.read_text())[("dbfix_check_last_run_timestamp_seconds", frozenset())]
            except (OSError, AssertionError):
                return 0
        before = last_run()
        with cron_daemon():
            wait_for(lambda: last_run() > before, 150, "cron to run the checker")

        gone = estate.playbook("monitor.yml", extra_vars=dict(evars, dbfix_monitor_state="absent"), log_name="monitor-absent")
        assert gone.rc == 0, gone.tail(60)
        assert not cron_file.exists()
        for p in ("lib", "etc", "bin/dbfix-monitor", "textfile/dbfix.prom", "state/state.json"):
            assert not (base / p).exists(), p
        again = estate.playbook("monitor.yml", extra_vars=dict(evars, dbfix_monitor_state="absent"), log_name="monitor-absent-2")
        assert again.rc == 0 and all(c["changed"] == 0 for c in recap(again).values()), recap(again)
    finally:
        receiver.close()
        with contextlib.suppress(FileNotFoundError):
            cron_file.unlink()


def test_systemd_units_verify_and_explicit_systemd_refused(estate):
    base = estate.root / "monitor-systemd"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing (Debian package systemd)"
    evars = {
        "dbfix_monitor_scheduler": "systemd", "dbfix_monitor_systemd_enable": False,
        "dbfix_monitor_bin": str(base / "bin" / "dbfix-monitor"), "dbfix_monitor_lib_dir": str(base / "lib"),
        "dbfix_monitor_conf_dir": str(base / "etc"), "dbfix_monitor_unit_dir": str(base / "units"),
        "dbfix_monitor_cron_file": str(base / "cron" / "dbfix-monitor"),
        "dbfix_monitor_metrics_file": "", "dbfix_monitor_state_file": str(base / "state" / "state.json"),
        "dbfix_monitor_expect_columns": EXPECT,
    }
    for d in ("bin", "units", "cron"):
        (base / d).mkdir(parents=True, exist_ok=True)
    run = estate.playbook("monitor.yml", extra_vars=evars, log_name="monitor-systemd")
    assert run.rc == 0, run.tail(60)
    units = [base / "units" / "dbfix-monitor.service", base / "units" / "dbfix-monitor.timer"]
    assert all(u.is_file() for u in units) and not (base / "cron" / "dbfix-monitor").exists()
    assert "OnCalendar=*:0/5" in units[1].read_text()
    verify = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "dbfix-monitor" not in verify.stderr, verify.stderr
    # A broken unit is caught by the same command (the check can fail).
    broken = base / "units" / "broken.service"
    broken.write_text("[Service]\nExecStart=relative/path\n")
    bad = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0
    broken.unlink()

    # systemd asked for, and to be enabled, where it does not run: refused before anything is installed.
    fresh = estate.root / "monitor-refused"
    refused = estate.playbook("monitor.yml", extra_vars=dict(evars, dbfix_monitor_systemd_enable=True,
                                                             dbfix_monitor_lib_dir=str(fresh / "lib"),
                                                             dbfix_monitor_conf_dir=str(fresh / "etc")),
                              log_name="monitor-systemd-refused")
    assert refused.rc != 0 and "systemd is not running as PID 1 here" in refused.text()
    assert not fresh.exists()

    gone = estate.playbook("monitor.yml", extra_vars=dict(evars, dbfix_monitor_state="absent"), log_name="monitor-systemd-absent")
    assert gone.rc == 0, gone.tail(60)
    assert not any(u.exists() for u in units) and not (base / "lib").exists() and not (base / "etc").exists()
