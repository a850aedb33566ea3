# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets stay secret and file modes never widen, after a full ``site.yml`` run.

A real local estate is built, then made a little more secret than the builder
makes it: both ``.env`` files are 0600 and carry a canary ``API_TOKEN``, both DBs
are 0600, and BLUE's pm2 process gets a canary in its pm2-saved environment
(``pm2 restart --update-env``). Then ``site.yml -vvv --diff`` runs with its whole
output captured, and a callback dumps every task result. None of these may
contain a secret (``JWT_SECRET`` of each ``.env``, the canaries, any ``.env``
value whose key looks secret, the estate's keys in pm2's saved environment):

* the ``-vvv --diff`` output,
* the reports (Markdown and JSON),
* every task/module result as callbacks receive it,
* the per-host state files the roles keep for rollback.

Modes: the 0600 ``.env`` is still 0600; every backup (DB backups, ``.OLD``
files, ``.env`` backups) is readable by no more users than its source.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
from pathlib import Path

import pytest
from _estate import H, built, require

SECRET_KEY = re.compile(r"(SECRET|TOKEN|PASSW|PASSWD|PRIVATE|API_?KEY|CREDENTIAL)", re.IGNORECASE)
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


def env_values(path: Path) -> dict[str, str]:
    """KEY=VALUE pairs of a simple .env (what the estate and the cors role write), quotes stripped."""
    out = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`":
            value = value[1:-1]
        out[key] = value
    return out


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


@pytest.fixture(scope="module")
def secured_run():
    require("site.yml")
    with built("sec") as estate:
        canaries = {}
        for h in estate.hosts:
            token = f"canary-env-{secrets.token_hex(12)}"
            canaries[f"{h.name} .env API_TOKEN"] = token
            with open(h.env_file, "a", encoding="utf-8") as fh:
                fh.write(f"API_TOKEN={token}\n")
            os.chmod(h.env_file, 0o600)
            os.chmod(h.db_path, 0o600)
        blue = estate.host(1, "blue")
        pm2_canary = f"canary-pm2-{secrets.token_hex(12)}"
        canaries["pm2 env DBFIX_CANARY_SECRET"] = pm2_canary
        # A minimal environment: --update-env copies the caller's whole environment into pm2's.
        env = {"PATH": estate.env()["PATH"], "HOME": os.environ.get("HOME", "/root"), "PM2_HOME": str(estate.pm2_home),
               "DBFIX_CANARY_SECRET": pm2_canary}
        subprocess.run([str(H.PM2), "restart", blue.pm2_name, "--update-env"], env=env, check=True, capture_output=True, timeout=120)
        estate.wait_healthy()
        # The canary really is in pm2's saved environment (else the test proves nothing).
        proc = {p["name"]: p for p in estate.pm2_jlist()}[blue.pm2_name]
        assert proc["pm2_env"].get("DBFIX_CANARY_SECRET") == pm2_canary
        secret_values = dict(canaries)
        for h in estate.hosts:
            for key, value in env_values(h.env_file).items():
                if SECRET_KEY.search(key) and value:
                    secret_values[f"{h.name} .env {key}"] = value
        # pm2's saved environment of the apps: only the keys this estate put there
        # (the rest is the caller's environment, not ours to read).
        for p in estate.pm2_jlist():
            for key in ("JWT_SECRET", "API_TOKEN", "DBFIX_CANARY_SECRET"):
                value = p["pm2_env"].get(key)
                if isinstance(value, str) and value:
                    secret_values[f"pm2 {p['name']} {key}"] = value
        assert any("JWT_SECRET" in k for k in secret_values), f"no JWT_SECRET found in the estate's .env: {list(secret_values)}"
        source_modes = {h.name: stat.S_IMODE(h.db_path.stat().st_mode) for h in estate.hosts}
        env_modes = {h.name: stat.S_IMODE(h.env_file.stat().st_mode) for h in estate.hosts}
        results = estate.root / "results.jsonl"
        run_env = {
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "dbfix_results",
            "DBFIX_RESULTS_FILE": str(results),
        }
        run = estate.playbook("site.yml", "-vvv", "--diff", env=run_env, log_name="site-vvv")
        yield {
            "estate": estate, "run": run, "secrets": secret_values, "results": results,
            "source_modes": source_modes, "env_modes": env_modes,
        }


def test_full_run_succeeded(secured_run):
    run = secured_run["run"]
    assert run.rc == 0, f"site.yml -vvv failed:\n{run.tail(30)}"
    assert secured_run["results"].exists() and secured_run["results"].stat().st_size > 0


def _corpus(secured_run) -> dict[str, str]:
    estate = secured_run["estate"]
    corpus = {"ansible-playbook -vvv --diff output": secured_run["run"].text(),
              "task results": secured_run["results"].read_text(encoding="utf-8")}
    reports = sorted((estate.root / "reports").glob("*"))
    for r in reports:
        if r.suffix in (".md", ".json"):
            corpus[f"report {r.name}"] = r.read_text(encoding="utf-8", errors="replace")
    for h in estate.hosts:
        state = h.app_dir / ".dbfix" / "state.json"
        if state.exists():
            corpus[f"state file {state}"] = state.read_text(encoding="utf-8", errors="replace")
    return corpus


def test_reports_exist(secured_run):
    reports = list((secured_run["estate"].root / "reports").glob("*"))
    assert any(r.suffix == ".md" for r in reports), f"no Markdown report in {secured_run['estate'].root / 'reports'}"
    assert any(r.suffix == ".json" for r in reports), "no JSON report"


def test_no_secret_in_output_reports_or_results(secured_run):
    corpus = _corpus(secured_run)
    # The output really is verbose and really holds module results (else grepping it proves little).
    out = corpus["ansible-playbook -vvv --diff output"]
    assert "bluegreen.dbfix.dotenv_set" in out or "dotenv_set" in out
    assert len(out) > 20000, "the -vvv output is suspiciously short"
    leaks = [f"{label} found in {where}" for label, value in secured_run["secrets"].items()
             for where, text in corpus.items() if value in text]
    assert not leaks, "secret values leaked:\n" + "\n".join(leaks)


def test_results_mask_env_values_and_hold_no_pm2_env(secured_run):
    """No result carries pm2's environment block; where a result shows .env lines (a diff), secret keys' values are masked."""
    shown = 0
    for line in secured_run["results"].read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        blob = json.dumps(entry["result"])
        assert '"pm2_env"' not in blob, f"pm2's environment returned by {entry['task']}"
        for m in re.finditer(r"(JWT_SECRET|API_TOKEN)=([^\\\"]*)", blob):
            shown += 1
            assert set(m.group(2)) <= {"*"}, f"{entry['task']} shows {m.group(1)} with a value that is not masked"
    # The cors role's dotenv_set diff does show the .env lines (masked), so the check above ran.
    assert shown > 0, "no .env line in any result: the diff check proved nothing"


def test_env_mode_kept(secured_run):
    estate = secured_run["estate"]
    for h in estate.hosts:
        mode = stat.S_IMODE(Path(os.path.realpath(h.env_file)).stat().st_mode)
        assert mode == secured_run["env_modes"][h.name] == 0o600, f"{h.env_file} is {oct(mode)} after the run, was 0600"
    # The cors role really changed the file (so the mode was really put to the test).
    assert "ALLOWED_ORIGINS" in estate.host(1, "blue").env_file.read_text(encoding="utf-8")


def test_backups_never_more_readable_than_source(secured_run):
    estate = secured_run["estate"]
    src_mode = max(secured_run["source_modes"].values())
    env_mode = max(secured_run["env_modes"].values())
    checked, wider = [], []
    live = {os.path.realpath(h.db_path) for h in estate.hosts}
    for dirpath, dirnames, filenames in os.walk(estate.root / "pair1"):
        dirnames[:] = [d for d in dirnames if d != "node_modules"]
        for fn in filenames:
            p = Path(dirpath) / fn
            if p.is_symlink() or str(p) in live:
                continue
            if is_sqlite(p) and p.resolve() != estate.host(1, "blue").shared_db.resolve():
                limit = src_mode
            elif fn.startswith(".env") and fn != ".env":
                limit = env_mode
            else:
                continue
            mode = stat.S_IMODE(p.stat().st_mode)
            checked.append((str(p), oct(mode)))
            if mode & ~limit:
                wider.append(f"{p} is {oct(mode)}, its source is {oct(limit)}")
    assert any(".OLD" in c[0] for c in checked), f"no .OLD file found among {checked}"
    assert any("backup" in c[0] for c in checked), f"no DB backup found among {checked}"
    assert any(Path(c[0]).name.startswith(".env") for c in checked), f"no .env backup found among {checked}"
    assert not wider, "backups more readable than their source:\n" + "\n".join(wider)
