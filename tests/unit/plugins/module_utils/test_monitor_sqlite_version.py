# SPDX-License-Identifier: GPL-3.0-or-later
"""The WAL-reset bug version rule (3.7.0 <= v <= 3.51.2, except the 3.44.6+ and 3.50.7+ backports),
reading the version out of real binaries, and the helpers our modules call before writing to a live DB."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _sqlite_version as V

ROOT = Path(__file__).resolve().parents[4]

TRUTH = [
    ('3.6.23.1', False),  # before WAL existed
    ('3.7.0', True), ('3.7.0.1', True), ('3.7.17', True), ('3.8.4.3', True),
    ('3.40.1', True),     # Debian 12
    ('3.44.0', True), ('3.44.5', True), ('3.44.6', False), ('3.44.7', False),
    ('3.45.0', True), ('3.49.2', True),
    ('3.50.0', True), ('3.50.6', True), ('3.50.7', False), ('3.50.9', False),
    ('3.51.0', True), ('3.51.2', True), ('3.51.3', False), ('3.51.10', False),
    ('3.52.0', False), ('3.53.2', False), ('4.0.0', False),
    ((3, 40, 1), True), ((3, 51, 3), False),
    ('', None), ('garbage', None), (None, None), ('3.x', None),
]


@pytest.mark.parametrize('version,expected', TRUTH, ids=[str(v) for v, dummy in TRUTH])
def test_truth_table(version, expected):
    assert V.affected(version) is expected


def test_nearest_fix_and_verdict():
    assert V.fixed_alternative('3.44.2') == '3.44.6'
    assert V.fixed_alternative('3.50.1') == '3.50.7'
    assert V.fixed_alternative('3.40.1') == '3.51.3'
    assert 'WAL-reset bug' in V.verdict('3.40.1') and '3.51.3' in V.verdict('3.40.1')
    assert 'not affected' in V.verdict('3.53.2')
    assert 'not known' in V.verdict('nope')


def test_version_from_real_binaries():
    """The host's libsqlite3 (a shared library) and better-sqlite3's addon (the amalgamation linked in)."""
    lib = next(p for p in ('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0', '/usr/lib/aarch64-linux-gnu/libsqlite3.so.0') if Path(p).exists())
    assert V.version_in_binary(Path(lib).read_bytes()) == sqlite3.sqlite_version
    addon = ROOT / 'tests/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'
    version = V.version_in_binary(addon.read_bytes())
    assert V.parse(version) is not None and version.startswith('3.')
    # a binary without SQLite in it
    assert V.version_in_binary(Path(sys.executable).resolve().read_bytes()[:4_000_000]) is None


def test_process_libraries_of_a_real_python_process(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', 'import sqlite3, time; print(1, flush=True); time.sleep(60)'],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == '1'
        libs = V.process_libraries(proc.pid)
        assert [(lib['kind'], lib['version']) for lib in libs] == [('shared', sqlite3.sqlite_version)], libs
        assert libs[0]['path'].rsplit('/', 1)[-1].startswith('libsqlite3')
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.05)
    with pytest.raises(OSError):
        V.process_libraries(proc.pid)


def test_live_write_refusal_and_safe_connection(tmp_path):
    holders = [{'pid': 4242, 'command': 'node server.js', 'path': '/x/db'}]
    msg = V.live_write_refusal('/x/db', 'checkpoint', holders, version='3.40.1')
    assert 'Refusing to checkpoint /x/db' in msg and '3.40.1' in msg and 'pid 4242' in msg and 'node server.js' not in msg
    assert 'write to /x/db' in V.live_write_refusal('/x/db', 'write', holders, version='3.51.2')
    assert V.live_write_refusal('/x/db', 'write', holders, version='3.51.3') is None
    assert V.live_write_refusal('/x/db', 'checkpoint', [], version='3.40.1') is None
    conn = sqlite3.connect(str(tmp_path / 'a.db'))
    try:
        done = V.make_connection_safe(conn, version='3.40.1')
        assert 'wal_autocheckpoint=0' in done
        assert conn.execute('PRAGMA wal_autocheckpoint').fetchone()[0] == 0
        other = sqlite3.connect(str(tmp_path / 'b.db'))
        assert V.make_connection_safe(other, version='3.51.3') == []
        assert other.execute('PRAGMA wal_autocheckpoint').fetchone()[0] == 1000
        other.close()
    finally:
        conn.close()
