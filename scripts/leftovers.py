# SPDX-License-Identifier: GPL-3.0-or-later
"""What a test run left behind on this machine: `make test` must leave nothing.

    leftovers.py snapshot FILE   before the run: the processes, containers and temp entries already there
    leftovers.py check FILE      after the run: what is new and still there, one line each, and
                                 "leftovers: N passed, N failed" (3 checks: processes, containers, temp)

Only what the run made is judged (anything in the snapshot is left alone), and of that only what is ours:

* processes: pm2 daemons (``PM2 ... God Daemon``), pm2/node/python apps and containers' helpers
  (conmon, catatonit) started after the snapshot, and any process whose PM2_HOME or working folder is
  in a temp folder or in this checkout. The run's own process tree (this script and its parents) is skipped.
* containers: any container (in the default podman store) that was not there before.
* temp folders: any new entry directly in /tmp, /var/tmp or /dev/shm (the tests' own folders are all
  made there; a run must remove them, pass or fail).

Exit status 1 when anything was found. Standard library only.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

TEMP_DIRS = tuple(os.environ.get('DBFIX_LEFTOVER_TEMP_DIRS', '/tmp:/var/tmp:/dev/shm').split(':'))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_CMD = re.compile(r'PM2|pm2|God Daemon|\bnode\b|nodejs|conmon|catatonit|podman|molecule|ansible|'
                      r'sqlite3|server\.js|http\.server|python')


def _read(path, binary=False):
    try:
        with open(path, 'rb') as fh:
            data = fh.read()
    except OSError:
        return None
    return data if binary else data.decode('utf-8', 'replace')


def processes():
    """{pid: (start ticks, cmdline, PM2_HOME, cwd)} of every process we can read (kernel threads left out)."""
    out = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        pid = int(name)
        cmd = _read('/proc/%d/cmdline' % pid, binary=True)
        if not cmd:
            continue  # kernel thread or gone
        stat = _read('/proc/%d/stat' % pid) or ''
        try:
            start = int(stat.rsplit(')', 1)[1].split()[19])
        except (IndexError, ValueError):
            start = 0
        env = _read('/proc/%d/environ' % pid, binary=True) or b''
        home = ''
        for item in env.split(b'\0'):
            if item.startswith(b'PM2_HOME='):
                home = item[9:].decode('utf-8', 'replace')
        try:
            cwd = os.readlink('/proc/%d/cwd' % pid)
        except OSError:
            cwd = ''
        out[pid] = (start, cmd.replace(b'\0', b' ').decode('utf-8', 'replace').strip(), home, cwd)
    return out


def _ppid(pid):
    stat = _read('/proc/%d/stat' % pid) or ''
    try:
        return int(stat.rsplit(')', 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def own_tree():
    """This process and its ancestors."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _read('/proc/%d/stat' % pid) or ''
        try:
            pid = int(stat.rsplit(')', 1)[1].split()[1])
        except (IndexError, ValueError):
            break
    return pids


def containers():
    if not shutil.which('podman'):
        return []
    try:
        res = subprocess.run(['podman', 'ps', '-a', '--format', '{{.ID}} {{.Names}}'], capture_output=True,
                             text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(line.strip() for line in res.stdout.splitlines() if line.strip())


def temp_entries():
    out = []
    for top in TEMP_DIRS:
        try:
            out += [os.path.join(top, n) for n in os.listdir(top)]
        except OSError:
            pass
    return sorted(out)


def snapshot(path):
    procs = processes()
    data = {'time': time.time(), 'pids': {str(p): v[0] for p, v in procs.items()},
            'containers': containers(), 'temp': temp_entries()}
    with open(path, 'w', encoding='utf-8') as fh:
        json.dump(data, fh)
    return 0


def _in_temp_or_here(path):
    return bool(path) and any(path == d or path.startswith(d + '/') for d in (*TEMP_DIRS, ROOT))


def check(path):
    with open(path, encoding='utf-8') as fh:
        snap = json.load(fh)
    skip = own_tree()
    found = {'processes': [], 'containers': [], 'temp folders': []}
    for pid, (start, cmd, home, cwd) in sorted(processes().items()):
        # The run's own pipeline (this script, its parents, and their other children such as the stage's tee).
        if pid in skip or _ppid(pid) in skip or snap['pids'].get(str(pid)) == start:
            continue
        if OURS_CMD.search(cmd) or _in_temp_or_here(home) or _in_temp_or_here(cwd):
            found['processes'].append('pid %d: %s (PM2_HOME=%s, cwd=%s)' % (pid, cmd[:160], home or '-', cwd or '-'))
    before = set(snap['containers'])
    found['containers'] = ['container %s' % c for c in containers() if c not in before]
    before = set(snap['temp'])
    found['temp folders'] = [p for p in temp_entries() if p not in before]
    failed = 0
    for kind, items in found.items():
        if items:
            failed += 1
            print('leftovers: %s left behind by this run:' % kind)
            for item in items:
                print('  %s' % item)
    if failed:
        print('leftovers: every test must stop what it started and remove what it made, pass or fail '
              '(pm2 kill, podman rm, rm -rf of its temp folder)')
    print('leftovers: %d passed, %d failed' % (len(found) - failed, failed))
    return 1 if failed else 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ('snapshot', 'check'):
        print(__doc__.strip().splitlines()[2])
        return 2
    return snapshot(argv[2]) if argv[1] == 'snapshot' else check(argv[2])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
