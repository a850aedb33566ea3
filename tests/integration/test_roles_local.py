# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end runs of the phase roles on a real local estate.

Real parts only: the estate builder lays out one blue/green pair of the Node
test app under a temp dir (free ports, own PM2_HOME, real pm2, real SQLite,
real .env), and the playbooks run with ``ansible-playbook`` and local
connections, exactly as an operator would run them. pm2 is killed and the dir
removed at teardown (``_estate.built``).

Covered:
* ``site.yml`` fixes the incident (GREEN's /api/users/me 200, both apps on one
  shared DB, CORS allowed/refused), writes the report, and a second run
  changes nothing;
* rollback of phase 2 gives back each app's own DB file byte for byte, then
  CORS and phase 1 roll back too;
* diverged DBs (each has rows the other lacks): phase 2 fails before changing
  anything, naming the tables and row counts, and both apps keep serving.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from _estate import H, built

FOREIGN = "https://evil.example"
TAURI = "tauri://localhost"


def recap(run) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", run.text(), re.M):
        out[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
    return out


def preflight(host, origin: str) -> str | None:
    """Access-Control-Allow-Origin of a real OPTIONS preflight from ``origin`` (None when absent)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    try:
        conn.request("OPTIONS", "/api/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Access-Control-Allow-Origin")
    finally:
        conn.close()


def files_state(estate) -> dict:
    """Every file of both server dirs (sha256, links as '->target'), and each DB's committed content.

    A live app's DB in WAL mode changes bytes on its own (checkpoints), so the DB
    files and their -wal/-shm are compared by content (per-table row digests).
    """
    out = {}
    for h in estate.hosts:
        files = {k: v for k, v in estate.files_of(h).items() if not k.startswith("database.db") or k.endswith(".OLD")}
        files["database.db (link)"] = ("->" + os.readlink(h.db_path)) if h.db_path.is_symlink() else "file"
        files["database.db (content)"] = H.table_digest(h.db_path)
        out[h.name] = files
    return out


def stopped_db_hashes(estate) -> dict[str, str]:
    """sha256 of each app's DB file with the apps stopped (WAL checkpointed into the file), then start them again."""
    names = [h.pm2_name for h in estate.hosts]
    estate.pm2("stop", *names)
    try:
        return {h.name: H.sha256_file(h.db_path) for h in estate.hosts}
    finally:
        estate.pm2("start", *names)
        estate.wait_healthy()


@pytest.fixture(scope="module")
def roles_estate():
    """One pair with the incident, built once; pm2 killed and the dir removed at teardown."""
    with built("roles", playbooks=("site.yml", "phase1.yml", "phase2.yml", "cors.yml", "rollback.yml")) as estate:
        yield estate


@pytest.fixture
def estate(roles_estate):
    """The module's estate, put back to the freshly built incident before each test."""
    H.restore(roles_estate, "pristine")
    roles_estate.wait_healthy()
    return roles_estate


def test_site_converges_and_second_run_changes_nothing(estate):
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    status, _body = H.http_request(green.port, "GET", "/api/users/me")
    assert status == 500, "the estate should show the incident before the fix"

    first = estate.playbook("site.yml", log_name="site-1")
    assert first.rc == 0, first.tail(60)
    counts = recap(first)
    assert counts[blue.name]["changed"] > 0 and counts[green.name]["changed"] > 0

    # The incident is fixed and both apps have the one shared DB open.
    assert H.http_request(green.port, "GET", "/api/users/me")[0] == 200
    shared = blue.shared_db.resolve()
    for h in (blue, green):
        assert h.db_path.is_symlink() and h.db_path.resolve() == shared
        assert Path(str(h.db_path) + ".OLD").is_file()
        status, body = h.health()
        assert status == 200 and body["db"] == str(shared)
        assert preflight(h, TAURI) == TAURI
        assert preflight(h, FOREIGN) is None
        state = json.loads((h.app_dir / ".dbfix" / "state.json").read_text())
        assert Path(state["phase1"]["backup_file"]).is_file()
        assert state["phase2"]["old_file"] == str(h.db_path) + ".OLD"
        assert Path(state["cors"]["backup_file"]).is_file()
    assert H.integrity_ok(shared) == "ok"

    # The report: Markdown and JSON, the base and why, no secret values.
    reports = sorted((estate.root / "reports").glob("*-site.json"))
    assert reports, "site.yml wrote no JSON report"
    report = json.loads(reports[-1].read_text())
    assert report["ok"] is True
    p2 = report["hosts"][blue.name]["phase2"]
    assert p2["plan"]["base"] == "blue" and p2["plan"]["lossless"] is True
    assert p2["plan"]["why"] == "blue holds every row of green"
    # "Same DB open" is proven from /proc: each app's pm2 process holds the shared DB's inode, never its .OLD.
    for h in (blue, green):
        opened = report["hosts"][h.name]["phase2"]["open"]
        assert opened["state"] == "shared" and opened["shared_pids"] and not opened["forbidden"], opened
    # Phase 2 stays within its task budget (issue 12: at most 15 task executions per host).
    text = first.text()
    p2_tasks = re.findall(r"^TASK \[", text[text.index("TASK [Run role bluegreen.dbfix.phase2]"):text.index("TASK [Run role bluegreen.dbfix.cors]")], re.M)
    assert len(p2_tasks) <= 15, len(p2_tasks)
    # ... and the whole site.yml within its budget: at most 45 task executions per host (every task header
    # counted, so skipped tasks count too: an upper bound of what ran on each host).
    all_tasks = re.findall(r"^TASK \[", text, re.M)
    assert len(all_tasks) <= 45, (len(all_tasks), first.log)
    assert p2["plan"]["size_rule_pick"] == "green"  # the seed's size rule would have taken the staging DB
    md = reports[-1].with_suffix(".md").read_text()
    assert "Base: **blue**" in md and "size rule" in md
    secret = re.search(r"^JWT_SECRET=(.*)$", green.env_file.read_text(), re.M).group(1).strip("'\"")
    for f in (reports[-1], reports[-1].with_suffix(".md")):
        assert secret not in f.read_text()

    # Second run: nothing changes on any host.
    before = files_state(estate)
    second = estate.playbook("site.yml", log_name="site-2")
    assert second.rc == 0, second.tail(60)
    assert all(c["changed"] == 0 for c in recap(second).values()), recap(second)
    after = files_state(estate)
    assert {h: {k: v for k, v in f.items() if "backup" not in k} for h, f in after.items()} == \
        {h: {k: v for k, v in f.items() if "backup" not in k} for h, f in before.items()}

    # A row written through BLUE is read through GREEN (one shared DB).
    status, body = H.http_request(blue.port, "POST", "/api/time-entries", {"user_id": 1, "minutes": 5, "note": "roles-test"})
    assert status == 201, body
    assert "roles-test" in H.notes_in(green.db_path, "roles-test")


def test_rollback_phase2_restores_files_byte_identical(estate):
    run = estate.playbook("phase1.yml", log_name="p1")
    assert run.rc == 0, run.tail(60)
    before = stopped_db_hashes(estate)

    run = estate.playbook("phase2.yml", log_name="p2")
    text = run.text()
    role_part = text[text.index("TASK [Run role bluegreen.dbfix.phase2]"):text.index("TASK [Write the run report]")]
    assert len(re.findall(r"^TASK \[", role_part, re.M)) - 1 <= 15, "phase 2 runs at most 15 tasks per host (with _common)"
    assert run.rc == 0, run.tail(60)
    assert all(h.db_path.is_symlink() for h in estate.hosts)

    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase2"}, log_name="rb-p2")
    assert run.rc == 0, run.tail(60)
    for h in estate.hosts:
        assert not h.db_path.is_symlink()
        assert not Path(str(h.db_path) + ".OLD").exists()
        status, body = h.health()
        assert status == 200 and body["db"] == str(h.db_path.resolve())
    assert stopped_db_hashes(estate) == before

    # A second rollback of phase 2 finds nothing to undo.
    again = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase2"}, log_name="rb-p2-again")
    assert again.rc == 0, again.tail(60)
    assert all(c["changed"] == 0 for c in recap(again).values()), recap(again)

    # Phase 1 rolls back to the backups taken at its timestamp: GREEN loses users.position again.
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "phase1"}, log_name="rb-p1")
    assert run.rc == 0, run.tail(60)
    green = estate.host(1, "green")
    assert "position" not in H.columns_of(green.db_path, "users")
    assert H.http_request(green.port, "GET", "/api/users/me")[0] == 500
    assert all(h.health()[0] == 200 for h in estate.hosts)


def test_rollback_cors_restores_env(estate):
    envs = {h.name: H.sha256_file(h.env_file) for h in estate.hosts}
    run = estate.playbook("cors.yml", log_name="cors")
    assert run.rc == 0, run.tail(60)
    assert all(H.sha256_file(h.env_file) != envs[h.name] for h in estate.hosts)
    assert all(preflight(h, TAURI) == TAURI for h in estate.hosts)
    run = estate.playbook("rollback.yml", extra_vars={"dbfix_rollback_phase": "cors"}, log_name="rb-cors")
    assert run.rc == 0, run.tail(60)
    assert {h.name: H.sha256_file(h.env_file) for h in estate.hosts} == envs
    assert all(preflight(h, TAURI) is None for h in estate.hosts)


def test_diverged_dbs_refused_before_any_change(estate):
    run = estate.playbook("phase1.yml", log_name="p1-div")
    assert run.rc == 0, run.tail(60)
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    # GREEN gets a row BLUE lacks (BLUE already has rows GREEN lacks): neither holds every row of the other.
    status, body = H.http_request(green.port, "POST", "/api/time-entries", {"user_id": 2, "minutes": 7, "note": "green-only"})
    assert status == 201, body
    before = files_state(estate)
    shared_before = sorted(p.name for p in blue.shared_db.parent.iterdir()) if blue.shared_db.parent.exists() else []

    run = estate.playbook("phase2.yml", log_name="p2-div")
    assert run.rc != 0
    text = run.text()
    assert "would lose data" in text and "Nothing was changed" in text
    # GREEN's new row took an id BLUE already uses for another row: it shows as "differing".
    assert re.search(r"time_entries: \d+/\d+; [1-9]\d*/\d+/[1-9]\d*", text), "the refusal names the table and its row counts"
    assert files_state(estate) == before
    assert not blue.shared_db.exists()
    # Only phase 2's backups were added beside the shared DB.
    added = set(p.name for p in blue.shared_db.parent.iterdir()) - set(shared_before)
    assert added and all(".backup." in n for n in added), added
    for h in (blue, green):
        assert not h.db_path.is_symlink()
        assert h.health()[0] == 200
    with sqlite3.connect(f"file:{green.db_path}?mode=ro", uri=True) as c:
        assert c.execute("SELECT COUNT(*) FROM time_entries WHERE note = 'green-only'").fetchone()[0] == 1

    # The report of the failed run says so.
    report = json.loads(sorted((estate.root / "reports").glob("*-phase2.json"))[-1].read_text())
    assert report["ok"] is False


def squat_port_when_free(port: int, stop: threading.Event) -> threading.Thread:
    """Bind ``port`` as soon as the app lets go of it (phase 2 stops it), so its restart fails for real."""
    def run():
        while not stop.is_set():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                time.sleep(0.01)
                continue
            s.listen(1)
            stop.wait(600)
            s.close()
            return
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_app_failing_after_the_switch_rolls_phase2_back(estate):
    run = estate.playbook("phase1.yml", log_name="p1-hf")
    assert run.rc == 0, run.tail(60)
    blue, green = estate.host(1, "blue"), estate.host(1, "green")
    before = files_state(estate)
    stop = threading.Event()
    squatter = squat_port_when_free(green.port, stop)
    try:
        run = estate.playbook("phase2.yml", extra_vars={"dbfix_health_timeout": 10}, log_name="p2-hf")
    finally:
        stop.set()
        squatter.join(timeout=10)
    assert run.rc != 0
    text = run.text()
    assert "Phase 2 failed on" in text and "Rolled back" in text
    # Both apps are back on their own DB files, with the same content as before.
    estate.pm2("restart", green.pm2_name)
    estate.wait_healthy()
    assert files_state(estate) == before
    for h in (blue, green):
        assert not h.db_path.is_symlink()
        assert not Path(str(h.db_path) + ".OLD").exists()
        assert h.health()[1]["db"] == str(h.db_path)
    report = json.loads(sorted((estate.root / "reports").glob("*-phase2.json"))[-1].read_text())
    assert report["ok"] is False
    assert report["hosts"][blue.name]["phase2"]["rolled_back"]["unlinked"] is True
