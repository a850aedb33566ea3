# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which filesystem holds a path, from ``/proc/self/mountinfo`` (no ``findmnt`` needed).

A shared SQLite file is only safe when every process that opens it goes through
one kernel: SQLite's POSIX locks and the WAL index (the ``-shm`` file, used through
``mmap``) are coherent inside one kernel's page cache only. Network filesystems
break this, often silently (``nfs`` locks are advisory and ``mmap`` is not
coherent between clients; ``cifs``/``smb3`` and ``fuse.sshfs`` are worse).

Decisions (see ``NETWORK_FS_TYPES``):

- Refused: every filesystem whose data lives behind another kernel -- NFS, SMB,
  sshfs, 9p, AFS, Ceph, Gluster, Lustre, GPFS, WebDAV, S3/GCS FUSE, ... and
  ``virtiofs``: its files belong to the *host* kernel, and two guests (or a guest
  and the host) sharing a virtiofs folder do not share one page cache, so the
  ``-shm`` mapping is not coherent between them. 9p (``virtio-9p``, WSL's
  ``drvfs``) is refused for the same reason.
- Accepted: ``overlay`` and ``fuse-overlayfs`` (container root filesystems: local,
  one kernel; whether two containers really see the *same* file is what phase 2's
  probe file proves), ``tmpfs``, bind mounts (mountinfo shows the underlying
  filesystem's type), block filesystems, and any FUSE type not named here
  (``fuse.bindfs``, ``fuseblk`` for ntfs-3g, ...). Cluster filesystems on shared
  block devices (``gfs2``, ``ocfs2``) are refused: their locking spans kernels.
"""

from __future__ import annotations

import os

MOUNTINFO = '/proc/self/mountinfo'

# Types as they appear in the mountinfo "filesystem type" field. FUSE filesystems
# show as ``fuse.<name>`` (``fuse.sshfs``); both spellings are listed where the
# plain name also exists as a kernel type.
NETWORK_FS_TYPES = frozenset((
    'nfs', 'nfs4',
    'cifs', 'smb3', 'smbfs', 'smb2', 'fuse.smbnetfs',
    'sshfs', 'fuse.sshfs',
    '9p', 'virtiofs', 'drvfs',
    'afs', 'openafs', 'coda',
    'ceph', 'fuse.ceph', 'fuse.ceph-fuse',
    'glusterfs', 'fuse.glusterfs',
    'lustre', 'gpfs', 'beegfs', 'orangefs', 'pvfs2',
    'ncpfs', 'ncp',
    'davfs', 'fuse.davfs', 'fuse.davfs2',
    'fuse.s3fs', 'fuse.goofys', 'fuse.gcsfuse', 'fuse.rclone', 'fuse.juicefs',
    'fuse.mfs', 'fuse.moosefs', 'fuse.lizardfs', 'fuse.cvmfs',
    'gfs2', 'ocfs2',
))


def _unescape(field):
    r"""Undo mountinfo's octal escapes (``\040`` space, ``\011`` tab, ``\012`` newline, ``\134`` backslash)."""
    if '\\' not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        c = field[i]
        if c == '\\' and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            try:
                out.append(chr(int(field[i + 1:i + 4], 8)))
                i += 4
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    return ''.join(out)


def parse_mountinfo(text):
    """Parse the text of a mountinfo file into a list of dicts, in file order.

    Each dict has ``mount_id``, ``parent_id``, ``device`` (``(major, minor)``),
    ``root``, ``mount_point``, ``options``, ``fstype``, ``source`` and
    ``super_options``. Lines that do not have the documented shape (see
    proc(5)) are skipped rather than guessed at.
    """
    entries = []
    for line in text.splitlines():
        fields = line.split(' ')
        try:
            sep = fields.index('-', 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        try:
            major, minor = fields[2].split(':')
            entries.append({
                'mount_id': int(fields[0]),
                'parent_id': int(fields[1]),
                'device': (int(major), int(minor)),
                'root': _unescape(fields[3]),
                'mount_point': _unescape(fields[4]),
                'options': fields[5],
                'fstype': _unescape(fields[sep + 1]),
                'source': _unescape(fields[sep + 2]),
                'super_options': fields[sep + 3] if len(fields) > sep + 3 else '',
            })
        except ValueError:
            continue
    return entries


def read_mountinfo(mountinfo=MOUNTINFO):
    with open(mountinfo, encoding='utf-8', errors='surrogateescape') as f:
        return parse_mountinfo(f.read())


def _contains(mount_point, path):
    if mount_point == '/':
        return True
    return path == mount_point or path.startswith(mount_point.rstrip('/') + '/')


def mount_for(path, entries=None, mountinfo=MOUNTINFO):
    """Return the mountinfo entry of the mount that holds ``path`` (or None).

    ``path`` is resolved with ``realpath`` first (symlinks lead to where the data
    is). Then the mount tree is walked the way the kernel walks a path: from the
    root mount, into the child mount met first along the path (the shortest
    mount point containing it; the last listed of equal ones), until no child
    contains the path. So a mount stacked on another at the same place wins, and
    a mount hidden under a later mount on a parent folder is skipped. A path
    need not exist. Bind mounts show the type of the filesystem they come from,
    which is what matters here.
    """
    if entries is None:
        entries = read_mountinfo(mountinfo)
    real = os.path.realpath(path)
    ids = {e['mount_id'] for e in entries}
    children = {}
    for e in entries:
        children.setdefault(e['parent_id'], []).append(e)

    def first_crossing(candidates, exclude=None):
        best = None
        for e in candidates:
            if e is exclude or not _contains(e['mount_point'], real):
                continue
            if best is None or len(e['mount_point']) <= len(best['mount_point']):
                best = e
        return best

    roots = [e for e in entries if e['parent_id'] not in ids or e['parent_id'] == e['mount_id']]
    current = first_crossing(roots)
    if current is None:
        # No usable tree (an unusual mountinfo): fall back to the longest mount point.
        for e in entries:
            if _contains(e['mount_point'], real) and (current is None or len(e['mount_point']) >= len(current['mount_point'])):
                current = e
        return current
    seen = {current['mount_id']}
    while True:
        child = first_crossing(children.get(current['mount_id'], ()), exclude=current)
        if child is None or child['mount_id'] in seen:
            return current
        seen.add(child['mount_id'])
        current = child


def is_network_fs(fstype):
    """True when ``fstype`` (a mountinfo type such as ``nfs4`` or ``fuse.sshfs``) is refused."""
    if not fstype:
        return False
    fstype = fstype.lower()
    if fstype in NETWORK_FS_TYPES:
        return True
    # Kernel NFS variants (nfs, nfs4, future ones) are network filesystems; ``nfsd``
    # is the NFS server's control filesystem, not a place for data.
    return fstype.startswith('nfs') and fstype != 'nfsd'


def fs_info(path, entries=None, mountinfo=MOUNTINFO):
    """Return ``{'fstype', 'mount_point', 'source', 'network'}`` for ``path``.

    ``fstype`` is ``None`` when no mount could be matched (an unreadable or
    unusual mountinfo); callers decide what that means.
    """
    entry = mount_for(path, entries=entries, mountinfo=mountinfo)
    if entry is None:
        return {'fstype': None, 'mount_point': None, 'source': None, 'network': False}
    return {
        'fstype': entry['fstype'],
        'mount_point': entry['mount_point'],
        'source': entry['source'],
        'network': is_network_fs(entry['fstype']),
    }
