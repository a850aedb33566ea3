#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is in plugins/module_utils/_switch.py; the action plugin of the same
# name (plugins/action/shared_db_switch.py) only hands this module the
# module_defaults of the modules a step runs.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shared_db_switch
short_description: One named step of switching an app of a blue/green pair onto the shared SQLite database
version_added: "1.1.0"
description:
  - Does one step of phase 2's switch window on one host, as one task, with named options and named results. Between
    stopping an app and its health being back every task is downtime, so each step runs this collection's modules
    back to back in ONE process on the managed host (M(bluegreen.dbfix.pm2_info), M(bluegreen.dbfix.pm2_service),
    M(bluegreen.dbfix.sqlite_backup), M(bluegreen.dbfix.sqlite_info), M(bluegreen.dbfix.shared_db_link) and
    M(bluegreen.dbfix.dbfix_state)), each with its own argument checks, as if it were its own task.
  - Every one of those module calls gets the C(module_defaults) set for it (by its name or through the
    C(group/bluegreen.dbfix.dbfix) action group), as if it were its own task; the action plugin of this module
    resolves them on the controller and passes them as O(sub_defaults).
  - O(step=quiesce) checks that the app is online, stops it, and then, on the O(role=base) host, moves an unused old
    shared database aside (O(aside)), seeds the shared database from the now quiet database (unless
    O(already_linked)) and links the app's database to it; on the O(role=other) host it re-checks the now quiet
    database against the base's copy (O(recheck_against)) and fails when rows landed since the analysis that the
    base lacks (the same rule as M(bluegreen.dbfix.shared_db_plan)).
  - O(step=activate) links the database (O(role=other)), starts the app through its health gate, and proves from the
    operating system (C(/proc/PID/fd) of the pm2 process and its children) that it holds the shared database's inode
    and none of the copies it must not use (its C(.OLD) file, O(forbid_open)). An app that holds no database file yet
    (it opens it lazily) is reported as such (C(lazy) in RV(open)) with a warning, not failed. Then it optionally
    backs up the new shared database (O(restore_point)) and records the switch in the state file (O(record)).
  - O(step=switch) is O(step=quiesce) followed by O(step=activate) in the same process, the base host's whole window
    from stopping its app to its health being back, with no task (and no wait for the other host) inside it. The
    bluegreen.dbfix.phase2 role quiesces GREEN first, then switches BLUE (production) in one step, then activates
    GREEN, whichever of them is the base.
  - O(step=verify) makes sure the app is started and healthy and proves which database it holds, changing nothing
    when it already runs.
  - O(step=undo) puts the app's own database back from its C(.OLD) file when O(unlink=true) (stopping the app first),
    and starts the app again in every case.
  - Any option O(abort_reason) that is not empty makes the step fail before doing anything; a pair uses it so that
    one color does not go on when the other failed.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller; the work is done by modules on the managed host.
  check_mode:
    support: none
    details: In check mode the step does nothing and says so (it would stop, link and start apps).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: O(step=verify) and O(step=activate) on a linked, running app change nothing; O(step=quiesce) always stops the app.
options:
  step:
    description: Which step to run.
    type: str
    required: true
    choices: [quiesce, activate, switch, undo, verify]
  role:
    description: Whether this host's database becomes the shared one (C(base)) or is replaced by it (C(other)).
    type: str
    choices: [base, other]
    default: other
  db_path:
    description: The app's database file (becomes a symlink to O(shared_db)).
    type: path
    required: true
  shared_db:
    description: The pair's shared database.
    type: path
    required: true
  old_suffix:
    description: Suffix of the kept original database (C(database.db.OLD)).
    type: str
    default: .OLD
  pm2:
    description: How to reach and start the app's pm2 process (passed to M(bluegreen.dbfix.pm2_service) and M(bluegreen.dbfix.pm2_info)).
    type: dict
    required: true
    suboptions:
      name:
        description: pm2 process name.
        type: str
        required: true
      pm2_home:
        description: C(PM2_HOME) of the daemon; empty for pm2's default.
        type: path
      executable:
        description:
          - pm2 command or path.
          - Unset, the step's pm2 calls take it from the play's C(module_defaults) for M(bluegreen.dbfix.pm2_service)
            and M(bluegreen.dbfix.pm2_info), else C(pm2) from E(PATH).
        type: str
      script:
        description: Script pm2 starts when it does not know the app (ignored with O(pm2.ecosystem)).
        type: str
      cwd:
        description: Working directory for that start.
        type: path
      interpreter:
        description: Interpreter pm2 runs the script with; empty lets pm2 choose.
        type: str
      args:
        description: Arguments for the script.
        type: list
        elements: str
      ecosystem:
        description: Ecosystem file that defines the process (used instead of O(pm2.script)).
        type: str
  health:
    description: The health gate every start passes.
    type: dict
    default: {}
    suboptions:
      url:
        description: URL polled on the managed host; empty means pm2's online status only.
        type: str
      status:
        description: The HTTP status that counts as healthy.
        type: int
        default: 200
      body_regex:
        description: A regular expression the health answer's body must also match (searched); empty accepts any body.
        type: str
      timeout:
        description: Seconds the gate polls before failing.
        type: float
        default: 30
  wait:
    description: Seconds a started app must stay online (same pid) before it counts as up; 0 inside the switch window.
    type: float
    default: 0
  already_linked:
    description: The database is already a link to O(shared_db) (an interrupted earlier run); do not seed or re-check.
    type: bool
    default: false
  aside:
    description: With O(role=base), first move an existing, unused O(shared_db) to this path (never over an existing file).
    type: path
  seed_verify:
    description: Integrity check of the seeded shared database.
    type: str
    choices: [none, quick, full]
    default: quick
  recheck_against:
    description: With O(role=other) and O(step=quiesce), the base's consistent copy the quiet database must not hold rows beyond; empty skips the re-check.
    type: path
  ignore_tables:
    description: Tables whose differences the re-check ignores (bookkeeping).
    type: list
    elements: str
    default: []
  forbid_open:
    description: More files (besides the C(.OLD) file) the app must not hold open after the switch, for example the phase's backups.
    type: list
    elements: path
    default: []
  busy_timeout:
    description: Milliseconds SQLite waits for a lock.
    type: int
    default: 5000
  abort_reason:
    description: When not empty, fail with this reason before doing anything.
    type: str
    default: ''
  unlink:
    description: With O(step=undo), put the app's own database back from its C(.OLD) file (stopping the app first).
    type: bool
    default: false
  restore_point:
    description: With O(step=activate) or O(step=switch) and O(role=base), back up the new shared database once the app is healthy.
    type: dict
    suboptions:
      dest_dir:
        description: Folder of the backup.
        type: path
        required: true
      timestamp:
        description: Timestamp in the backup's name (C(YYYYMMDD_HHMMSS)).
        type: str
        required: true
      verify:
        description: Integrity check of the backup.
        type: str
        choices: [none, quick, full]
        default: quick
  record:
    description:
      - With O(step=activate) or O(step=switch), record the switch in the host's state file (read by the rollback role) when this run
        linked the database.
      - With O(step=undo), remove that record again once the database was put back.
    type: dict
    suboptions:
      state_file:
        description: The state file (see M(bluegreen.dbfix.dbfix_state)).
        type: path
        required: true
      section:
        description: Top-level key of the record.
        type: str
        default: phase2
      data:
        description: What to record; C(old_file) is added.
        type: dict
        default: {}
      fact:
        description: Host fact to publish the resulting state as; empty publishes none.
        type: str
        default: ''
  sub_defaults:
    description:
      - Default options of the modules a step runs, by module name (C(pm2_info), C(pm2_service), C(sqlite_backup),
        C(sqlite_info), C(shared_db_link), C(dbfix_state)); the step's own options win.
      - Set by the action plugin from the task's C(module_defaults); there is no need to set it by hand.
    type: dict
    default: {}
notes:
  - Reading another user's C(/proc/PID/fd) needs root or that user; a step that cannot prove which database the app
    holds fails rather than guess.
seealso:
  - module: bluegreen.dbfix.shared_db_plan
  - module: bluegreen.dbfix.pm2_info
  - module: bluegreen.dbfix.shared_db_link
"""

EXAMPLES = r"""
- name: Quiesce - stop the app, seed the shared DB from it and link (base host)
  bluegreen.dbfix.shared_db_switch:
    step: quiesce
    role: base
    db_path: /home/ubuntu/TimeTracking-Clean/server/database.db
    shared_db: /home/ubuntu/database-shared.db
    pm2:
      name: timetracking-green
      script: server.js
      cwd: /home/ubuntu/TimeTracking-Clean/server
  register: quiesce

- name: Switch the base host - stop, seed, link, start through the health gate, prove, in one process
  bluegreen.dbfix.shared_db_switch:
    step: switch
    role: base
    db_path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    shared_db: /home/ubuntu/database-shared.db
    pm2:
      name: timetracking-blue
      script: server.js
      cwd: /home/ubuntu/TimeTracking-BLUE/server
    health:
      url: http://127.0.0.1:3000/api/health

- name: Activate - link, start through the health gate, prove the shared DB is open
  bluegreen.dbfix.shared_db_switch:
    step: activate
    role: other
    db_path: /home/ubuntu/TimeTracking-BLUE/server/database.db
    shared_db: /home/ubuntu/database-shared.db
    pm2:
      name: timetracking-blue
    health:
      url: http://127.0.0.1:3000/api/health
"""

RETURN = r"""
step:
  description: The step that ran.
  returned: always
  type: str
role:
  description: The O(role) option.
  returned: always
  type: str
executed:
  description: What was done, in order (module name, what, and how many seconds it took).
  returned: when a step did something
  type: list
  elements: str
stopped:
  description: The app's pm2 status after stopping it (C(status), C(changed)).
  returned: when O(step=quiesce), O(step=switch), or O(step=undo) with O(unlink=true)
  type: dict
stopped_at:
  description: Time on the managed host (epoch seconds) when the app was stopped.
  returned: when O(step=quiesce) or O(step=switch)
  type: float
aside:
  description: Where an unused old shared database was moved.
  returned: when O(aside) was set
  type: str
seeded:
  description: The seed of the shared database (C(file), C(size), C(sha256), C(duration_ms)).
  returned: when O(step=quiesce) or O(step=switch), O(role=base) and not O(already_linked)
  type: dict
recheck:
  description: The re-check of the quiet database (C(compared_with), C(lost_tables)).
  returned: when O(step=quiesce), O(role=other) and O(recheck_against) set
  type: dict
linked:
  description: The link (C(changed), C(previous), C(target), C(old_file)), as M(bluegreen.dbfix.shared_db_link) returned it.
  returned: when the database was linked in this step
  type: dict
started:
  description: The start (C(status), C(pid), C(changed), C(health) with C(status) and C(elapsed_ms)).
  returned: when O(step) is activate, switch, verify or undo
  type: dict
healthy_at:
  description: Time on the managed host (epoch seconds) when the health gate passed.
  returned: when the app is healthy
  type: float
open:
  description:
    - What the app holds open, read from C(/proc/PID/fd).
    - C(state) is C(shared) (it holds the shared database), C(lazy) (it holds no database yet), C(other) (it holds a
      forbidden copy) or C(unknown) (its fds could not be read).
    - C(pids), C(shared_pids), C(forbidden) (path to pids) and C(unreadable_pids) say which processes were looked at.
  returned: when O(step) is activate, switch or verify
  type: dict
restore_point:
  description: The backup of the new shared database (C(file), C(size), C(sha256), C(made)).
  returned: when O(restore_point) was set
  type: dict
state:
  description: The host's state after O(record).
  returned: when a record was written
  type: dict
unlinked:
  description: The undo of the link (C(changed), C(previous), C(msg)).
  returned: when O(step=undo)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._switch import SPEC, run


def main():
    run(AnsibleModule(argument_spec=SPEC))


if __name__ == '__main__':
    main()
