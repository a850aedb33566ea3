#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: sqlite_backup
short_description: Consistent, verified, atomic backups of a live SQLite database, and restore
version_added: 0.1.0
description:
  - Takes a consistent copy of an SQLite database while other processes keep writing to it, in WAL
    and in rollback-journal mode. The copy is one committed state, never a plain copy of a live file.
  - In WAL mode writers are not stalled while the copy runs. In rollback-journal mode writers are
    blocked for the length of the copy (a reader holds the SHARED lock); that is inherent to that mode.
  - The copy is written to a temporary file in the destination folder, fsync'ed, verified, renamed into
    place and the folder fsync'ed. On any failure (disk full included) no partial backup is left.
  - The backup file is named C(<dbname>.backup.<timestamp>), as the original shell scripts named them. If that name is
    taken by a backup with other content (a retry after the data changed, a concurrent run), the next free
    C(<dbname>.backup.<timestamp>.<n>) is used; an existing backup is never overwritten (the final name is created
    with a hard link, which fails instead of replacing).
  - Before anything opens the database, the owners and modes of the database, its C(-wal)/C(-shm)/C(-journal), its
    folder and every parent folder (and the backup folder) are checked with C(lstat). The module refuses, naming the
    file, its owner and mode, when another local user could have planted or swapped them (a side file owned by
    another user, a symlinked or hard-linked side file, a folder writable by others without the sticky bit, or
    writable by a group with other members). When run as root, the database's owner counts as the app user.
  - A crashed app's database is not treated as corrupt. A hot rollback journal, or committed frames in a C(-wal)
    with no C(-shm), are recovered by SQLite in a private temporary copy, so the backup holds the committed rows,
    and the database and its journal/WAL are left as they are. RV(recovered) says what was found.
  - Reading creates nothing beside the database (no empty C(-wal)/C(-shm) next to a closed WAL database, in
    check mode or not).
  - With O(state=restored) the backup O(src) is verified and copied into O(path); the current database is
    kept aside first. Restoring refuses while any process has the database (or its C(-wal)/C(-shm)) open.
  - A restore target that exists must be an SQLite database, through a symlink too; a text file, a directory,
    a FIFO or a device is refused, naming the link and its target. O(src) must be an SQLite file that passes
    C(quick_check) (even with O(verify=none)), with no C(-wal) or hot journal beside it.
  - Restoring over a crashed database keeps its committed state. The aside file is a self-contained copy of the
    committed rows (WAL frames read, hot journal rolled back in a private copy), and the old C(-wal)/C(-journal)
    are kept as C(<aside>.old-wal)/C(<aside>.old-journal), names SQLite never applies to anything.
  - If O(path) is a symlink (phase 2 reaches the shared database through symlinks), backups read the link's
    target, and a restore writes into the link's target; the link itself is never replaced. The aside file
    is placed beside the target.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.files
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Check mode takes the snapshot to prove the database is readable, returns the O(state=present) RV(backup_file)
      it would write and the files it would prune, and writes nothing.
  diff_mode:
    support: full
    details:
      - With O(state=present), the names of this database's backups in the destination folder, one per line, before and
        after (the new backup added, the ones O(keep) prunes removed). With O(dest), that file is listed too.
      - With O(state=restored), C(sha256 <hex> size <bytes>) of the database's committed content now (C(absent) if there is
        none) and of O(src).
      - Never shows rows of the database. Check mode returns the same diff.
  idempotent:
    support: partial
    details:
      - O(state=present) makes a new backup on every run unless O(skip_unchanged=true) or a fixed O(timestamp) is given.
      - O(state=restored) reports no change when O(path) already holds the content of O(src).
options:
  path:
    description:
      - The SQLite database file. May be a symlink; its target is used.
    type: path
    required: true
  dest_dir:
    description:
      - Folder that receives C(<dbname>.backup.<timestamp>). Defaults to the folder of O(path) (the folder holding
        the link, when O(path) is a symlink).
      - Mutually exclusive with O(dest).
    type: path
  dest:
    description:
      - Exact backup file to write instead of the timestamped name. Mutually exclusive with O(dest_dir).
    type: path
  timestamp:
    description:
      - Timestamp C(YYYYMMDD_HHMMSS) used in the backup name (and in the aside name when restoring).
      - Defaults to the managed host's local time now. A role can pass one stamp for both colors.
      - If C(<dbname>.backup.<timestamp>) exists with other content, C(.1), C(.2), ... is appended.
    type: str
  verify:
    description:
      - Check run on the copy before it is renamed into place (C(quick) = C(PRAGMA quick_check), C(full) =
        C(PRAGMA integrity_check)). With O(state=restored), the check run on O(src) before restoring, and again on
        the copy about to be installed; V(none) still runs C(quick_check) there.
    type: str
    choices: [quick, full, none]
    default: quick
  checksum:
    description:
      - Compute the sha256 of the copy (returned as RV(sha256)) while it is written.
      - Defaults to V(true) unless O(verify=none). O(verify=none) means nothing is read back, and sha256 costs
        more than the copy itself (about 0.7 s per GB here against 0.4 s for the copy, see C(docs/benchmarks.md));
        set O(checksum=true) to have both. A checksum is always computed when an existing backup is compared
        (O(skip_unchanged=true), or a backup of the same name exists).
    type: bool
  keep:
    description:
      - Keep only the newest O(keep) backups of this database (by the timestamp in their names) in the destination
        folder and delete older ones. The backup written by this run is always kept. Unset keeps everything.
    type: int
  skip_unchanged:
    description:
      - If the newest existing backup of this database holds byte-for-byte the same content as a fresh consistent
        snapshot, write nothing and report RV(backup_file) as that backup with C(changed=false).
    type: bool
    default: false
  state:
    description:
      - V(present) makes a backup. V(restored) restores O(src) into O(path).
    type: str
    choices: [present, restored]
    default: present
  src:
    description:
      - Backup file to restore, required with O(state=restored).
    type: path
  busy_timeout:
    description:
      - How long (milliseconds) to wait for a lock held by another process before failing (0 to 86400000).
    type: int
    default: 5000
notes:
  - O(mode), O(owner) and O(group) default to those of the source database. A mode that would let more users
    read the backup than can read the database is refused.
  - The fast copy reads the database file and the newest WAL frames of the pinned snapshot directly (see
    C(plugins/module_utils/_snapshot.py)); if it cannot prove consistency it falls back to SQLite's backup API
    and says so in RV(method).
seealso:
  - module: bluegreen.dbfix.sqlite_info
  - module: bluegreen.dbfix.sqlite_migrate
'''

EXAMPLES = r'''
- name: Back up the app database next to it, keep 5
  bluegreen.dbfix.sqlite_backup:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    keep: 5

- name: Back up both colors with one timestamp, only if something changed
  bluegreen.dbfix.sqlite_backup:
    path: "{{ dbfix_db_path }}"
    dest_dir: /var/backups/timetracking
    timestamp: "{{ dbfix_stamp }}"
    skip_unchanged: true
    verify: full
  register: db_backup

- name: Restore a backup (the app must be stopped)
  bluegreen.dbfix.sqlite_backup:
    path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    src: /home/ubuntu/TimeTracking-BLUE/server/database.db.backup.20260101_120000
    state: restored
'''

RETURN = r'''
backup_file:
  description: The backup written (or that would be written in check mode, or the existing unchanged one).
  returned: state is present
  type: str
  sample: /home/ubuntu/TimeTracking-BLUE/server/database.db.backup.20260101_120000
size:
  description: Size in bytes of the backup (the restored database for O(state=restored)).
  returned: when a copy was made or compared
  type: int
  sample: 1048576
sha256:
  description:
    - sha256 of the backup file (the restored database for O(state=restored)).
    - Null when no checksum was computed (O(verify=none) without O(checksum=true)).
  returned: when a copy was made or compared
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
integrity:
  description: C(ok), or the messages of the failed check; null when O(verify=none) or nothing was copied.
  returned: always
  type: raw
  sample: ok
duration_ms:
  description: Wall time of the module's work in milliseconds.
  returned: always
  type: int
  sample: 412
pruned:
  description: Older backups deleted because of O(keep) (would be deleted, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/db/database.db.backup.20250101_000000]
method:
  description: How the copy was taken, C(snapshot-copy) (fast path) or C(backup-api) (SQLite's backup API fallback).
  returned: when a copy was made
  type: str
  sample: snapshot-copy
journal_mode:
  description: Journal mode of the source database.
  returned: state is present
  type: str
  sample: wal
recovered:
  description:
    - What a crashed writer had left beside the database (a hot rollback journal, WAL frames without a C(-shm)) and how
      its committed state was read, in a private copy; the database and its side files were left as they are.
    - Null when there was nothing to recover.
  returned: always
  type: str
  sample: Found a hot rollback journal /srv/db/database.db-journal (31232 bytes) from a transaction that never finished; ...
aside_file:
  description:
    - Where the committed state of the database replaced by the restore was kept (null if O(path) did not exist).
    - A C(-wal) or C(-journal) it had is kept beside it as C(<aside_file>.old-wal) / C(<aside_file>.old-journal).
  returned: state is restored
  type: str
  sample: /home/ubuntu/database-shared.db.before-restore.20260101_120000
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._sqlite_backup import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
