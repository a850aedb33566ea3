# SPDX-License-Identifier: GPL-3.0-or-later
"""check.yml honours dbfix_report_dir, the one report folder README tells a user to set.

README: "Every run ... writes ... to dbfix_report_dir ... Set -e dbfix_report_dir=/some/folder to put them
elsewhere." An outside user who set it (in group_vars, as test_foreign_app.py does) found the site/rollback
reports there, but check.yml's table in ``$XDG_DATA_HOME/bluegreen.dbfix/reports``: the monitor role's
``dbfix_monitor_report_dir`` default ignores ``dbfix_report_dir``.

Real parts only: the foreign Python app of test_foreign_app.py under real pm2 (own PM2_HOME under tmp_path,
killed at teardown), real SQLite files, ``ansible-playbook`` with local connections. No mocks.
"""
from __future__ import annotations

import shutil

import pytest
from test_foreign_app import PM2, VENV_BIN, Foreign, tail


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


def test_check_playbook_writes_its_table_into_dbfix_report_dir(estate, tmp_path):
    xdg = tmp_path / "xdg"
    rc, out = estate.playbook("check.yml", log="check", env={"XDG_DATA_HOME": str(xdg)})
    assert rc == 0, tail(out)
    assert sorted(p.suffix for p in estate.reports.glob("*-check.*")) == [".json", ".md"], (
        f"check.yml wrote no table into dbfix_report_dir={estate.reports}; under XDG_DATA_HOME: "
        f"{sorted(str(p) for p in xdg.rglob('*'))}")
    assert not list(xdg.rglob("*-check.*")), "check.yml must not write beside dbfix_report_dir"
