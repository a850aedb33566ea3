#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dotenv_set
short_description: Set or remove keys in a C(.env) file exactly the way Node's dotenv reads it
version_added: 1.0.0
description:
  - Sets or removes one or several keys in a C(.env) file that a Node.js app loads with the npm C(dotenv) package.
  - Every value is written so that dotenv 16, 17 and 18 read back exactly the value given (the collection's tests
    check this against the real npm packages, including 18's opt-in fast parser).
  - The quoting is chosen per value; unquoted for plain values, otherwise single quotes, double quotes (with
    C(\n)/C(\r) escapes, the only way to carry a carriage return) or backticks. An existing quoted value keeps its
    quote style when that style can carry the new value.
  - Every edit is checked by re-reading the resulting file with a port of dotenv's parser; the edit is only made when
    the file reads back as the given key/values plus every other key unchanged. A value that no dotenv syntax can
    carry (for example a carriage return together with a literal backslash-n, or a NUL character) fails the task and
    leaves the file unchanged.
  - Everything else in the file is kept byte for byte, including comments, blank lines, order, other keys' quoting,
    C(export) prefixes, CRLF line endings and a missing final newline. Commented-out lines (C(#KEY=...)) are never
    edited; dotenv does not read them.
  - When a key is defined several times (dotenv uses the last definition), the last definition is rewritten in place
    and the other definitions are removed, so exactly one definition remains.
  - New keys are appended at the end of the file, in the file's line-ending style.
  - The file is written atomically (a temporary file in the target's own directory, then a rename). A symlinked
    C(.env) is followed, the target is edited and the link is kept. Mode and owner of an existing file are kept.
  - The task is C(changed) only when the file's bytes (or its attributes) change.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
options:
  path:
    description:
      - The C(.env) file. A symlink is followed and its target is edited.
    type: path
    required: true
    aliases: [dest]
  key:
    description:
      - Name of the variable to set or remove.
      - Must consist of letters, digits, C(_), C(.) and C(-), the names dotenv can read.
      - Mutually exclusive with O(values).
    type: str
  value:
    description:
      - Value for O(key) when O(state=present). It is treated as secret (never logged, masked in the diff).
      - An empty string writes C(KEY=).
    type: str
  values:
    description:
      - Several variables at once, in one atomic write. Values are treated as secret.
      - Integers and floats are written as their decimal text, booleans as C(true)/C(false), null as an empty value.
      - With O(state=absent) only the names are used.
      - Mutually exclusive with O(key).
    type: dict
  state:
    description:
      - V(present) sets the value(s), V(absent) removes every definition of the key(s).
    type: str
    choices: [present, absent]
    default: present
  create:
    description:
      - Create the file when it does not exist. New files get mode C(0600) unless O(mode) is given,
        because C(.env) files hold secrets.
      - When V(false) and the file is missing, the task fails (a typo in O(path) should not go unnoticed).
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy of the file next to it before changing it (Ansible's C(backup_local)).
    type: bool
    default: false
  show_values:
    description:
      - By default every value in the diff (of every key, not only the changed ones) is masked, since C(.env)
        files hold secrets.
      - Set to V(true) to see the real values in the diff. The values given in O(value)/O(values) are then no longer
        masked in the task result either. Only use it for values that are not secret.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.files
  - bluegreen.dbfix.attributes
  - bluegreen.dbfix.attributes.FILES
  - bluegreen.dbfix.attributes.POSIX
attributes:
  check_mode:
    support: full
    details: Reports what would change without writing anything.
  diff_mode:
    support: full
    details: Shows the file before and after, with values masked unless O(show_values=true).
  idempotent:
    support: full
    details: A second run with the same arguments changes no byte.
  safe_file_operations:
    support: full
    details: Writes a temporary file in the target's directory and renames it over the target.
notes:
  - Only the last definition of a key counts for dotenv, and dotenv never overrides a variable that is already in the
    process environment. If the process manager (for example pm2) stores the variable in the process's environment,
    editing C(.env) has no effect until that stored value is removed or updated.
seealso:
  - module: bluegreen.dbfix.pm2_service
  - name: dotenv parsing rules
    description: How dotenv reads a C(.env) file.
    link: https://github.com/motdotla/dotenv#what-rules-does-the-parsing-engine-follow
"""

EXAMPLES = r"""
- name: Allow the Tauri desktop app to call the API
  bluegreen.dbfix.dotenv_set:
    path: /home/ubuntu/TimeTracking-BLUE/server/.env
    key: ALLOWED_ORIGINS
    value: "tauri://localhost,https://tauri.localhost,http://localhost:1420,http://localhost:1421"
    backup: true

- name: Set several keys in one atomic write
  bluegreen.dbfix.dotenv_set:
    path: /srv/app/.env
    values:
      DB_PATH: /srv/shared/database.db
      GREETING: "it's a \"quoted\" # value"
    mode: "0600"

- name: Remove a key (every definition of it)
  bluegreen.dbfix.dotenv_set:
    path: /srv/app/.env
    key: LEGACY_FLAG
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the file (or its attributes) changed.
  returned: always
  type: bool
  sample: true
keys:
  description:
    - Names of the keys whose definitions were added, rewritten or removed. Never the values.
    - In Jinja, C(result.keys) is the dict method; write C(result['keys']) or use RV(changed_keys).
  returned: always
  type: list
  elements: str
  sample: [ALLOWED_ORIGINS]
changed_keys:
  description: Same as RV(keys), under a name that works with Jinja's dot syntax.
  returned: always
  type: list
  elements: str
  sample: [ALLOWED_ORIGINS]
backup_file:
  description: Path of the backup copy, when O(backup=true) and the file changed.
  returned: changed and backup requested
  type: str
  sample: /srv/app/.env.12345.2026-11-25@10:30:00~
path:
  description: The file that was edited (the symlink's target when O(path) is a symlink).
  returned: always
  type: str
  sample: /srv/app/.env
"""

import errno
import os
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.bluegreen.dbfix.plugins.module_utils._dotenv import DotenvError, edit, masked


def _as_text(key, v):
    if v is None:
        return ''
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float, str)):
        return str(v)
    raise DotenvError('the value for %s must be a string, number, boolean or null, not a %s' % (key, type(v).__name__))


def run(module):
    p = module.params
    path = p['path']
    target = os.path.realpath(path)
    exists = os.path.lexists(target)
    if exists and not os.path.isfile(target):
        module.fail_json(msg='%s: %s is not a regular file; point path at the .env file itself' % (path, target))
    if not exists:
        if not p['create']:
            module.fail_json(msg='%s does not exist%s; check path, or set create: true to create it'
                             % (path, '' if target == os.path.abspath(path) else ' (symlink to %s)' % target))
        parent = os.path.dirname(target) or '.'
        if not os.path.isdir(parent):
            module.fail_json(msg='%s: cannot create the file, its directory %s does not exist; create the directory first' % (path, parent))

    try:
        if p['key'] is not None:
            sets = {p['key']: p['value']} if p['state'] == 'present' else {}
            unsets = [p['key']] if p['state'] == 'absent' else []
            if p['state'] == 'present' and p['value'] is None:
                module.fail_json(msg='%s: value is required to set %s (state=present); use state: absent to remove it' % (path, p['key']))
        else:
            given = p['values'] or {}
            if not given:
                module.fail_json(msg='%s: values is empty; give at least one KEY: value' % path)
            if p['state'] == 'present':
                sets = {k: _as_text(k, v) for k, v in given.items()}
                unsets = []
            else:
                sets, unsets = {}, list(given)
    except DotenvError as e:
        module.fail_json(msg='%s: %s. The file was left unchanged.' % (path, e))

    for v in sets.values():
        if v:
            module.no_log_values.add(v)
    if p['show_values']:
        # explicit opt-in: the user asked to see these values (documented)
        module.no_log_values.difference_update(sets.values())

    if exists:
        try:
            with open(target, 'rb') as f:
                old_bytes = f.read()
        except OSError as e:
            module.fail_json(msg='%s: cannot read %s: %s' % (path, target, to_native(e)))
    else:
        old_bytes = b''
    # A NUL byte means this is not a text file (a DB or a binary given by
    # mistake as path); editing it "successfully" would hide that mistake.
    nul = old_bytes.find(b'\0')
    if nul >= 0:
        module.fail_json(msg='%s: this is not a .env file: it holds binary data (a NUL byte at offset %d). dotenv reads '
                             'text files of KEY=value lines; check that path points at the app\'s .env. The file was left '
                             'unchanged.' % (target, nul), keys=[])
    old_text = old_bytes.decode('utf-8', 'surrogateescape')

    try:
        new_text, keys = edit(old_text, sets, unsets)
    except DotenvError as e:
        module.fail_json(msg='%s: %s. The file was left unchanged.' % (path, e), keys=[])
    new_bytes = new_text.encode('utf-8', 'surrogateescape')

    changed = (new_bytes != old_bytes) or not exists
    keys = keys if changed else []
    result = {'changed': changed, 'keys': keys, 'changed_keys': list(keys), 'path': target}
    if module._diff:
        if p['show_values']:
            before, after = old_text, new_text
        else:
            before, after = masked(old_text), masked(new_text, set(keys))
        result['diff'] = {'before': before if exists else '', 'after': after,
                          'before_header': '%s (values masked)' % path if not p['show_values'] else path,
                          'after_header': '%s (values masked)' % path if not p['show_values'] else path}

    if changed and not module.check_mode:
        backup_file = _backup(module, path, target) if p['backup'] and exists else None
        if backup_file:
            result['backup_file'] = backup_file
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target) or '.', prefix='.%s.' % os.path.basename(target), suffix='.tmp')
        except OSError as e:
            _discard(backup_file)
            module.fail_json(msg='%s: cannot create a temporary file next to %s (%s); %s. The file was left unchanged.'
                                 % (path, target, to_native(e), _advice(e, target)), exception=traceback.format_exc())
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(new_bytes)
                f.flush()
                os.fsync(f.fileno())
            if not exists:
                os.chmod(tmp, 0o600)
            module.atomic_move(tmp, target, unsafe_writes=p['unsafe_writes'])
        except Exception as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            _discard(backup_file)
            module.fail_json(msg='%s: writing %s failed: %s. The file was left unchanged%s.'
                                 % (path, target, to_native(e), '; ' + _advice(e, target) if isinstance(e, OSError) else ''),
                             exception=traceback.format_exc())

    if os.path.exists(target):
        file_args = module.load_file_common_arguments(p, path=target)
        if not exists and file_args.get('mode') is None:
            file_args['mode'] = '0600'
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    return result


def _advice(e, target):
    folder = os.path.dirname(target) or '.'
    if e.errno == errno.ENOSPC:
        return 'the filesystem holding %s is full: free space there and run again' % folder
    if e.errno == errno.EROFS:
        return '%s is on a read-only filesystem: remount it read-write (or point path at the writable copy)' % folder
    return 'the directory must be writable'


def _discard(backup_file):
    if backup_file:
        try:
            os.unlink(backup_file)
        except OSError:
            pass


def _backup(module, path, target):
    """What ``module.backup_local`` does (same name, same preserved copy), but a copy that fails half-way (disk
    full) is removed and the task fails with a message instead of a traceback: nothing may be left behind."""
    dest = '%s.%s.%s' % (target, os.getpid(), time.strftime('%Y-%m-%d@%H:%M:%S~', time.localtime()))
    try:
        module.preserved_copy(target, dest)
    except Exception as e:  # shutil.Error, OSError: whatever the copy raised, nothing half-written may stay
        _discard(dest)
        module.fail_json(msg='%s: cannot write the backup %s (%s); %s. The file was left unchanged.'
                             % (path, dest, to_native(e), _advice(e, target) if isinstance(e, OSError) else 'see the error'),
                         exception=traceback.format_exc())
    return dest


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True, aliases=['dest']),
            key=dict(type='str', no_log=False),
            value=dict(type='str', no_log=True),
            values=dict(type='dict', no_log=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            create=dict(type='bool', default=False),
            backup=dict(type='bool', default=False),
            show_values=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('key', 'values'), ('value', 'values')],
        required_one_of=[('key', 'values')],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == '__main__':
    main()
