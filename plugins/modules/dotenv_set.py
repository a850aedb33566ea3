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
    C(.env) is followed, the target is edited and the link is kept.
  - Owner, group and mode of an existing file are kept exactly (unless O(owner), O(group) or O(mode) say otherwise),
    also when the task runs as root on a file that belongs to the app's user. The temporary file and the backup are
    created with their final owner, group and mode before a single byte is written into them, so no other user can
    read a secret from them at any moment.
  - When the task runs as a user who cannot give the rewritten file its owner or group (not root, and the file belongs
    to another user or to a group that user is not in), it fails before writing anything instead of silently leaving
    the C(.env) owned by the user who ran it. Run such a task as the file's owner (C(become_user)) or as root.
  - A dangling symlink at O(path) is refused, also with O(create=true), because the file would be created wherever
    the link points, possibly in another folder.
  - Keys that Node's dotenv silently drops (C(__proto__)) or that replace a member every JavaScript object has
    (C(constructor), C(prototype), C(hasOwnProperty), C(toString), C(valueOf) and the other C(Object.prototype) names)
    cannot be set; a definition of one can still be removed with O(state=absent).
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
      - C(__proto__) (dropped by dotenv) and the names of JavaScript's C(Object.prototype) members plus C(prototype)
        are refused with O(state=present).
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
      - Never creates the target of a dangling symlink at O(path); that is refused.
      - When V(false) and the file is missing, the task fails (a typo in O(path) should not go unnoticed).
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy of the file next to it before changing it (named as Ansible's C(backup_local) names
        it), with the file's owner, group, mode and times.
    type: bool
    default: false
  show_values:
    description:
      - By default every value in the diff (of every key, not only the changed ones) is masked, since C(.env)
        files hold secrets.
      - The diff shows only what dotenv reads, one C(KEY=value) line per definition; comments (old values are often
        kept there) and lines dotenv does not read are never shown, whatever this option says.
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
    details: Shows the dotenv definitions before and after (no comments or other lines), with values masked unless
      O(show_values=true).
  idempotent:
    support: full
    details: A second run with the same arguments changes no byte.
  safe_file_operations:
    support: full
    details: Writes a temporary file in the target's directory and renames it over the target (with
      O(unsafe_writes=true), writes in place when the rename is impossible, for example for a bind-mounted file).
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
sha256:
  description:
    - SHA-256 of the file's bytes as this run left them (in check mode, as they are now); empty when the file does not
      exist.
    - A checksum of the whole file, never a value; a rollback record compares it with the file later.
    - Like every string of a task result, Ansible masks in it any text equal to a O(value) (which is C(no_log)), so a
      value of one or two hex characters (for example V(1)) can turn parts of the digest into C(********). Compute
      the checksum of such a file with M(ansible.builtin.stat) instead.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
backup_sha256:
  description: SHA-256 of the backup copy's bytes (the file as it was before this run); masked like RV(sha256).
  returned: when RV(backup_file) is returned
  type: str
  sample: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
"""

import errno
import grp
import hashlib
import os
import pwd
import stat
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _atomic as A
from ansible_collections.bluegreen.dbfix.plugins.module_utils._dotenv import DotenvError, diff_view, edit
from ansible_collections.bluegreen.dbfix.plugins.module_utils._errors import DbfixError

NEW_FILE_MODE = 0o600
MAX_ID = 2 ** 32 - 1          # (uid_t)-1 means "leave unchanged" to chown; larger does not fit
# rename() refusals that an in-place write (unsafe_writes) can work around, as Ansible's atomic_move does:
# a bind-mounted single file (EBUSY), a "filesystem" that cannot rename over a file (EXDEV, EPERM, EACCES, ETXTBSY).
RENAME_FALLBACK_ERRNOS = frozenset((errno.EPERM, errno.EXDEV, errno.EACCES, errno.ETXTBSY, errno.EBUSY))


def _as_text(key, v):
    if v is None:
        return ''
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float, str)):
        return str(v)
    raise DotenvError('the value for %s must be a string, number, boolean or null, not a %s' % (key, type(v).__name__))


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _resolve(kind, value, path):
    """uid/gid of an ``owner``/``group`` argument (name or number), refused when unknown."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        if 0 <= number < MAX_ID:
            return number
    else:
        try:
            return pwd.getpwnam(value).pw_uid if kind == 'owner' else grp.getgrnam(value).gr_gid
        except (KeyError, TypeError, ValueError):
            pass
    raise DbfixError('%s: %s %r does not exist on this host; give an existing %s name or number (or leave %s out to '
                     'keep the file\'s own). The file was left unchanged.'
                     % (path, kind, value, 'user' if kind == 'owner' else 'group', kind))


def _wanted_mode(module, value, current, path):
    """The mode an O(mode) argument asks for, relative to ``current`` (octal or symbolic, as Ansible reads it)."""
    if value is None:
        return current
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        try:
            mode = int(value, 8)
        except (TypeError, ValueError):
            fake = os.stat_result((stat.S_IFREG | current, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            try:
                mode = module._symbolic_mode_to_octal(fake, value)
            except Exception as e:  # ansible raises ValueError for bad symbolic modes; anything else is the same mistake
                raise DbfixError('%s: mode %r is neither octal (for example "0600") nor symbolic (for example "u=rw,go=") '
                                 '(%s). The file was left unchanged.' % (path, value, to_native(e))) from None
    if mode < 0 or mode != stat.S_IMODE(mode):
        raise DbfixError('%s: mode %r is not a file mode (only permission bits, at most 07777, are allowed). '
                         'The file was left unchanged.' % (path, value))
    return mode


def wanted_attrs(module, target, st):
    """``(uid, gid, mode)`` the file has after the task: the existing file's own unless owner/group/mode say otherwise.

    Every argument is checked here, before anything is written, so a bad one never fails after the file changed.
    """
    p = module.params
    if st is not None:
        uid, gid, mode = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    else:
        # what the kernel gives a new file: our uid, the folder's group when it is setgid, else ours
        parent = os.stat(os.path.dirname(target) or '.')
        uid, mode = os.geteuid(), NEW_FILE_MODE
        gid = parent.st_gid if parent.st_mode & stat.S_ISGID else os.getegid()
    owner = _resolve('owner', p['owner'], p['path'])
    group = _resolve('group', p['group'], p['path'])
    return (uid if owner is None else owner, gid if group is None else group,
            _wanted_mode(module, p['mode'], mode, p['path']))


def check_can_keep(path, target, st, uid, gid):
    """Refuse when the rewritten file could not get owner ``uid`` and group ``gid`` (only root gives files away).

    A rename puts a new file in place of the old one; without this, a non-root run leaves the ``.env`` owned by the
    user who ran the task, silently (what ansible's atomic_move does when chown fails with EPERM).
    """
    euid = os.geteuid()
    if euid == 0:
        return
    me = '%s (uid %d)' % (_user(euid), euid)
    what = 'the file %s is' % target if target == path else '%s (the target of the symlink %s) is' % (target, path)
    if st is not None:
        have = '%s owned by %s (uid %d), group %s (gid %d), mode %04o' % (
            what, _user(st.st_uid), st.st_uid, _group(st.st_gid), st.st_gid, stat.S_IMODE(st.st_mode))
    else:
        have = '%s to be created' % what.replace(' is', '')
    if uid != euid:
        how = 'as root (become: true)' if uid == 0 else 'as %s (become: true, become_user: %s) or as root' % (
            _user(uid), _user(uid))
        raise DbfixError('%s: %s; running as %s, this task cannot give the rewritten file owner %s (uid %d) (only root can), '
                         'so it would end up owned by %s. Run the task %s. The file was left unchanged.'
                         % (path, have, me, _user(uid), uid, _user(euid), how))
    if gid not in set(os.getgroups()) | {os.getegid()}:
        raise DbfixError('%s: %s; running as %s, who is not in group %s (gid %d), this task cannot give the rewritten file '
                         'that group, so it would change to %s. Run the task as root (become: true), or add %s to group %s. '
                         'The file was left unchanged.' % (path, have, me, _group(gid), gid, _group(os.getegid()), _user(euid),
                                                           _group(gid)))


def _advice(e, target):
    folder = os.path.dirname(target) or '.'
    if e.errno == errno.ENOSPC:
        return 'the filesystem holding %s is full: free space there and run again' % folder
    if e.errno == errno.EROFS:
        return '%s is on a read-only filesystem: remount it read-write (or point path at the writable copy)' % folder
    if e.errno in (errno.EPERM, errno.EACCES):
        return 'the directory must be writable, and owner/group must be ones this user may give (run as root to keep ' \
               'another user\'s)'
    return 'the directory must be writable'


def backup(module, path, target, st, old_bytes):
    """A preserved copy of the file (``backup_local``'s name), created with the file's owner, group and mode."""
    base = '%s.%s.%s' % (target, os.getpid(), time.strftime('%Y-%m-%d@%H:%M:%S~', time.localtime()))
    dest = base
    made = False
    try:
        # Never replace an existing file: a second backup in the same second (same process) gets a counter.
        for n in range(1, 1000):
            try:
                fd = A.create_exclusive(dest, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, like=target)
                break
            except FileExistsError:
                dest = '%s.%d' % (base, n)
        else:
            raise FileExistsError(errno.EEXIST, 'every candidate name is taken', base)
        made = True
        A.write_all(fd, old_bytes, (st.st_atime_ns, st.st_mtime_ns))
    except OSError as e:
        if made:
            A.discard(dest)
        module.fail_json(msg='%s: cannot write the backup %s (%s); %s. The file was left unchanged.'
                             % (path, dest, to_native(e), _advice(e, target)), exception=traceback.format_exc())
    return dest


def replace(module, target, exists, new_bytes, attrs):
    """Write ``new_bytes`` to a new file beside ``target`` that already has the final owner/group/mode, then rename it
    over ``target`` (atomic, see _atomic.AtomicFile). ``attrs`` is ``(uid, gid, mode)``. Raises OSError; nothing is
    left behind then."""
    uid, gid, mode = attrs
    out = A.AtomicFile(target, mode, uid, gid, like=target if exists else None, owner_required=True)
    try:
        if module.selinux_enabled():
            context = module.selinux_context(target) if exists else module.selinux_default_context(target)
            module.set_context_if_different(out.tmp, context, False)
        out.write(new_bytes)
        try:
            out.commit(strict_dir=False)
        except OSError as e:
            if not (exists and module.params['unsafe_writes'] and e.errno in RENAME_FALLBACK_ERRNOS):
                raise
            # Asked for (unsafe_writes): rewrite in place, which keeps the file's owner and mode by itself.
            wfd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
            A.write_all(wfd, new_bytes)
            A.fsync_dir(os.path.dirname(target), strict=False)
    finally:
        out.abort()


def run(module):
    p = module.params
    path = p['path']
    if '\0' in path:
        raise DbfixError('path %r holds a NUL character; give the path of the app\'s .env file' % path)
    target = os.path.realpath(path)
    exists = os.path.lexists(target)
    if exists and not os.path.isfile(target):
        raise DbfixError('%s: %s is not a regular file; point path at the .env file itself' % (path, target))
    if not exists:
        if os.path.islink(path):
            # Never create through a dangling link: the file would appear wherever the link points, possibly a
            # folder someone else controls, and a later deploy that re-links .env would not see it.
            raise DbfixError('%s is a symlink to %s, which does not exist (it would resolve to %s): refusing to create a file '
                             'through a dangling link. Create the target file first (with the owner and mode the app needs), '
                             'or replace the link with a plain file; nothing was changed.'
                             % (path, os.readlink(path), target))
        if not p['create']:
            raise DbfixError('%s does not exist; check path, or set create: true to create it' % path)
        parent = os.path.dirname(target) or '.'
        if not os.path.isdir(parent):
            raise DbfixError('%s: cannot create the file, its directory %s does not exist; create the directory first'
                             % (path, parent))

    try:
        if p['key'] is not None:
            sets = {p['key']: p['value']} if p['state'] == 'present' else {}
            unsets = [p['key']] if p['state'] == 'absent' else []
            if p['state'] == 'present' and p['value'] is None:
                raise DbfixError('%s: value is required to set %s (state=present); use state: absent to remove it'
                                 % (path, p['key']))
        else:
            given = p['values'] or {}
            if not given:
                raise DbfixError('%s: values is empty; give at least one KEY: value' % path)
            if p['state'] == 'present':
                sets = {k: _as_text(k, v) for k, v in given.items()}
                unsets = []
            else:
                sets, unsets = {}, list(given)
    except DotenvError as e:
        raise DbfixError('%s: %s. The file was left unchanged.' % (path, e)) from None

    for v in sets.values():
        if v:
            module.no_log_values.add(v)
    if p['show_values']:
        # explicit opt-in: the user asked to see these values (documented)
        module.no_log_values.difference_update(sets.values())

    st = None
    old_bytes = b''
    if exists:
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, 'rb') as f:
                st = os.fstat(f.fileno())
                old_bytes = f.read()
        except OSError as e:
            raise DbfixError('%s: cannot read %s: %s' % (path, target, to_native(e))) from None
    # A NUL byte means this is not a text file (a DB or a binary given by
    # mistake as path); editing it "successfully" would hide that mistake.
    nul = old_bytes.find(b'\0')
    if nul >= 0:
        raise DbfixError('%s: this is not a .env file: it holds binary data (a NUL byte at offset %d). dotenv reads '
                         'text files of KEY=value lines; check that path points at the app\'s .env. The file was left '
                         'unchanged.' % (target, nul))
    old_text = old_bytes.decode('utf-8', 'surrogateescape')

    try:
        new_text, keys = edit(old_text, sets, unsets)
    except DotenvError as e:
        raise DbfixError('%s: %s. The file was left unchanged.' % (path, e)) from None
    new_bytes = new_text.encode('utf-8', 'surrogateescape')
    uid, gid, mode = wanted_attrs(module, target, st)

    changed = (new_bytes != old_bytes) or not exists
    if changed:
        check_can_keep(path, target, st, uid, gid)
    keys = keys if changed else []
    result = {'changed': changed, 'keys': keys, 'changed_keys': list(keys), 'path': target}
    if module._diff:
        header = path if p['show_values'] else '%s (dotenv keys only, values masked)' % path
        result['diff'] = {'before': diff_view(old_text, show_values=p['show_values']) if exists else '',
                          'after': diff_view(new_text, set(keys), show_values=p['show_values']),
                          'before_header': header, 'after_header': header}

    if changed and not module.check_mode:
        backup_file = backup(module, path, target, st, old_bytes) if p['backup'] and exists else None
        if backup_file:
            result['backup_file'] = backup_file
            result['backup_sha256'] = hashlib.sha256(old_bytes).hexdigest()
        try:
            replace(module, target, exists, new_bytes, (uid, gid, mode))
        except OSError as e:
            A.discard(backup_file)
            module.fail_json(msg='%s: writing %s failed (%s); %s. The file was left unchanged.'
                                 % (path, target, to_native(e), _advice(e, target)), exception=traceback.format_exc())

    written = changed and not module.check_mode
    result['sha256'] = hashlib.sha256(new_bytes if written else old_bytes).hexdigest() if (exists or written) else ''
    if exists or not module.check_mode:
        file_args = module.load_file_common_arguments(p, path=target)
        if not exists:
            file_args['mode'] = mode
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'], expand=False)
    return result


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
    try:
        result = run(module)
    except DbfixError as e:
        module.fail_json(msg=str(e), keys=[], changed_keys=[])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
