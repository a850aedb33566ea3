# SPDX-License-Identifier: GPL-3.0-or-later
"""Filesystem type detection from mountinfo (plugins/module_utils/_fsinfo.py).

Parsing and matching run on fixture text (a network mount cannot be made on this
machine); the real /proc/self/mountinfo is cross-checked against findmnt.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _fsinfo

SAMPLE = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
60 27 0:50 / /mnt/nfs rw,relatime shared:30 master:2 - nfs4 srv:/export rw,vers=4.2,addr=10.0.0.1
61 27 0:51 / /mnt/nfsx rw,relatime - ext4 /dev/vdb rw
62 27 0:52 / /mnt/my\\040share rw - cifs //srv/share rw
63 27 0:53 / /srv/data rw - xfs /dev/vdc rw
64 63 0:54 / /srv/data rw - fuse.sshfs user@host:/data rw
65 27 0:55 /sub /srv/bind rw - ext4 /dev/vdd rw
bogus line without separator
"""


@pytest.fixture
def entries():
    return _fsinfo.parse_mountinfo(SAMPLE)


def test_parse_fields_with_optional_fields_and_escapes(entries):
    assert len(entries) == 8  # the malformed line is skipped, not guessed at
    nfs = entries[2]
    assert nfs['mount_point'] == '/mnt/nfs'
    assert nfs['fstype'] == 'nfs4'
    assert nfs['source'] == 'srv:/export'
    assert nfs['device'] == (0, 50)
    assert nfs['super_options'].startswith('rw,vers=4.2')
    assert entries[4]['mount_point'] == '/mnt/my share'
    assert entries[7]['root'] == '/sub'


@pytest.mark.parametrize(('path', 'fstype', 'mount_point'), [
    ('/mnt/nfs/app/database-shared.db', 'nfs4', '/mnt/nfs'),
    ('/mnt/nfs', 'nfs4', '/mnt/nfs'),
    ('/mnt/nfsx/db', 'ext4', '/mnt/nfsx'),       # a prefix of the name is not a parent
    ('/mnt/nfsy/db', 'ext4', '/'),
    ('/mnt/my share/db', 'cifs', '/mnt/my share'),
    ('/srv/data/x.db', 'fuse.sshfs', '/srv/data'),  # the later mount covers the earlier one
    ('/home/ubuntu/database-shared.db', 'ext4', '/'),
])
def test_mount_for_picks_longest_then_last(entries, path, fstype, mount_point):
    entry = _fsinfo.mount_for(path, entries=entries)
    assert (entry['fstype'], entry['mount_point']) == (fstype, mount_point)


@pytest.mark.parametrize('fstype', ['nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'fuse.sshfs', '9p', 'afs', 'ceph', 'glusterfs',
                                    'fuse.glusterfs', 'lustre', 'gpfs', 'ncpfs', 'davfs', 'fuse.s3fs', 'virtiofs', 'NFS4'])
def test_network_types_are_refused(fstype):
    assert _fsinfo.is_network_fs(fstype)


@pytest.mark.parametrize('fstype', ['ext4', 'xfs', 'btrfs', 'tmpfs', 'overlay', 'fuse-overlayfs', 'fuse.fuse-overlayfs',
                                    'fuse.bindfs', 'fuseblk', 'zfs', 'nfsd', '', None])
def test_local_types_are_accepted(fstype):
    assert not _fsinfo.is_network_fs(fstype)


def test_mount_hidden_by_later_parent_mount_is_ignored():
    text = ('1 0 254:0 / / rw - ext4 /dev/vda rw\n'
            '2 1 0:60 / /data/deep rw - nfs srv:/x rw\n'
            '3 1 254:1 / /data rw - xfs /dev/vdb rw\n')
    entry = _fsinfo.mount_for('/data/deep/db', entries=_fsinfo.parse_mountinfo(text))
    assert entry['fstype'] == 'xfs'


def test_fs_info_reports_network_mount(entries):
    info = _fsinfo.fs_info('/mnt/nfs/shared.db', entries=entries)
    assert info == {'fstype': 'nfs4', 'mount_point': '/mnt/nfs', 'source': 'srv:/export', 'network': True}


def test_fs_info_without_match_is_unknown():
    assert _fsinfo.fs_info('/x', entries=[]) == {'fstype': None, 'mount_point': None, 'source': None, 'network': False}


def test_symlink_is_resolved_before_matching(tmp_path):
    # A link in a local folder to a file under a network mount is on the network mount.
    text = '1 0 254:0 / / rw - ext4 /dev/vda rw\n2 1 0:60 / %s rw - nfs srv:/x rw\n' % (tmp_path / 'mnt')
    (tmp_path / 'mnt').mkdir()
    (tmp_path / 'mnt' / 'db').write_bytes(b'x')
    (tmp_path / 'link').symlink_to(tmp_path / 'mnt' / 'db')
    info = _fsinfo.fs_info(str(tmp_path / 'link'), entries=_fsinfo.parse_mountinfo(text))
    assert info['fstype'] == 'nfs'


def test_real_mountinfo_matches_findmnt(tmp_path):
    findmnt = shutil.which('findmnt')
    assert findmnt, 'findmnt (util-linux) is not installed: install it, this test must not be skipped'
    for path in (str(tmp_path), '/', '/proc', '/dev/shm'):
        if not os.path.exists(path):
            continue
        want = subprocess.run([findmnt, '-n', '-o', 'FSTYPE,TARGET', '-T', path], capture_output=True, text=True, check=True)
        # findmnt lists every entry at that target (stacked mounts); the last one is visible.
        fstype, target = want.stdout.strip().splitlines()[-1].split(None, 1)
        info = _fsinfo.fs_info(path)
        assert (info['fstype'], info['mount_point']) == (fstype, target.strip()), path
        assert info['network'] is False  # this machine has no network filesystems


def _escape(s):
    return ''.join('\\%03o' % ord(c) if c in ' \t\n\\' else c for c in s)


@given(st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\0'), max_size=40))
def test_unescape_inverts_kernel_escaping(name):
    assert _fsinfo._unescape(_escape(name)) == name
