# SPDX-License-Identifier: GPL-3.0-or-later
"""The four-step pattern for one module, written once for the integration tests.

Step 1, check mode: changed, and the caller proves that nothing happened.
Step 2, real run: changed, and the caller checks the effect.
Step 3, check mode again: not changed.
Step 4, real run again: not changed.

Two ways to drive it:

* ``run_four_steps`` builds one playbook that calls the module four times, with the
  caller's probe/assert tasks after steps 1, 2 and 4, runs it on localhost and
  returns the four module results. The probes run between the steps, so "nothing
  happened" is checked at the moment it must hold.
* ``four_step_runs`` calls the caller's ``run(check)`` once per step (one
  ansible-playbook run each) and compares the caller's picture of the files
  (``state()``) between the steps in Python, for checks a playbook cannot make
  (inodes, mtimes, link counts).

Also here: ``run_playbook`` (ansible-playbook on localhost with this interpreter)
and ``db_held_open`` (a process that keeps a database open, the case in which a
module must refuse to touch it).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

# (registered name, check mode, expected `changed`): the pattern itself.
STEPS = (
    ('step1', True, True),
    ('step2', False, True),
    ('step3', True, False),
    ('step4', False, False),
)


@dataclass
class FourSteps:
    results: tuple[dict, ...]  # the module's result at steps 1 to 4
    outputs: tuple[str, ...]   # what each ansible-playbook run printed (one run for run_four_steps)
    state: object = None       # four_step_runs: the caller's state() after step 2 (and 3 and 4)

    @property
    def output(self) -> str:
        return ''.join(self.outputs)


def run_playbook(playbook, extra_vars: dict, *options: str, expect_rc: int = 0, timeout: float = 600) -> str:
    """ansible-playbook on localhost with this interpreter and the checkout's ansible.cfg; stdout + stderr.

    Asserts the exit code (and, for a run expected to pass, a recap without failures).
    """
    evars = {'ansible_python_interpreter': sys.executable, **extra_vars}
    cmd = [PLAYBOOK_BIN, '-i', 'localhost,', '-c', 'local', str(playbook), '-e', json.dumps(evars), *options]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == expect_rc, proc.stdout[-6000:] + proc.stderr[-3000:]
    if expect_rc == 0:
        assert 'failed=0' in proc.stdout, proc.stdout[-6000:]
    return proc.stdout + proc.stderr


def _tasks(text: str) -> list:
    return (yaml.safe_load(textwrap.dedent(text)) or []) if text.strip() else []


def four_step_playbook(name: str, module: str, args: dict, *, proof: str, effect: str, again: str = '',
                       before: str = '', after: str = '', play_vars: dict | None = None,
                       module_defaults: dict | None = None) -> str:
    """The playbook ``run_four_steps`` runs, as YAML text.

    ``proof``, ``effect``, ``again``, ``before`` and ``after`` are YAML task lists: ``proof``
    runs after step 1 and must show that nothing happened, ``effect`` after step 2,
    ``again`` after step 4; they can use the registered ``step1`` .. ``step4``. The
    changed/not changed asserts of the pattern are added here. The last task writes
    the four results to ``fourstep_results`` (no_log: a result may hold a secret).
    """
    if not proof.strip() or not effect.strip():
        raise ValueError('a four-step test must prove that check mode did nothing and check the real effect')
    hooks = {'step1': _tasks(proof), 'step2': _tasks(effect), 'step4': _tasks(again)}
    labels = {'step1': 'check mode', 'step2': 'real run', 'step3': 'check mode again', 'step4': 'real run again'}
    tasks = _tasks(before)
    for step, check, changed in STEPS:
        task = {'name': 'Step %s, %s' % (step[-1], labels[step]), module: args, 'register': step}
        if check:
            task['check_mode'] = True
        tasks.append(task)
        tasks.append({'name': 'Step %s %s' % (step[-1], 'reported a change' if changed else 'changed nothing'),
                      'ansible.builtin.assert': {'that': ['%s is %schanged' % (step, '' if changed else 'not ')]}})
        tasks += hooks.get(step, [])
    tasks += _tasks(after)
    tasks.append({
        'name': 'Keep the four results for the test',
        'ansible.builtin.copy': {'content': '{{ [%s] | to_json }}' % ', '.join(step for step, _c, _ch in STEPS),
                                 'dest': '{{ fourstep_results }}', 'mode': '0600'},
        'check_mode': False, 'diff': False, 'no_log': True,
    })
    play = {'name': name, 'hosts': 'localhost', 'gather_facts': False}
    if module_defaults:
        play['module_defaults'] = module_defaults
    if play_vars:
        play['vars'] = play_vars
    play['tasks'] = tasks
    return yaml.safe_dump([play], sort_keys=False, width=1000)


def run_four_steps(tmp_path, module: str, args: dict, *, proof: str, effect: str, name: str | None = None,
                   extra_vars: dict | None = None, options: tuple[str, ...] = (), timeout: float = 600,
                   **parts) -> FourSteps:
    """Build the four-step playbook for ``module`` with ``args`` (see ``four_step_playbook`` for ``parts``),
    run it with ``workdir`` = ``tmp_path`` and ``extra_vars``, and return the four results."""
    pb = tmp_path / 'four-steps.yml'
    pb.write_text(four_step_playbook(name or 'Four steps for %s' % module, module, args, proof=proof, effect=effect, **parts))
    results_file = tmp_path / 'four-steps.json'
    evars = {'workdir': str(tmp_path), **(extra_vars or {}), 'fourstep_results': str(results_file)}
    out = run_playbook(pb, evars, *options, timeout=timeout)
    return FourSteps(results=tuple(json.loads(results_file.read_text())), outputs=(out,))


def four_step_runs(run, state) -> FourSteps:
    """The four steps as four runs: ``run(check)`` -> (module result, output); ``state()`` -> what the module may touch.

    Asserts each step's ``changed``, that check mode left ``state()`` as it was, that the
    real run changed it, and that steps 3 and 4 left it as step 2 made it.
    """
    start = state()
    results, outputs, after = [], [], None
    for step, check, changed in STEPS:
        result, out = run(check)
        assert result['changed'] is changed, (step, result)
        now = state()
        if step == 'step1':
            assert now == start, 'check mode changed something'
        elif step == 'step2':
            assert now != start, 'the real run reported a change and changed nothing'
            after = now
        else:
            assert now == after, '%s changed something' % step
        results.append(result)
        outputs.append(out)
    return FourSteps(results=tuple(results), outputs=tuple(outputs), state=after)


@contextlib.contextmanager
def db_held_open(path: str, python: str = sys.executable, **popen_kwargs):
    """A process (``python``, run with ``popen_kwargs``, e.g. another user) that has ``path`` open; killed on exit."""
    holder = subprocess.Popen([python, '-c', textwrap.dedent('''
        import sqlite3, sys, time
        c = sqlite3.connect(sys.argv[1])
        c.execute('SELECT count(*) FROM sqlite_master').fetchone()
        print('ready', flush=True)
        time.sleep(600)
    '''), path], **popen_kwargs, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'ready'
        yield holder
    finally:
        holder.kill()
        holder.wait()
