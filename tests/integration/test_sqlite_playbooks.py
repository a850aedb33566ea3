# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_backup, sqlite_migrate and sqlite_info through real ansible-playbook on localhost.

The four-step pattern for each: check mode (changed, and provably nothing happened),
real run (changed, and the effect is there), check mode again (not changed), real run
again (not changed). Files are real SQLite databases in a temp dir.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason='needs ansible-playbook next to the test interpreter')


def play(tmp_path, body, **extra):
    pb = tmp_path / 'play.yml'
    pb.write_text(textwrap.dedent(body))
    args = [PLAYBOOK_BIN, '-i', 'localhost,', '-c', 'local', str(pb), '-e', 'workdir=%s' % tmp_path,
            '-e', 'ansible_python_interpreter=%s' % sys.executable]
    for k, v in extra.items():
        args += ['-e', '%s=%s' % (k, v)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert 'failed=0' in p.stdout
    return p.stdout


def make_db(path, mode='wal'):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute('PRAGMA journal_mode=%s' % mode)
    c.execute('CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT)')
    c.executemany('INSERT INTO users(email) VALUES (?)', [('u%d@x' % i,) for i in range(100)])
    c.close()
    return str(path)


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


BACKUP_PLAY = '''\
- name: Four steps for sqlite_backup
  hosts: localhost
  gather_facts: false
  vars:
    db: "{{ workdir }}/app/database.db"
    backup_args: &backup_args
      path: "{{ db }}"
      dest_dir: "{{ workdir }}/backups"
      timestamp: "20260101_120000"
      skip_unchanged: true
      keep: 2
  tasks:
    - name: Step 1, check mode
      bluegreen.dbfix.sqlite_backup: *backup_args
      check_mode: true
      register: step1

    - name: Look for the backup
      ansible.builtin.find:
        paths: "{{ workdir }}/backups"
        hidden: true
      register: found1

    - name: Step 1 reported a change and wrote nothing
      ansible.builtin.assert:
        that:
          - step1 is changed
          - step1.backup_file == workdir ~ '/backups/database.db.backup.20260101_120000'
          - found1.files | length == 0

    - name: Step 2, real run
      bluegreen.dbfix.sqlite_backup: *backup_args
      register: step2

    - name: Stat the backup
      ansible.builtin.stat:
        path: "{{ step2.backup_file }}"
        checksum_algorithm: sha256
      register: st2

    - name: Step 2 wrote a verified backup with the source's mode
      ansible.builtin.assert:
        that:
          - step2 is changed
          - step2.integrity == 'ok'
          - st2.stat.exists
          - st2.stat.checksum == step2.sha256
          - st2.stat.mode == '0640'

    - name: Step 3, check mode again
      bluegreen.dbfix.sqlite_backup: *backup_args
      check_mode: true
      register: step3

    - name: Step 4, real run again
      bluegreen.dbfix.sqlite_backup: *backup_args
      register: step4

    - name: Steps 3 and 4 changed nothing
      ansible.builtin.assert:
        that:
          - step3 is not changed
          - step4 is not changed
          - step4.backup_file == step2.backup_file
'''

RESTORE_PLAY = '''\
- name: Four steps for sqlite_backup state=restored
  hosts: localhost
  gather_facts: false
  vars:
    restore_args: &restore_args
      path: "{{ workdir }}/app/database.db"
      src: "{{ workdir }}/backups/database.db.backup.20260101_120000"
      state: restored
      timestamp: "20260102_000000"
  tasks:
    - name: Step 1, check mode
      bluegreen.dbfix.sqlite_backup: *restore_args
      check_mode: true
      register: step1

    - name: Aside file after check mode
      ansible.builtin.stat:
        path: "{{ step1.aside_file }}"
      register: aside1

    - name: Step 1 reported a change and moved nothing
      ansible.builtin.assert:
        that:
          - step1 is changed
          - not aside1.stat.exists

    - name: Step 2, real run
      bluegreen.dbfix.sqlite_backup: *restore_args
      register: step2

    - name: Aside file after the real run
      ansible.builtin.stat:
        path: "{{ step2.aside_file }}"
      register: aside2

    - name: Step 2 restored and kept the old database aside
      ansible.builtin.assert:
        that:
          - step2 is changed
          - aside2.stat.exists

    - name: Step 3, check mode again
      bluegreen.dbfix.sqlite_backup: *restore_args
      check_mode: true
      register: step3

    - name: Step 4, real run again
      bluegreen.dbfix.sqlite_backup: *restore_args
      register: step4

    - name: Steps 3 and 4 changed nothing
      ansible.builtin.assert:
        that:
          - step3 is not changed
          - step4 is not changed
'''


def test_backup_and_restore_four_steps(tmp_path):
    (tmp_path / 'app').mkdir()
    (tmp_path / 'backups').mkdir()
    db = make_db(tmp_path / 'app' / 'database.db')
    os.chmod(db, 0o640)
    play(tmp_path, BACKUP_PLAY)
    backup = str(tmp_path / 'backups' / 'database.db.backup.20260101_120000')
    assert sorted(os.listdir(tmp_path / 'backups')) == ['database.db.backup.20260101_120000']
    c = sqlite3.connect(db)
    c.execute('DELETE FROM users WHERE id > 10')
    c.commit()
    c.close()
    before_restore = sha(db)
    play(tmp_path, RESTORE_PLAY)
    assert sha(db) == sha(backup)
    assert sha(db + '.before-restore.20260102_000000') == before_restore
    c = sqlite3.connect(db)
    assert c.execute('SELECT count(*) FROM users').fetchone()[0] == 100
    c.close()


MIGRATE_PLAY = '''\
- name: Four steps for sqlite_migrate
  hosts: localhost
  gather_facts: false
  vars:
    migrate_args: &migrate_args
      path: "{{ workdir }}/database.db"
      migrations_dir: "{{ workdir }}/migrations"
  tasks:
    - name: Step 1, check mode
      bluegreen.dbfix.sqlite_migrate: *migrate_args
      check_mode: true
      register: step1

    - name: Facts after check mode
      bluegreen.dbfix.sqlite_info:
        path: "{{ workdir }}/database.db"
        expect_columns:
          users: [position]
      register: info1

    - name: Step 1 lists both migrations and applied neither
      ansible.builtin.assert:
        that:
          - step1 is changed
          - step1.pending == ['001_position.sql', '002_index.sql']
          - not info1.schema_ok
          - "'schema_migrations' not in info1.tables"

    - name: Step 2, real run
      bluegreen.dbfix.sqlite_migrate: *migrate_args
      register: step2

    - name: Facts after the real run
      bluegreen.dbfix.sqlite_info:
        path: "{{ workdir }}/database.db"
        expect_columns:
          users: [position]
        queries:
          versions: SELECT version FROM schema_migrations ORDER BY version
      register: info2

    - name: Step 2 applied both
      ansible.builtin.assert:
        that:
          - step2 is changed
          - step2.applied == ['001_position.sql', '002_index.sql']
          - step2.current_version == 2
          - info2.schema_ok
          - info2.query_results.versions | map(attribute='version') | list == [1, 2]

    - name: Step 3, check mode again
      bluegreen.dbfix.sqlite_migrate: *migrate_args
      check_mode: true
      register: step3

    - name: Step 4, real run again
      bluegreen.dbfix.sqlite_migrate: *migrate_args
      register: step4

    - name: Steps 3 and 4 changed nothing
      ansible.builtin.assert:
        that:
          - step3 is not changed
          - step4 is not changed
          - step4.pending == []
'''


def test_migrate_four_steps(tmp_path):
    make_db(tmp_path / 'database.db', 'delete')
    (tmp_path / 'migrations').mkdir()
    (tmp_path / 'migrations' / '001_position.sql').write_text("ALTER TABLE users ADD COLUMN position TEXT DEFAULT 'dev';\n")
    (tmp_path / 'migrations' / '002_index.sql').write_text('CREATE INDEX users_email ON users(email);\n')
    play(tmp_path, MIGRATE_PLAY)


INFO_PLAY = '''\
- name: Four steps for sqlite_info checkpoint (its only write)
  hosts: localhost
  gather_facts: false
  vars:
    info_args: &info_args
      path: "{{ workdir }}/database.db"
      checkpoint: true
      compare_with: "{{ workdir }}/other.db"
      integrity: quick
  tasks:
    - name: Step 1, check mode
      bluegreen.dbfix.sqlite_info: *info_args
      check_mode: true
      register: step1

    - name: Step 1 would checkpoint and left the WAL alone
      ansible.builtin.assert:
        that:
          - step1 is changed
          - step1.wal_size > 0
          - step1.comparison.superset
          - not step1.comparison.subset
          - step1.comparison.tables.users.only_here == 1

    - name: Step 2, real run
      bluegreen.dbfix.sqlite_info: *info_args
      register: step2

    - name: Step 2 checkpointed
      ansible.builtin.assert:
        that:
          - step2 is changed
          - step2.wal_size == 0
          - step2.integrity_result == 'ok'

    - name: Step 3, check mode again
      bluegreen.dbfix.sqlite_info: *info_args
      check_mode: true
      register: step3

    - name: Step 4, real run again
      bluegreen.dbfix.sqlite_info: *info_args
      register: step4

    - name: Steps 3 and 4 changed nothing
      ansible.builtin.assert:
        that:
          - step3 is not changed
          - step4 is not changed
'''


def test_info_checkpoint_four_steps(tmp_path):
    db = make_db(tmp_path / 'database.db')
    make_db(tmp_path / 'other.db')
    holder = sqlite3.connect(db, isolation_level=None)  # keeps the WAL from being folded in on close
    try:
        holder.execute('PRAGMA wal_autocheckpoint=0')
        holder.execute("INSERT INTO users(email) VALUES ('only-in-wal@x')")
        assert os.path.getsize(db + '-wal') > 0
        play(tmp_path, INFO_PLAY)
        immut = sqlite3.connect('file:%s?immutable=1' % db, uri=True)
        assert immut.execute("SELECT count(*) FROM users WHERE email = 'only-in-wal@x'").fetchone()[0] == 1
        immut.close()
    finally:
        holder.close()
