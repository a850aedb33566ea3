# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/promote.yml against a real local pair (pm2, Node apps, one shared DB after site.yml) behind a real
nginx (Debian's, a plain process with its own prefix under the estate's temp folder, loopback port).

A client sends requests through the proxy back to back during every promotion: zero may fail. A candidate that
fails a gate is never promoted and the upstream file keeps its sha256; a watch that fails puts the previous file
back; a second run with the same target changes nothing; the state file records the production color.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sqlite3
import sys
import time

import pytest
from _estate import ROOT, H, built
from _nginx import Nginx


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


SW = _load("dbfix_harness_switch", ROOT / "tests" / "harness" / "switch.py")


class Pair:
    def __init__(self, estate, nginx, port):
        self.estate, self.nginx, self.port = estate, nginx, port
        self.conf = nginx.conf_dir / "dbfix-pair1.conf"

    def promote(self, to, *args, **extra):
        evars = SW.promote_vars(self.nginx, self.port, dbfix_promote_to=to, **extra)
        return self.estate.playbook("promote.yml", *args, extra_vars=evars, log_name=f"promote-{to}")

    def production(self):
        out = {}
        for h in self.estate.hosts:
            f = h.app_dir / ".dbfix" / "state.json"
            out[h.color] = json.loads(f.read_text()).get("production", {}).get("color") if f.exists() else None
        return out

    def conf_sha(self):
        return hashlib.sha256(self.conf.read_bytes()).hexdigest()

    def routed_to(self):
        m = re.search(r"^# dbfix-production: (\w+)$", self.conf.read_text(), re.M)
        return m.group(1) if m else None


def changed_counts(run):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", run.text(), re.M)}


def seed_shared_db(estate):
    """The shared DB the promote role reads (phase 2 is not under test here, and site.yml costs minutes):
    an online backup of BLUE's DB at the pair's shared path, made with SQLite's backup API."""
    blue = estate.host(1, "blue")
    blue.shared_db.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{blue.db_path}?mode=ro", uri=True)
    dst = sqlite3.connect(blue.shared_db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


@pytest.fixture(scope="module")
def pair():
    with built("promote", playbooks=("promote.yml",)) as estate:
        seed_shared_db(estate)
        nginx = Nginx(estate.root / "nginx").start()
        try:
            p = Pair(estate, nginx, H.free_ports(1)[0])
            run = p.promote("blue")
            assert run.rc == 0, run.tail()
            time.sleep(1.2)  # the stability gate of the tests: 1 s without a restart
            yield p
        finally:
            nginx.stop()


@pytest.fixture
def prober(pair):
    pr = SW.SwitchProber(pair.port).start()
    time.sleep(0.5)
    yield pr
    pr.stop()


def test_promote_and_revert_fail_no_request(pair, prober):
    assert pair.routed_to() == "blue" and pair.production() == {"blue": "blue", "green": "blue"}
    run = pair.promote("green")
    assert run.rc == 0, run.tail()
    assert pair.routed_to() == "green" and pair.production() == {"blue": "green", "green": "green"}
    assert "backup" not in pair.conf.read_text()  # the old color is backup only during the watch

    again = pair.promote("green")
    assert again.rc == 0, again.tail()
    assert changed_counts(again) == {"p1-blue": 0, "p1-green": 0}, again.tail()

    back = pair.promote("blue")
    assert back.rc == 0, back.tail()
    assert pair.routed_to() == "blue" and pair.production() == {"blue": "blue", "green": "blue"}
    prober.stop()
    assert len(prober.samples) > 100
    assert prober.failures() == []
    colors = {w.split()[-1] for _t, _d, ok, w in prober.samples if ok}
    assert colors == {"blue", "green"}  # the proxy really switched twice


def test_failing_candidate_is_never_promoted(pair, prober):
    """Every gate fails at once (one run - each is a playbook run of minutes on a loaded machine): GREEN's pm2
    process stopped (health and pm2), a column the release expects missing, a smoke URL answering 404. Every
    reason is named; the upstream file keeps its sha256; the state still says blue; clients saw no failure."""
    green = pair.estate.host(1, "green")
    before = pair.conf_sha()
    pair.estate.pm2("stop", green.pm2_name)
    try:
        run = pair.promote("green", dbfix_promote_expect_columns={"users": ["id", "no_such_column"]},
                           dbfix_promote_smoke_urls=[f"http://127.0.0.1:{green.port}/api/no-such-route"])
    finally:
        pair.estate.pm2("start", green.pm2_name)
        pair.estate.wait_healthy()
    text = run.text()
    assert run.rc != 0, run.tail()
    assert "was not promoted" in text
    for reason in ("health: no answer", "users.no_such_column", "pm2: pm2 process " + green.pm2_name + " is stopped",
                   "smoke: no answer"):
        assert reason in text, (reason, run.tail())
    assert pair.conf_sha() == before and pair.routed_to() == "blue"
    assert pair.production() == {"blue": "blue", "green": "blue"}
    prober.stop()
    assert prober.samples and prober.failures() == []


def test_unstable_candidate_is_never_promoted(pair):
    """GREEN runs and answers, but restarted less than dbfix_promote_stable_seconds ago."""
    before = pair.conf_sha()
    run = pair.promote("green", dbfix_promote_stable_seconds=3600)
    assert run.rc != 0 and "must run 3600 s without a restart" in run.text(), run.tail()
    assert pair.conf_sha() == before and pair.production() == {"blue": "blue", "green": "blue"}


def test_failing_watch_reverts(pair, prober):
    """The candidate passes its gates but fails through the proxy (the probed path answers 404): the watch puts the
    previous file back; clients kept being served (the prober asks /api/health)."""
    before = pair.conf_sha()
    run = pair.promote("green", dbfix_promote_probe_path="/api/no-such-route")
    assert run.rc != 0
    assert "Reverted" in run.text() and "HTTP 404 through the proxy" in run.text(), run.tail()
    assert pair.conf_sha() == before and pair.routed_to() == "blue"
    assert pair.production() == {"blue": "blue", "green": "blue"}
    prober.stop()
    assert prober.samples and prober.failures() == []
    assert not list(pair.nginx.conf_dir.glob(".*"))  # no temp file left
