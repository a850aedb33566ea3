#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pm2_service
short_description: Start, stop, restart or reload a pm2 process and wait until it is really up
version_added: 1.0.0
description:
  - Manages one process of the L(pm2,https://pm2.keymetrics.io/) process manager by name.
  - Reads pm2's state from C(pm2 jlist) (robust to the banner pm2 prints when it starts its daemon and to other
    noise around the JSON).
  - "pm2 shows C(online) even for an app that crashes right after starting. After starting, restarting or reloading,
    this module therefore requires the process to stay C(online) with the same pid and no new restarts for
    O(wait) seconds; a crash loop or an C(errored) status fails the task with the tail of the process's error log."
  - Optionally polls an HTTP health URL from the managed host until it answers with O(health_status).
  - "Never returns the process environment: pm2 includes it in C(jlist), this module returns only facts about the
    process and the I(names) of the stored variables (RV(env_keys)). Values given in O(env) are secret: they are
    passed to pm2 through the environment, never on the command line, and masked in all output."
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
options:
  name:
    description:
      - The pm2 process name, matched exactly against C(pm2 jlist) (never as a pattern, id or namespace).
      - "pm2's CLI reads some names as something else: V(all) as every process, a name starting with C(-) as an option,
        C(/.../) as a regular expression, a number-like name (C(5), C(0x1f), C(Infinity)) as a pm_id, and a name
        containing C(.json), C(.yml), C(.yaml) or C(.config.js) as an ecosystem file. Such a process is addressed by its
        pm_id(s) read from C(pm2 jlist) instead (RV(commands) then show the ids); the task fails without acting if pm2
        would read that id as the name or namespace of another process."
      - With O(ecosystem), pm2 itself finds the app by name, so such names, and names with a comma or a space
        (C(--only) splits there), are refused.
      - An empty name, a name with leading or trailing white space, and a name with a control character are refused.
    type: str
    required: true
  state:
    description:
      - V(started) starts the process if it is not online (a known stopped or errored process is restarted; an
        unknown one is started from O(script) or O(ecosystem)). An online process is left alone, unless O(env)
        differs from pm2's stored environment and O(update_env=true).
      - V(stopped) stops an online process. V(absent) deletes the process from pm2.
      - V(restarted) and V(reloaded) always act (they are not idempotent, by design). V(reloaded) is a zero-downtime
        C(pm2 reload) in cluster mode only; in fork mode pm2 cannot reload, so the process is restarted and a warning
        says so.
      - V(restarted) and V(reloaded) fail for a process pm2 does not know, unless O(script) or O(ecosystem) is given;
        then they start it (with O(interpreter), O(args) and O(env)), for example after pm2's daemon was killed and
        forgot its processes.
      - V(stopped) fails for a process pm2 does not know, unless O(script) or O(ecosystem) is given; then nothing runs
        under that name, which is what V(stopped) asks for, so the task succeeds, not changed, with
        RV(status=absent) (nothing is started just to be stopped).
      - "Every action is verified afterwards: after V(stopped) every instance must be C(stopped), after V(absent) the
        process must be gone from C(pm2 jlist), after V(restarted)/V(reloaded) every instance must run with a new pid,
        and every state that runs the process waits until it stays up (O(wait)). Otherwise the task fails."
    type: str
    choices: [started, stopped, restarted, reloaded, absent]
    default: started
  script:
    description:
      - Script to start when pm2 does not know the process yet (C(pm2 start SCRIPT --name NAME)).
      - Relative paths are relative to O(cwd).
    type: path
  cwd:
    description:
      - Working directory of the process (and of the C(pm2 start) command).
    type: path
  interpreter:
    description:
      - Interpreter for O(script) (C(--interpreter)), for example C(node), C(python3), or C(none) for a binary.
      - O(script), O(interpreter) and O(args) are used on every path where pm2 starts the process anew (first start,
        and V(started)/V(restarted)/V(reloaded) after pm2 forgot it, for example when its daemon was killed). pm2
        restarts a process it knows with what it stored; when that differs from these options, a warning says so
        (apply them with V(absent) then V(started)).
    type: str
  args:
    description:
      - Arguments passed to O(script).
    type: list
    elements: str
  ecosystem:
    description:
      - An ecosystem file (C(ecosystem.config.js)) that defines the process. Used with C(--only NAME) to start an
        unknown process and for V(restarted)/V(reloaded), so changes in the file take effect.
    type: path
  env:
    description:
      - Environment variables for the process. Values are secret; they reach pm2 through the environment of the
        pm2 command, and are masked in every result, warning and error.
      - Applied when pm2 starts a process it does not know yet, and on restart/reload when O(update_env=true)
        (pm2 keeps a process's stored environment otherwise).
      - Variable names must be non-empty without C(=) or a NUL byte; C(__proto__) is refused (JavaScript drops it
        silently); values must be strings, numbers or booleans (a list or mapping is refused).
      - Because the values are masked everywhere in the task output, a value that also appears elsewhere (a port
        number in O(health_url), for example) shows as C(********) there too. Put settings that are not secret in
        O(args) or the O(ecosystem) file.
    type: dict
  env_file:
    description:
      - The app's C(.env) file, read (never written) only to mask its values in failure messages, since a crashing
        app often prints them. Without it, C(.env) in O(cwd) and in pm2's working directory of the process are used
        when they exist.
      - "Masking rule: every value of O(env), of this file and of pm2's stored environment for the process (except
        C(PATH), C(HOME) and similar variables pm2 copies from the shell) is replaced by C(********) in the log tail and
        message: values of 4 or more characters wherever they occur, shorter values (C(1), C(ab)) where they stand
        alone as a token, not inside a longer word or number. The message then says C(log tail masked)."
    type: path
  update_env:
    description:
      - Pass C(--update-env) on restart/reload, so pm2 replaces its stored environment with the current one
        (including O(env)).
      - With O(state=started), an online process whose stored environment differs from O(env) is restarted with
        C(--update-env); with V(false) it is left alone and a warning names the differing variables.
    type: bool
    default: false
  pm2_home:
    description:
      - C(PM2_HOME) for the pm2 commands (which pm2 daemon to talk to). Default is pm2's own (C(~/.pm2)).
    type: path
  executable:
    description:
      - The pm2 command, a name looked up on C(PATH) or a path.
    type: str
    default: pm2
  wait:
    description:
      - Seconds the process must stay C(online) with the same pid and restart count before the module returns
        (after V(started), V(restarted) and V(reloaded); also checked for an already online process). From 0 to 86400.
      - V(0) only waits until pm2 reports C(online).
      - With O(health_url) the health check runs inside this wait, not after it; the module returns once both
        hold. The end of the wait is checked in C(/proc) (every pid pm2 named still runs, with the start time it
        had); where C(/proc) cannot show that, pm2 is asked again.
    type: float
    default: 2
  health_url:
    description:
      - An HTTP(S) URL polled from the managed host (no proxy) once pm2 shows the process online, until it answers
        with O(health_status) or O(health_timeout) passes; the process must also stay up for O(wait) seconds. When
        the process exits while the URL is polled, the task fails at once with its error log.
        Other schemes, and URLs with white space, are refused.
    type: str
  health_status:
    description:
      - The HTTP status that counts as healthy (100 to 599).
    type: int
    default: 200
  health_body_regex:
    description:
      - A regular expression (Python C(re.search)) the body of the healthy answer must match as well; empty = any
        body. Up to 65536 bytes of the body are read. An answer with O(health_status) whose body does not match
        counts as not healthy yet (polling goes on until O(health_timeout)).
    type: str
    default: ''
  health_timeout:
    description:
      - Seconds to keep polling O(health_url) before failing with the last status and a body excerpt.
      - An overall deadline, wall clock, for the whole check (connect, TLS, headers and body of every request); a
        server that answers slowly or dribbles its answer byte by byte cannot hold the task longer. For a wrong
        status, at most 4096 bytes of body are read, for at most 1 s. The first request gets at least 1 s, so V(0)
        asks once.
      - From 0 to 86400. Redirects (up to 5) are followed unless O(health_status) is the redirect status.
    type: float
    default: 30
  lock_timeout:
    description:
      - Seconds to wait for the spawn lock (C(PM2_HOME/dbfix-spawn.lock)), which serialises pm2 commands that may
        start pm2's daemon for this C(PM2_HOME). After that the task fails naming the lock and the process holding it.
      - The lock is opened without following symlinks; a lock file that is a symlink, not a regular file, or owned
        by another user is refused with a message. A missing C(PM2_HOME) is created with mode C(0700) first.
      - From 0 to 86400.
    type: float
    default: 60
  save:
    description:
      - Run C(pm2 save --force) after a change, so pm2's resurrect (for example at boot) brings back the current
        process list (C(--force) so that removing the last process is saved too).
      - pm2 writes every process's environment, O(env) values included, to C(PM2_HOME/dump.pm2) and its previous
        content to C(dump.pm2.bak). The module keeps both readable by their owner only (at most C(0600)) before,
        during and after the save (C(pm2 save) runs with umask C(077)), and refuses to save when either is a symlink,
        not a regular file or owned by another user.
    type: bool
    default: false
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Reports the action that would be taken; nothing is started, stopped or saved.
  diff_mode:
    support: none
    details: Process state is not a file; use the returned facts instead.
  idempotent:
    support: partial
    details: V(started), V(stopped) and V(absent) are idempotent; V(restarted) and V(reloaded) always act.
notes:
  - dotenv does not override variables that already exist in the process environment. If RV(env_keys) lists a
    variable that the app also reads from C(.env), a C(.env) edit has no effect until pm2's stored value is updated
    (O(update_env)) or removed.
requirements:
  - pm2 on the managed host (C(npm install -g pm2)).
seealso:
  - module: bluegreen.dbfix.dotenv_set
"""

EXAMPLES = r"""
- name: Start the API under pm2 and wait until it is really up and healthy
  bluegreen.dbfix.pm2_service:
    name: timetracking-blue
    script: server.js
    cwd: /home/ubuntu/TimeTracking-BLUE/server
    env:
      PORT: "3000"
    wait: 3
    health_url: http://127.0.0.1:3000/api/health
    save: true

- name: Restart with the new environment (pm2 restart --update-env)
  bluegreen.dbfix.pm2_service:
    name: timetracking-blue
    state: restarted
    update_env: true
    health_url: http://127.0.0.1:3000/api/health

- name: Zero-downtime reload in cluster mode
  bluegreen.dbfix.pm2_service:
    name: api
    state: reloaded
    ecosystem: /srv/api/ecosystem.config.js

- name: Remove a process
  bluegreen.dbfix.pm2_service:
    name: old-worker
    state: absent
    save: true
"""

RETURN = r"""
name:
  description: The process name.
  returned: always
  type: str
  sample: timetracking-blue
status:
  description: pm2's status after the task (C(online), C(stopped), C(errored), ...), or C(absent).
  returned: always
  type: str
  sample: online
pid:
  description: Process id of the (first) instance; null when not running.
  returned: always
  type: int
  sample: 12345
pm_id:
  description: pm2's id of the (first) instance; null when absent.
  returned: always
  type: int
  sample: 0
restarts:
  description: pm2's restart counter of the (first) instance.
  returned: always
  type: int
  sample: 1
uptime_ms:
  description: Milliseconds since the (first) instance came online; 0 when not online.
  returned: always
  type: int
  sample: 2150
exec_mode:
  description: pm2's execution mode, as pm2 reports it in C(jlist), C(fork_mode) or C(cluster_mode); empty when absent.
  returned: always
  type: str
  sample: fork_mode
instances:
  description: Number of pm2 instances with this name (more than one in cluster mode).
  returned: always
  type: int
  sample: 1
env_keys:
  description:
    - Sorted names (never values) of the variables in pm2's stored environment for the process.
  returned: always
  type: list
  elements: str
  sample: [ALLOWED_ORIGINS, HOME, NODE_ENV, PATH, PORT]
health:
  description: Result of the health check.
  returned: when O(health_url) was checked
  type: dict
  contains:
    status:
      description: HTTP status of the last answer.
      type: int
      sample: 200
    elapsed_ms:
      description: Milliseconds from the first request until the healthy answer.
      type: int
      sample: 120
commands:
  description:
    - The pm2 commands run (or that would run in check mode) to change state. Never contain O(env) values.
    - A process whose name pm2 would misread (see O(name)) is addressed by pm_id, one command per instance.
  returned: always
  type: list
  elements: str
  sample: ["pm2 restart timetracking-blue --update-env"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils._pm2_service import MODULE_KWARGS, run


def main():
    run(AnsibleModule(**MODULE_KWARGS))


if __name__ == '__main__':
    main()
