# SPDX-License-Identifier: GPL-3.0-or-later
"""A failed phase 1 health gate must not tell the operator the app is "yes, healthy".

Found by an outside user whose app answers its health check with another status than the one configured
(``dbfix_health_status``): phase 1 failed at the health gate, its rescue started the app again - and that
start's own health gate failed the same way - yet the final message said ``App restarted: yes, healthy``.
Cause: ``roles/phase1/tasks/main.yml`` registers the rescue start with ``failed_when: false``, so the result's
``failed`` is always false and ``is succeeded`` always true; the message must look at the result itself.

Real parts only: the foreign Python app of test_foreign_app.py under real pm2 (own PM2_HOME under tmp_path,
killed at teardown), real SQLite files, ``ansible-playbook`` with local connections. No mocks.
"""
from __future__ import annotations

import shutil

import pytest
from test_foreign_app import PM2, VENV_BIN, Foreign, sha256, tail


@pytest.fixture
def estate(tmp_path):
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


def test_phase1_failed_health_gate_does_not_report_the_app_healthy(estate):
    dbs = {c: sha256(h["db"]) for c, h in estate.hosts.items()}
    # The app answers 200; the operator configured 204. Forced restart so the health gate runs.
    rc, out = estate.playbook("phase1.yml", extra={"dbfix_health_status": 204, "dbfix_health_timeout": 3,
                                                   "dbfix_phase1_force_restart": True}, log="phase1-bad-status")
    assert rc != 0, tail(out)
    assert "did not answer HTTP 204" in out, tail(out)
    assert "App restarted: yes, healthy" not in out, tail(out)
    assert "App restarted: NO" in out, tail(out)
    assert {c: sha256(h["db"]) for c, h in estate.hosts.items()} == dbs
