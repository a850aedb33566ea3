#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: shared_db_link
short_description: Turn an app's SQLite file into a symlink to a shared DB (keeping C(.OLD)), and back
version_added: 0.1.0
description:
  - With O(state=linked), keeps the app's own database file as O(path) plus O(old_suffix)
    (together with any C(-wal), C(-shm) and C(-journal) file beside it) and replaces O(path)
    with a symlink to the absolute path of O(shared). O(path) never goes missing - the
    C(.OLD) name is made first as a hard link to the same file, then a temporary symlink
    is renamed over O(path) in one step.
  - With O(state=unlinked), puts the C(.OLD) file (and its C(-wal)/C(-shm)) back in place
    of the symlink, again in one rename.
  - Refuses, and changes nothing, while any process has the file open (it names the
    process ids and commands); when a C(.OLD) file already exists (it is never
    overwritten); when O(shared) is not a SQLite database, lies on a network filesystem,
    or sits in a folder the app's user cannot write.
  - Refuses, before SQLite opens anything, a database that users other than root, the user
    running the module and the app's user control - O(shared) with O(state=linked), the
    app's own file before it is kept as C(.OLD), and the C(.OLD) file with O(state=unlinked).
    That is the case when the database or one of its folders (up to C(/)) is owned by another
    user, or writable by every user (without the sticky bit) or by a group with other members,
    or when a C(-wal), C(-shm) or C(-journal) beside it belongs to another user, is a symlink or
    has extra hard links. SQLite reads a C(-wal) or hot C(-journal) as part of the database, so a
    planted one injects rows. The message names each file, its owner and mode and what to do;
    only C(lstat) is used, so the files, their owners and modes stay exactly as they were.
  - Before O(path) is kept as C(.OLD), a C(-wal) or hot C(-journal) beside it is
    checkpointed into the file (nobody holds it, this was checked), so the C(.OLD)
    file is complete on its own and a plain copy of it loses nothing. The logical
    content is unchanged; the bytes of the main file change when the WAL held pages.
  - The app's user is the owner of O(path) (for a symlink, the owner of the link
    itself, which this module sets to the owner of the file it replaced; for a missing
    O(path), the owner of its folder). It must be able to write the folder of
    O(shared), because SQLite creates the C(-wal) and C(-shm) files there, and the
    shared file itself. Only mode bits are read; access granted by ACLs alone is not
    seen and leads to a refusal.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
options:
  path:
    description:
      - Absolute path of the app's database file (for example C(/home/ubuntu/TimeTracking-BLUE/server/database.db)).
    type: path
    required: true
  shared:
    description:
      - Absolute path of the shared SQLite database the link points to.
      - Required with O(state=linked); it must exist, start with the SQLite header and open read-only.
      - With O(state=unlinked), when given, the link at O(path) must point to it (or O(force=true)).
    type: path
  state:
    description:
      - V(linked) makes O(path) a symlink to O(shared); V(unlinked) restores the C(.OLD) file.
    type: str
    choices: [linked, unlinked]
    default: linked
  old_suffix:
    description:
      - Suffix of the name the app's own file is kept under (O(path) plus this suffix).
      - Must not be empty, contain C(/), or be one of SQLite's own suffixes C(-wal), C(-shm), C(-journal).
    type: str
    default: .OLD
  force:
    description:
      - With O(state=linked), replace a symlink at O(path) that points somewhere other than
        O(shared) (the file it pointed to is not touched, and no C(.OLD) is made of a link).
      - With O(state=unlinked), restore the C(.OLD) file even when the link points somewhere other than O(shared).
      - Never overrides the other checks (open files, existing C(.OLD), network filesystem, permissions).
    type: bool
    default: false
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details:
      - Check mode runs every check (open files, C(.OLD), filesystem, permissions) and changes nothing; it does not checkpoint.
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - Stop the app before running this module; it refuses while the file is open, and with
    O(state=unlinked) while anyone has the shared database open. Open files are found in
    C(/proc), so only processes in the module's own PID namespace are seen (an app in another
    container that shares the folder is not); run it as root so every process can be inspected.
  - Network filesystems refused include NFS, CIFS/SMB, sshfs, 9p, virtiofs, AFS, Ceph,
    GlusterFS, Lustre, GPFS, WebDAV and object-store FUSE mounts; C(overlay) and C(tmpfs)
    are local and accepted.
  - When the filesystem does not allow the hard link (for example C(fs.protected_hardlinks)
    for a non-root user), the C(.OLD) file is made as a copy with the same owner, mode and
    times instead; O(path) still never goes missing.
'''

EXAMPLES = r'''
- name: Point BLUE's database at the shared one, keeping database.db.OLD
  bluegreen.dbfix.shared_db_link:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    shared: /home/ubuntu/database-shared.db
  register: blue_link

- name: Roll back - put database.db.OLD back in place of the link
  bluegreen.dbfix.shared_db_link:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    shared: /home/ubuntu/database-shared.db
    state: unlinked

- name: Replace a link someone made to another file
  bluegreen.dbfix.shared_db_link:
    path: /home/ubuntu/TimeTracking-Clean/server/database.db
    shared: /home/ubuntu/database-shared.db
    force: true
'''

RETURN = r'''
previous:
  description: What O(path) was before this run - V(file), V(absent), or V(link:<target>) with the link's text.
  returned: always
  type: str
  sample: file
target:
  description: Where the symlink at O(path) points after the run; V(null) when O(path) is not a link afterwards.
  returned: always
  type: str
  sample: /home/ubuntu/database-shared.db
old_file:
  description: The C(.OLD) path (O(path) plus O(old_suffix)), whether or not it exists after the run.
  returned: always
  type: str
  sample: /home/ubuntu/TimeTracking-BLUE/server/database.db.OLD
checkpointed:
  description: Whether a C(-wal) or hot C(-journal) was merged into the file before it was moved (see description).
  returned: always
  type: bool
  sample: false
moved:
  description: Files moved (or that would be moved in check mode), as C(source -> destination) strings, in order.
  returned: always
  type: list
  elements: str
  sample: ["/srv/app/database.db -> /srv/app/database.db.OLD"]
old_method:
  description: How the C(.OLD) file was made - V(hardlink), V(copy) (filesystem refused the hard link), or V(null) when none was made.
  returned: always
  type: str
  sample: hardlink
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._shared_db_link import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
