# SPDX-License-Identifier: GPL-3.0-or-later
"""What an execution environment needs for bluegreen.dbfix, as ansible-builder sees it.

Real parts only: ``ansible-galaxy collection build`` of a copy of this tree, ``install``
of the tarball into a clean collections path under tmp_path, then the venv's pinned
``ansible-builder introspect`` of that path. It must list exactly our dependencies:
no Python package (the modules use the standard library, on the managed hosts) and
an SSH client from bindep (meta/execution-environment.yml, meta/ee-*.txt).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_introspect_lists_exactly_our_dependencies(tmp_path):
    src, dist, collections = tmp_path / "src", tmp_path / "dist", tmp_path / "collections"
    shutil.copytree(ROOT, src, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "node_modules", "tests", "molecule", "bench"))
    build = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(src)], tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(dist.glob("bluegreen-dbfix-*.tar.gz"))
    install = run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)], tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    assert (collections / "ansible_collections" / "bluegreen" / "dbfix" / "meta" / "execution-environment.yml").is_file()

    intro = run([str(VENV_BIN / "ansible-builder"), "introspect", str(collections)], tmp_path)
    assert intro.returncode == 0, intro.stdout + intro.stderr
    data = yaml.safe_load(intro.stdout.split("---", 1)[1])
    assert data == {
        "python": [],
        "system": [
            "openssh-client [platform:dpkg]  # from collection bluegreen.dbfix",
            "openssh-clients [platform:rpm]  # from collection bluegreen.dbfix",
        ],
    }, intro.stdout
