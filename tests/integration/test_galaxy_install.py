# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as users get it: built, installed, run with no checkout in sight.

Real parts only: ``ansible-galaxy collection build`` of this tree, then
``ansible-galaxy collection install`` of the tarball into a clean collections
path under tmp_path, then ``ansible-playbook bluegreen.dbfix.site`` (the
playbook by its FQCN, from the installed copy) against a real local estate
(one blue/green pair of the Node test app under pm2, built by the estate
builder as in the other integration tests). The run happens from a folder
under tmp_path with ``ANSIBLE_COLLECTIONS_PATH`` naming only the install, no
``ANSIBLE_CONFIG`` (the checkout's ansible.cfg, which puts the checkout first,
is not read), no roles path and no scan of Python's sys.path for collections:
only the installed copy can be found.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from _estate import H, built

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"

# What must never be in the tarball: the development tree and local state.
FORBIDDEN_TOP = {"tests", "molecule", "bench", "scripts", "reports", ".venv", ".cache", ".collections",
                 ".git", ".tools", ".ci", "demo", "build", ".pytest_cache", ".ruff_cache", ".ansible",
                 ".hypothesis", "Makefile", "requirements-dev.txt", "ansible.cfg"}
FORBIDDEN_ANY = {"node_modules", "__pycache__", ".hypothesis"}
# What users need.
REQUIRED = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
            "playbooks/site.yml", "playbooks/rollback.yml", "plugins/modules/sqlite_backup.py",
            "plugins/module_utils/_trust.py", "roles/phase2/tasks/main.yml"}


def run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def user_env(estate, collections: Path, home: Path) -> dict:
    """The estate's environment (PATH with pm2, PM2_HOME) as a user without this checkout has it."""
    env = estate.env()
    for k in ("ANSIBLE_CONFIG", "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTHONPATH"):
        env.pop(k, None)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    env["ANSIBLE_HOME"] = str(home / ".ansible")
    env["ANSIBLE_LOCAL_TEMP"] = str(home / "tmp")
    return env


def test_build_install_and_run_site_from_the_install(tmp_path):
    dist, collections, cwd = tmp_path / "dist", tmp_path / "collections", tmp_path / "elsewhere"
    for d in (dist, collections, cwd):
        d.mkdir()
    base_env = dict(os.environ, ANSIBLE_NOCOLOR="1")

    # Build from a copy of the tree (with galaxy.yml's build_ignore under test): a file another
    # process edits between `build` hashing it and packing it would give a tarball `install` rejects.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "node_modules"))
    build = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(src)],
                cwd=cwd, env=base_env, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    tarballs = list(dist.glob("bluegreen-dbfix-*.tar.gz"))
    assert len(tarballs) == 1, build.stdout

    with tarfile.open(tarballs[0]) as tar:
        names = [m.name.removeprefix("./").rstrip("/") for m in tar.getmembers()]
    tops = {n.split("/", 1)[0] for n in names}
    assert not tops & FORBIDDEN_TOP, f"development files in the tarball: {sorted(tops & FORBIDDEN_TOP)}"
    bad = [n for n in names if set(n.split("/")) & FORBIDDEN_ANY or n.endswith(".pyc")]
    assert not bad, f"caches/node modules in the tarball: {bad[:10]}"
    missing = REQUIRED - set(names)
    assert not missing, f"the tarball lacks {sorted(missing)}"

    install = run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", str(tarballs[0]), "-p", str(collections)],
                  cwd=cwd, env=base_env, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = collections / "ansible_collections" / "bluegreen" / "dbfix"
    assert (installed / "playbooks" / "site.yml").is_file()
    assert not installed.is_symlink()

    with built("galaxy", playbooks=("site.yml",)) as estate:
        env = user_env(estate, collections, tmp_path)
        # Only the install is visible (not the checkout's .collections link, not ~/.ansible).
        listed = run([str(VENV_BIN / "ansible-galaxy"), "collection", "list", "bluegreen.dbfix", "--format", "json"],
                     cwd=cwd, env=env, timeout=120)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        where = json.loads(listed.stdout)
        assert list(where) == [str(collections / "ansible_collections")], where

        green = estate.host(1, "green")
        assert H.http_request(green.port, "GET", "/api/users/me")[0] == 500, "the estate should show the incident"
        inventory = cwd / "inventory"
        inventory.write_text(estate.inventory.read_text(encoding="utf-8"), encoding="utf-8")
        evars = json.dumps({"dbfix_report_dir": str(estate.root / "reports")})
        site = run([str(VENV_BIN / "ansible-playbook"), "bluegreen.dbfix.site", "-i", "inventory", "-e", evars],
                   cwd=cwd, env=env, timeout=900)
        out = site.stdout + site.stderr
        (estate.logs / "galaxy-site.log").write_text(out, encoding="utf-8")
        assert site.returncode == 0, out[-6000:]
        recap = dict(re.findall(r"^(p1-\w+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out, re.M))
        assert set(recap) == {"p1-blue", "p1-green"} and all(int(c) > 0 for c in recap.values()), out[-3000:]

        # The installed modules did the work: the incident is fixed, one shared DB.
        assert H.http_request(green.port, "GET", "/api/users/me")[0] == 200
        shared = estate.host(1, "blue").shared_db.resolve()
        for h in estate.hosts:
            assert h.db_path.is_symlink() and h.db_path.resolve() == shared
            assert (h.app_dir / ".dbfix" / "state.json").is_file()
        assert H.integrity_ok(shared) == "ok"
        # The checkout never appeared as a collection source.
        assert str(ROOT / ".collections") not in out
