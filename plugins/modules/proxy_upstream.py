#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxy_upstream
short_description: Point a pair's nginx upstream file at one color, test, reload gracefully, watch and revert
version_added: "1.2.0"
description:
  - Owns one nginx file per blue/green pair, C(O(conf_dir)/dbfix-PAIR.conf), holding an C(upstream) block and a
    C(server) that listens on O(listen_address):O(listen_port) and proxies to the production color.
  - When the file already routes to O(production) nothing is done (no write, no reload).
  - Otherwise the file is written atomically (a temp file in the same folder, then a rename), C(nginx -t) checks the
    whole configuration and nginx is reloaded gracefully (C(nginx -s reload) - new workers take the new file, old
    workers finish their requests). A failing C(nginx -t) or reload puts the previous file back and fails.
  - With O(watch_seconds) the old color stays as C(backup) server while the new one is probed through the proxy
    (O(probe_path)); any failing probe puts the previous file back, reloads, and fails with RV(reverted). After a
    good watch the file is written once more without the backup.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: full
    details: Says whether the file would change and shows the diff; writes, tests and reloads nothing.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: The pair's name (its C(dbfix_pair)); the file and upstream names are derived from it.
    type: str
    required: true
  conf_dir:
    description: A folder nginx includes (C(include conf_dir/*.conf;) inside C(http {})), e.g. C(/etc/nginx/conf.d).
    type: path
    required: true
  listen_address:
    description: Address of the public port (C(0.0.0.0) for every IPv4 address, C(127.0.0.1) for loopback only).
    type: str
    default: 0.0.0.0
  listen_port:
    description: The pair's public port.
    type: int
    required: true
  production:
    description: The color to route to.
    type: dict
    required: true
    suboptions:
      color:
        description: Its color name.
        type: str
        required: true
      host:
        description: Address nginx reaches it on.
        type: str
        default: 127.0.0.1
      port:
        description: Its port.
        type: int
        required: true
  watch_backup:
    description: The color that keeps answering as C(backup) while the new one is watched (usually the old production).
    type: dict
    suboptions:
      color:
        description: Its color name.
        type: str
        required: true
      host:
        description: Address nginx reaches it on.
        type: str
        default: 127.0.0.1
      port:
        description: Its port.
        type: int
        required: true
  keepalive:
    description: Idle keepalive connections nginx keeps to the upstream per worker.
    type: int
    default: 16
  nginx:
    description: The nginx executable.
    type: str
    default: nginx
  nginx_prefix:
    description: nginx's prefix (C(-p)); empty uses nginx's built-in one.
    type: path
  nginx_conf:
    description: nginx's main configuration file (C(-c)); empty uses nginx's built-in one.
    type: path
  reload:
    description: Test and reload nginx after a change. When false only the file is written.
    type: bool
    default: true
  start:
    description: Start nginx (the same O(nginx), O(nginx_prefix), O(nginx_conf)) when a reload finds it not running.
    type: bool
    default: false
  watch_seconds:
    description: Seconds to probe through the proxy after the switch; 0 does not watch.
    type: float
    default: 0
  watch_interval:
    description: Seconds between two probes of the watch.
    type: float
    default: 0.1
  switch_timeout:
    description: Seconds nginx may take after the reload until an answer comes from the new configuration.
    type: float
    default: 10
  probe_path:
    description: Path probed through the proxy (usually the health URL's path).
    type: str
    default: /
  probe_status:
    description: The status every probe must answer.
    type: int
    default: 200
  probe_timeout:
    description: Seconds each probe may take.
    type: float
    default: 2
notes:
  - The file is read by nginx only; it holds no secret and is created with mode C(0644) (an existing file keeps its
    mode and owner).
"""

EXAMPLES = r"""
- name: Route the pair's public port 80 to GREEN, watching it for 10 s
  bluegreen.dbfix.proxy_upstream:
    name: timetracking
    conf_dir: /etc/nginx/conf.d
    listen_port: 80
    production: {color: green, port: 3001}
    watch_backup: {color: blue, port: 3000}
    watch_seconds: 10
    probe_path: /api/health
  register: switch
"""

RETURN = r"""
path:
  description: The pair's upstream file.
  returned: always
  type: str
production:
  description: The color the file routes to after the task.
  returned: always
  type: str
previous:
  description: The color the file routed to before the task (empty when there was no managed file).
  returned: always
  type: str
reloaded:
  description: Whether nginx was reloaded (or started).
  returned: always
  type: bool
reverted:
  description: Whether the watch failed and the previous file was put back.
  returned: always
  type: bool
watch:
  description: The watch's verdict (probes, failures, first_failure, switch_ms, max_ms); empty without a watch.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bluegreen.dbfix.plugins.module_utils import _proxy

COLOR_SPEC = dict(color=dict(type='str', required=True), host=dict(type='str', default='127.0.0.1'),
                  port=dict(type='int', required=True))


class Switch:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.path = os.path.join(p['conf_dir'], _proxy.conf_name(p['name']))
        self.base = _proxy.nginx_cmd(p['nginx'], p['nginx_prefix'], p['nginx_conf'])
        self.result = dict(changed=False, path=self.path, production=p['production']['color'], previous='',
                           reloaded=False, reverted=False, watch={})

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def read(self):
        try:
            with open(self.path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return None
        except OSError as e:
            self.fail('Cannot read %s: %s. Run as a user that can read nginx\'s configuration.' % (self.path, e))

    def put(self, text):
        """Write ``text`` (None removes the file)."""
        if text is None:
            if os.path.exists(self.path):
                os.unlink(self.path)
        else:
            _proxy.write_atomic(self.path, text)

    def nginx(self, *args):
        rc, out, err = self.module.run_command(self.base + list(args))
        return rc, (err or out or '').strip()

    def apply(self, text, before):
        """Write ``text``, nginx -t, reload. On any failure put ``before`` back (nginx keeps its running
        configuration, since it was never reloaded with the bad file) and fail."""
        try:
            self.put(text)
        except OSError as e:
            self.fail('Cannot write %s: %s. The previous file is unchanged; make %s writable (or set dbfix_proxy_become).'
                      % (self.path, e, self.p['conf_dir']))
        if not self.p['reload']:
            return
        rc, msg = self.nginx('-t', '-q')
        if rc != 0:
            self.restore(before)
            self.fail('nginx -t refused the configuration with %s: %s. The previous file was put back and nginx was '
                      'not reloaded; fix the nginx configuration and run again.' % (self.path, msg))
        rc, msg = self.nginx('-s', 'reload')
        if rc != 0 and self.p['start']:
            rc2, msg2 = self.nginx()
            if rc2 == 0:
                self.result['reloaded'] = True
                return
            msg = '%s; starting it: %s' % (msg, msg2)
        if rc != 0:
            self.restore(before)
            self.fail('nginx -s reload failed: %s. The previous file %s was put back. Start nginx (or give '
                      'nginx_prefix/nginx_conf of the running one) and run again.' % (msg, self.path))
        self.result['reloaded'] = True

    def restore(self, before):
        try:
            self.put(before)
        except OSError as e:
            self.fail('Cannot put the previous %s back: %s. Restore it by hand.' % (self.path, e))

    def run(self):
        p = self.p
        prod = p['production']
        backup = p['watch_backup']
        if backup and (backup['host'], backup['port']) == (prod['host'], prod['port']):
            self.fail('watch_backup %s:%s is the production address itself. Give the other color.' % (backup['host'], backup['port']))
        if not os.path.isdir(p['conf_dir']):
            self.fail('conf_dir %s is not a folder. Create it and include it from nginx.conf (include %s/*.conf;).'
                      % (p['conf_dir'], p['conf_dir']))
        for key in ('watch_seconds', 'watch_interval', 'switch_timeout', 'probe_timeout'):
            if p[key] < 0 or p[key] > 3600:
                self.fail('%s %s is out of range (0..3600 seconds).' % (key, p[key]))
        before = self.read()
        self.result['previous'] = _proxy.production_of(before)
        final = _proxy.render(p['name'], p['listen_address'], p['listen_port'], prod, keepalive=p['keepalive'])
        if before == final:
            self.module.exit_json(**self.result)
        self.result['changed'] = True
        if self.module._diff:
            self.result['diff'] = dict(before=before or '', after=final, before_header=self.path, after_header=self.path)
        if self.module.check_mode:
            self.module.exit_json(**self.result)
        watching = p['watch_seconds'] > 0 and p['reload']
        staged = final
        if watching and backup:
            staged = _proxy.render(p['name'], p['listen_address'], p['listen_port'], prod, backup=backup,
                                   keepalive=p['keepalive'])
        self.apply(staged, before)
        if watching:
            host = '127.0.0.1' if p['listen_address'] in ('0.0.0.0', '*', '') else p['listen_address'].strip('[]')
            verdict = _proxy.watch(
                lambda: _proxy.probe(host, p['listen_port'], p['probe_path'], p['probe_timeout']),
                prod['color'], '%s:%d' % (prod['host'], prod['port']), p['probe_status'],
                seconds=p['watch_seconds'], interval=p['watch_interval'], switch_timeout=p['switch_timeout'])
            self.result['watch'] = verdict
            if not verdict['ok']:
                self.apply(before, staged)
                self.result['production'] = self.result['previous']
                self.fail('The watch of %s through the proxy failed: %s. Reverted: %s routes to %s again and nginx '
                          'was reloaded. The candidate was not promoted.'
                          % (prod['color'], verdict['first_failure'], self.path, self.result['previous'] or 'nothing'),
                          reverted=True)
        if staged != final:
            self.apply(final, staged)
        self.module.exit_json(**self.result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            conf_dir=dict(type='path', required=True),
            listen_address=dict(type='str', default='0.0.0.0'),
            listen_port=dict(type='int', required=True),
            production=dict(type='dict', required=True, options=COLOR_SPEC),
            watch_backup=dict(type='dict', options=COLOR_SPEC),
            keepalive=dict(type='int', default=16),
            nginx=dict(type='str', default='nginx'),
            nginx_prefix=dict(type='path'),
            nginx_conf=dict(type='path'),
            reload=dict(type='bool', default=True),
            start=dict(type='bool', default=False),
            watch_seconds=dict(type='float', default=0),
            watch_interval=dict(type='float', default=0.1),
            switch_timeout=dict(type='float', default=10),
            probe_path=dict(type='str', default='/'),
            probe_status=dict(type='int', default=200),
            probe_timeout=dict(type='float', default=2),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for c in [p['production']] + ([p['watch_backup']] if p['watch_backup'] else []):
        if not 0 < c['port'] < 65536 or not c['color'].replace('-', '').replace('_', '').isalnum():
            module.fail_json(msg='Color %r port %s: a color is a word and a port is 1..65535. Fix the inventory.'
                             % (c['color'], c['port']))
    if not 0 < p['listen_port'] < 65536:
        module.fail_json(msg='listen_port %s is not 1..65535. Set dbfix_proxy_port.' % p['listen_port'])
    if not p['probe_path'].startswith('/'):
        module.fail_json(msg='probe_path %r must start with /.' % p['probe_path'])
    Switch(module).run()


if __name__ == '__main__':
    main()
