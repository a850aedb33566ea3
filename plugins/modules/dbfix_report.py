#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin plugins/action/dbfix_report.py, on the controller; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dbfix_report
short_description: Write a run report (JSON and Markdown) on the controller
version_added: "1.3.0"
description:
  - Writes C(<basename>.json) and C(<basename>.md) into O(dest_dir) on the controller, each atomically (a temporary
    file in the same folder, renamed over the final name) with mode C(0644).
  - Missing folders of O(dest_dir) are created with mode C(0755); an existing folder keeps its mode and owner.
  - Used by the collection's internal C(_report) role at the end of every playbook. The report holds only names,
    paths, sizes, hashes, counts and timings, never a value from a C(.env) or pm2's environment.
  - Runs in the controller's own process (an action plugin); no module is executed and no managed host is
    contacted.
author:
  - bluegreen.dbfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - bluegreen.dbfix.attributes
attributes:
  check_mode:
    support: none
    details: The report is written in check mode too (it describes the check run); it changes no managed host.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A new report per run; RV(ignore:changed) is always false because no managed host changes.
options:
  dest_dir:
    description: Folder on the controller (C(~) is expanded).
    type: str
    required: true
  basename:
    description: File name without extension, without a folder (e.g. C(20261201_101500-site)).
    type: str
    required: true
  json_text:
    description: The JSON report's text (for example C(report | to_nice_json)).
    type: str
    required: true
  markdown:
    description: The Markdown report's text.
    type: str
    required: true
seealso:
  - module: bluegreen.dbfix.dbfix_state
"""

EXAMPLES = r"""
- name: Write the JSON and Markdown reports
  bluegreen.dbfix.dbfix_report:
    dest_dir: ~/.local/share/bluegreen.dbfix/reports
    basename: "{{ stamp }}-site"
    json_text: "{{ report | to_nice_json }}"
    markdown: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
  run_once: true
"""

RETURN = r"""
files:
  description: The two files written (JSON first).
  returned: success
  type: list
  elements: str
  sample: [/root/.local/share/bluegreen.dbfix/reports/20261201_101500-site.json]
dest_dir:
  description: The folder, absolute.
  returned: success
  type: str
  sample: /root/.local/share/bluegreen.dbfix/reports
"""
