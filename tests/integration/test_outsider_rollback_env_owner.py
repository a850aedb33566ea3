# SPDX-License-Identifier: GPL-3.0-or-later
"""Rolling CORS back keeps the ``.env``'s owner (and mode), as the cors role itself does.

Found by an outside user whose app files belong to the app's own user while the playbook runs as root: after
``cors.yml`` the ``.env`` still belonged to the app user (dotenv_set keeps it), but ``rollback.yml -e
dbfix_rollback_phase=cors`` left it owned by root:root - the app's user could no longer read its own
settings. Cause: ``roles/rollback/tasks/cors.yml`` restores with ``ansible.builtin.copy`` (``remote_src``,
``mode: preserve``), which keeps the mode but not the owner/group.

Real parts only: a real second local user (``useradd``, removed in teardown), the foreign Python app of
test_foreign_app.py under real pm2 (own PM2_HOME under tmp_path, killed at teardown), real ``.env`` files,
``ansible-playbook`` with local connections. No mocks. Needs root (it creates a user and chowns to it).
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest
from test_foreign_app import PM2, VENV_BIN, Foreign, tail


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.fail("this test must run as root: it creates a second local user and chowns the app's .env to it")
    name = "dbfixo" + secrets.token_hex(3)
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True, timeout=60)
    try:
        import pwd
        pw = pwd.getpwnam(name)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)


@pytest.fixture
def estate(tmp_path, other_user):
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
        # Files owned by the removed user would stay in tmp_path with a dangling uid: give them back.
        for h in f.hosts.values():
            for p in h["dir"].iterdir():
                if p.name.startswith(".env"):
                    os.chown(p, 0, 0, follow_symlinks=False)


def test_cors_rollback_keeps_the_env_owner_and_mode(estate, other_user):
    uid, gid = other_user
    for h in estate.hosts.values():
        os.chown(h["env"], uid, gid)
        os.chmod(h["env"], 0o600)
    before = {c: h["env"].read_bytes() for c, h in estate.hosts.items()}

    rc, out = estate.playbook("cors.yml", log="cors")
    assert rc == 0, tail(out)
    for h in estate.hosts.values():
        st = h["env"].stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, gid, 0o600), "cors.yml kept owner and mode"

    rc, out = estate.playbook("rollback.yml", extra={"dbfix_rollback_phase": "cors"}, log="rb-cors")
    assert rc == 0, tail(out)
    for c, h in estate.hosts.items():
        assert h["env"].read_bytes() == before[c]
        st = h["env"].stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, gid, 0o600), (
            f"{h['env']} after the CORS rollback: uid {st.st_uid} gid {st.st_gid} mode {oct(st.st_mode & 0o777)}, "
            f"was uid {uid} gid {gid} mode 0o600")
