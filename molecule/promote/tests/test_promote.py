# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario `promote`: after site.yml, promotions under load (converge.yml); GREEN is production at the end.

The `host` fixture runs a test once per container (promote-blue, promote-green; testinfra's podman backend).
nginx runs only in the pair leader (promote-blue) and reaches both apps over the shared loopback.
"""

from __future__ import annotations

import json

from dbfix_checks import get_host, http, run_ok

PROXY_PORT = 8261
PORTS = {"blue": 3261, "green": 3262}
APP_DIRS = {"blue": "/home/ubuntu/TimeTracking-BLUE", "green": "/home/ubuntu/TimeTracking-Clean"}
CONF = "/srv/dbfix-nginx/conf.d/dbfix-promote.conf"


def _color(host):
    return "blue" if host.backend.get_hostname().endswith("blue") else "green"


def test_state_file_records_green(host):
    state = json.loads(run_ok(host, "cat %s/.dbfix/state.json" % APP_DIRS[_color(host)]))
    assert state["production"]["color"] == "green", state.get("production")
    assert state["production"]["previous"] == "blue", state.get("production")


def test_upstream_routes_to_green_without_backup():
    blue = get_host("promote-blue")
    conf = run_ok(blue, "cat %s" % CONF)
    assert "# dbfix-production: green" in conf, conf
    assert "127.0.0.1:%d" % PORTS["green"] in conf, conf
    assert "127.0.0.1:%d" % PORTS["blue"] not in conf, conf  # the old color is backup only during the watch
    assert "backup" not in conf, conf


def test_only_the_leader_runs_nginx():
    assert run_ok(get_host("promote-blue"), "pgrep -c -x nginx").strip() != "0"
    green = get_host("promote-green")
    assert green.run("pgrep -x nginx").rc == 1, "nginx runs in promote-green too"
    assert green.run("test -e %s" % CONF).rc == 1, "promote-green has an upstream file"


def test_request_through_the_proxy_is_answered_by_green(host):
    """From either container (one loopback, host networking): the proxy answers with GREEN."""
    resp = http(host, "GET", PROXY_PORT, "/api/health")
    assert resp.status == 200, resp
    assert resp.headers.get("x-dbfix-production") == "green", resp


def test_prober_saw_both_colors_and_no_failure():
    blue = get_host("promote-blue")
    first = json.loads(run_ok(blue, "cat /var/lib/dbfix-molecule/prober-converge.json"))
    assert first["failed"] == 0 and first["sent"] >= 50, first
    assert first["colors"].get("blue", 0) > 0 and first["colors"].get("green", 0) > 0, first
    again = json.loads(run_ok(blue, "cat /var/lib/dbfix-molecule/prober-idempotence.json"))
    assert again["failed"] == 0 and set(again["colors"]) == {"green"}, again
