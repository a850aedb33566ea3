# SPDX-License-Identifier: GPL-3.0-or-later
"""sqlite_backup, sqlite_migrate and sqlite_info through real ansible-playbook on localhost.

The four-step pattern for each (``_fourstep.run_four_steps``): check mode (changed, and
provably nothing happened), real run (changed, and the effect is there), check mode again
(not changed), real run again (not changed). Files are real SQLite databases in a temp dir.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
from _fourstep import PLAYBOOK_BIN, run_four_steps

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason='needs ansible-playbook next to the test interpreter')


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


BACKUP_ARGS = {
    'path': '{{ workdir }}/app/database.db',
    'dest_dir': '{{ workdir }}/backups',
    'timestamp': '20260101_120000',
    'skip_unchanged': True,
    'keep': 2,
}

BACKUP_PROOF = '''
    - name: Look for the backup
      ansible.builtin.find:
        paths: "{{ workdir }}/backups"
        hidden: true
      register: found1

    - name: Step 1 named the backup and wrote nothing
      ansible.builtin.assert:
        that:
          - step1.backup_file == workdir ~ '/backups/database.db.backup.20260101_120000'
          - found1.files | length == 0
'''

BACKUP_EFFECT = '''
    - name: Stat the backup
      ansible.builtin.stat:
        path: "{{ step2.backup_file }}"
        checksum_algorithm: sha256
      register: st2

    - name: Step 2 wrote a verified backup with the source's mode
      ansible.builtin.assert:
        that:
          - step2.integrity == 'ok'
          - st2.stat.exists
          - st2.stat.checksum == step2.sha256
          - st2.stat.mode == '0640'
'''

BACKUP_AGAIN = '''
    - name: Step 4 kept the backup of step 2
      ansible.builtin.assert:
        that:
          - step4.backup_file == step2.backup_file
'''

RESTORE_ARGS = {
    'path': '{{ workdir }}/app/database.db',
    'src': '{{ workdir }}/backups/database.db.backup.20260101_120000',
    'state': 'restored',
    'timestamp': '20260102_000000',
}

RESTORE_PROOF = '''
    - name: Aside file after check mode
      ansible.builtin.stat:
        path: "{{ step1.aside_file }}"
      register: aside1

    - name: Step 1 moved nothing
      ansible.builtin.assert:
        that:
          - not aside1.stat.exists
'''

RESTORE_EFFECT = '''
    - name: Aside file after the real run
      ansible.builtin.stat:
        path: "{{ step2.aside_file }}"
      register: aside2

    - name: Step 2 restored and kept the old database aside
      ansible.builtin.assert:
        that:
          - aside2.stat.exists
'''


def test_backup_and_restore_four_steps(tmp_path):
    (tmp_path / 'app').mkdir()
    (tmp_path / 'backups').mkdir()
    db = make_db(tmp_path / 'app' / 'database.db')
    os.chmod(db, 0o640)
    run_four_steps(tmp_path, 'bluegreen.dbfix.sqlite_backup', BACKUP_ARGS, proof=BACKUP_PROOF, effect=BACKUP_EFFECT,
                   again=BACKUP_AGAIN)
    backup = str(tmp_path / 'backups' / 'database.db.backup.20260101_120000')
    assert sorted(os.listdir(tmp_path / 'backups')) == ['database.db.backup.20260101_120000']
    c = sqlite3.connect(db)
    c.execute('DELETE FROM users WHERE id > 10')
    c.commit()
    c.close()
    before_restore = sha(db)
    run_four_steps(tmp_path, 'bluegreen.dbfix.sqlite_backup', RESTORE_ARGS, name='Four steps for sqlite_backup state=restored',
                   proof=RESTORE_PROOF, effect=RESTORE_EFFECT)
    assert sha(db) == sha(backup)
    assert sha(db + '.before-restore.20260102_000000') == before_restore
    c = sqlite3.connect(db)
    assert c.execute('SELECT count(*) FROM users').fetchone()[0] == 100
    c.close()


MIGRATE_ARGS = {'path': '{{ workdir }}/database.db', 'migrations_dir': '{{ workdir }}/migrations'}

MIGRATE_PROOF = '''
    - name: Facts after check mode
      bluegreen.dbfix.sqlite_info:
        path: "{{ workdir }}/database.db"
        expect_columns:
          users: [position]
      register: info1

    - name: Step 1 lists both migrations and applied neither
      ansible.builtin.assert:
        that:
          - step1.pending == ['001_position.sql', '002_index.sql']
          - not info1.schema_ok
          - "'schema_migrations' not in info1.tables"
'''

MIGRATE_EFFECT = '''
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
          - step2.applied == ['001_position.sql', '002_index.sql']
          - step2.current_version == 2
          - info2.schema_ok
          - info2.query_results.versions | map(attribute='version') | list == [1, 2]
'''

MIGRATE_AGAIN = '''
    - name: Nothing is pending any more
      ansible.builtin.assert:
        that:
          - step4.pending == []
'''


def test_migrate_four_steps(tmp_path):
    make_db(tmp_path / 'database.db', 'delete')
    (tmp_path / 'migrations').mkdir()
    (tmp_path / 'migrations' / '001_position.sql').write_text("ALTER TABLE users ADD COLUMN position TEXT DEFAULT 'dev';\n")
    (tmp_path / 'migrations' / '002_index.sql').write_text('CREATE INDEX users_email ON users(email);\n')
    run_four_steps(tmp_path, 'bluegreen.dbfix.sqlite_migrate', MIGRATE_ARGS, proof=MIGRATE_PROOF, effect=MIGRATE_EFFECT,
                   again=MIGRATE_AGAIN)
