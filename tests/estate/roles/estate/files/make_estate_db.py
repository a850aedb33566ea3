# -*- coding: utf-8 -*-
# Copyright (c) 2026, bluegreen.dbfix contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build one color's TimeTracking SQLite DB for the test estate.

Deterministic: a seeded RNG and a fixed clock, so the same arguments give the
same rows (and the same ``.dump``) on every machine. Stdlib only: it runs on the
managed host (a Molecule container, or this machine for ``make demo``).

The data story the later phases are tested against:

* ``production`` (BLUE) has every migration applied (001 + 002 on
  2025-06-18) and holds every staging row plus production-only time entries
  written after the staging snapshot (2025-06-16 06:00 UTC).
* ``staging`` (GREEN) is a copy of production taken at the snapshot, before 002:
  no ``users.position``, 002 pending in ``app_migrations``. Its shared rows are
  the same values as production's (``position`` reads NULL on both once the
  app's migrator has added the column on GREEN). Its file is *larger* than
  BLUE's: a dropped staging import table left free pages behind, so "pick the
  bigger file" picks the DB that lacks production's newest rows.
* ``--diverged``: each DB also gets rows the other lacks -- staging-only time
  entries whose ids collide with production's newer ones, and a staging-only
  user -- so no base DB holds every row.
* ``--size-mb N`` adds old history rows (the same in both colors) until the
  file reaches about N MiB, for benchmarks (1024 takes about a minute).

The DB is built in ``PATH.estate-tmp`` and renamed into place, so an
interrupted run never leaves a half-built DB that looks finished.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sqlite3
import sys

# Kept byte-identical to the CREATE TABLE in tests/app/migrate.js.
APP_MIGRATIONS_DDL = 'CREATE TABLE IF NOT EXISTS app_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)'

UTC = dt.timezone.utc  # noqa: UP017 - runs on managed hosts, whose Python may be older than 3.11
HISTORY_START = dt.datetime(2025, 4, 21, tzinfo=UTC)  # Monday, 8 weeks before the snapshot
STAGING_SNAPSHOT = dt.datetime(2025, 6, 16, 6, 0, tzinfo=UTC)  # GREEN copied from BLUE here
PRODUCTION_NOW = dt.datetime(2025, 6, 20, 16, 0, tzinfo=UTC)  # BLUE's newest row is before this
MIGRATION_TIMES = {
    0: '2025-01-13T09:00:00.000Z',  # 001_init: first deployment
    1: '2025-06-18T21:30:00.000Z',  # 002: production only, after the staging snapshot
}

USERS = [
    # (name, role, active)
    ('Anna Schmidt', 'admin', 1),
    ('Jonas Weber', 'manager', 1),
    ('Lena Fischer', 'employee', 1),
    ('Lukas Meyer', 'employee', 1),
    ('Marie Wagner', 'employee', 0),
    ('Paul Becker', 'employee', 1),
    ('Sophie Hoffmann', 'manager', 1),
    ('Felix Schulz', 'employee', 1),
    ('Emma Koch', 'employee', 1),
    ('Leon Richter', 'employee', 1),
    ('Mia Klein', 'employee', 0),
    ('Noah Wolf', 'employee', 1),
    ('Hannah Neumann', 'employee', 1),
    ('Elias Schwarz', 'employee', 0),
]
PROJECTS = [
    ('TimeTracking Desktop (Tauri)', 'intern', 0),
    ('Website Relaunch', 'Bäckerei Krause GmbH', 0),
    ('ERP Schnittstelle', 'Stadtwerke Nord', 0),
    ('Support & Wartung', None, 0),
    ('Mobile App Prototyp', 'Praxis Dr. Yilmaz', 1),
    ('Interne Schulung', 'intern', 0),
]
NOTES = [
    'Daily Stand-up', 'Code Review', 'Bugfix Login', 'API Endpunkte', 'Kundentermin',
    'Datenbank Migration', 'Deployment vorbereitet', 'Tests geschrieben', 'Dokumentation',
    'Sprint Planning', 'Refactoring Zeiterfassung', 'CORS Problem analysiert', 'Support Ticket',
    'UI Feinschliff', 'Export als CSV', None,
]


def iso(ts: dt.datetime) -> str:
    return ts.strftime('%Y-%m-%dT%H:%M:%S.000Z')


def email(name: str) -> str:
    first, last = name.lower().replace('ä', 'ae').replace('ö', 'oe').replace('ü', 'ue').split(' ', 1)
    return f'{first}.{last}@timetracking.example'


def fake_hash(seed: int, name: str) -> str:
    # Looks like a bcrypt hash, is not one: test data only.
    digest = hashlib.sha256(f'{seed}:{name}:not-a-password'.encode()).hexdigest()
    return '$2b$10$TESTONLY' + digest[:45]


def workdays(start: dt.datetime, end: dt.datetime):
    day = start.replace(hour=0, minute=0, second=0)
    while day < end:
        if day.weekday() < 5:
            yield day
        day += dt.timedelta(days=1)


def entries(rng: random.Random, user_ids, project_ids, start: dt.datetime, end: dt.datetime, *, tag: str = ''):
    """Time entries for every active user on every workday in [start, end)."""
    for day in workdays(start, end):
        for uid in user_ids:
            clock = day + dt.timedelta(hours=8, minutes=rng.choice((0, 15, 30, 45)))
            for _entry in range(rng.randint(1, 3)):
                minutes = 15 * rng.randint(1, 16)
                if start <= clock < end:
                    note = rng.choice(NOTES)
                    if note is not None and tag:
                        note = f'{note} ({tag})'
                    yield (uid, rng.choice(project_ids), iso(clock), minutes, note, iso(clock + dt.timedelta(minutes=minutes)))
                clock += dt.timedelta(minutes=minutes + 15 * rng.randint(0, 4))


def apply_migration(conn: sqlite3.Connection, path: str, applied_at: str) -> None:
    with open(path, encoding='utf-8') as handle:
        sql = handle.read()
    conn.execute('BEGIN')
    for statement in split_sql(sql):
        conn.execute(statement)
    conn.execute('INSERT INTO app_migrations (name, applied_at) VALUES (?, ?)', (os.path.basename(path), applied_at))
    conn.execute('COMMIT')


def split_sql(sql: str):
    """Statements of a migration file (no triggers in ours, so ';' splits)."""
    buf = ''
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith('--'):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ''
    if buf.strip():
        raise ValueError(f'incomplete SQL statement at end of migration: {buf.strip()[:80]!r}')


def bulk_history(conn: sqlite3.Connection, target_bytes: int, user_ids, project_ids) -> int:
    """Old time entries (before HISTORY_START) until the file is about target_bytes.

    Same rows in every color: they depend only on the row index, and the loop
    stops on the page count of a DB that is identical in both colors so far.
    """
    pad = 'Historischer Eintrag aus dem Altsystem importiert. ' * 7
    page_size = conn.execute('PRAGMA page_size').fetchone()[0]
    batch = 20000
    done = 0
    while conn.execute('PRAGMA page_count').fetchone()[0] * page_size < target_bytes:
        rows = []
        for i in range(done, done + batch):
            ts = HISTORY_START - dt.timedelta(minutes=7 * (i + 1))
            minutes = 15 * (1 + i % 16)
            rows.append((user_ids[i % len(user_ids)], project_ids[i % len(project_ids)], iso(ts), minutes,
                         f'#{i} {NOTES[i % (len(NOTES) - 1)]}: {pad}', iso(ts + dt.timedelta(minutes=minutes))))
        conn.execute('BEGIN')
        conn.executemany('INSERT INTO time_entries (user_id, project_id, started_at, minutes, note, created_at) VALUES (?, ?, ?, ?, ?, ?)', rows)
        conn.execute('COMMIT')
        done += batch
    return done


def build(args: argparse.Namespace) -> dict:
    migrations = sorted(f for f in os.listdir(args.migrations_dir) if f.endswith('.sql') and f[:1].isdigit())
    if not migrations:
        raise ValueError(f'no NNN_*.sql migrations found in {args.migrations_dir}')
    applied = len(migrations) if args.role == 'production' else 1
    if args.applied is not None:
        applied = args.applied
    tmp = args.db + '.estate-tmp'
    for leftover in (tmp, tmp + '-journal', tmp + '-wal', tmp + '-shm'):
        if os.path.exists(leftover):
            os.unlink(leftover)

    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute('PRAGMA journal_mode = OFF')
        conn.execute('PRAGMA synchronous = OFF')
        conn.execute(APP_MIGRATIONS_DDL)
        apply_migration(conn, os.path.join(args.migrations_dir, migrations[0]), MIGRATION_TIMES[0])

        rng = random.Random(args.seed)
        users = []
        for uid, (name, role, active) in enumerate(USERS, start=1):
            created = dt.datetime(2024, 9, 2, 9, tzinfo=UTC) + dt.timedelta(days=11 * uid + rng.randint(0, 9))
            users.append((uid, name, email(name), fake_hash(args.seed, name), role, active, iso(created)))
        user_ids = [u[0] for u in users if u[5]]
        project_ids = list(range(1, len(PROJECTS) + 1))
        conn.execute('BEGIN')
        conn.executemany('INSERT INTO users (id, name, email, password_hash, role, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', users)
        conn.executemany('INSERT INTO projects (id, name, client, archived, created_at) VALUES (?, ?, ?, ?, ?)',
                         [(pid, n, c, a, '2024-09-02T09:00:00.000Z') for pid, (n, c, a) in enumerate(PROJECTS, start=1)])
        conn.execute('COMMIT')

        history = bulk_history(conn, args.size_mb * 1024 * 1024, user_ids, project_ids) if args.size_mb else 0

        insert = 'INSERT INTO time_entries (user_id, project_id, started_at, minutes, note, created_at) VALUES (?, ?, ?, ?, ?, ?)'
        conn.execute('BEGIN')
        conn.executemany(insert, entries(rng, user_ids, project_ids, HISTORY_START, STAGING_SNAPSHOT))
        conn.execute('COMMIT')

        if args.role == 'staging':
            # A one-off import table, dropped again: its pages stay in the file
            # as free pages, which makes GREEN the bigger file.
            size = conn.execute('PRAGMA page_count').fetchone()[0] * conn.execute('PRAGMA page_size').fetchone()[0]
            pad_rows = max(64, int(size * 0.05) // 1024)
            conn.execute('BEGIN')
            conn.execute('CREATE TABLE staging_import (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)')
            conn.executemany('INSERT INTO staging_import (payload) VALUES (?)', (('x' * 1000,) for _row in range(pad_rows)))
            conn.execute('COMMIT')
            conn.execute('DROP TABLE staging_import')

        for index in range(1, applied):
            apply_migration(conn, os.path.join(args.migrations_dir, migrations[index]),
                            MIGRATION_TIMES.get(index, MIGRATION_TIMES[1]))

        if args.role == 'production':
            conn.execute('BEGIN')
            conn.executemany(insert, entries(random.Random(args.seed * 1000 + 1), user_ids, project_ids,
                                             STAGING_SNAPSHOT, PRODUCTION_NOW))
            conn.execute('COMMIT')
        elif args.diverged:
            conn.execute('BEGIN')
            conn.execute('INSERT INTO users (id, name, email, password_hash, role, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
                         (len(USERS) + 1, 'QA Tester', 'qa.tester@timetracking.example', fake_hash(args.seed, 'qa'), 'employee', 1,
                          iso(STAGING_SNAPSHOT + dt.timedelta(hours=3))))
            conn.executemany(insert, entries(random.Random(args.seed * 1000 + 2), [*user_ids[:4], len(USERS) + 1], project_ids,
                                             STAGING_SNAPSHOT, STAGING_SNAPSHOT + dt.timedelta(days=2), tag='staging'))
            conn.execute('COMMIT')
        if args.role == 'production' and args.diverged:
            # A production-only user as well, so BLUE also has a table GREEN is missing rows of.
            conn.execute('INSERT INTO users (id, name, email, password_hash, role, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
                         (len(USERS) + 1, 'Can Öztürk', 'can.oeztuerk@timetracking.example', fake_hash(args.seed, 'can'), 'employee', 1,
                          iso(STAGING_SNAPSHOT + dt.timedelta(days=1))))

        conn.execute('PRAGMA journal_mode = WAL')
        check = conn.execute('PRAGMA integrity_check').fetchone()[0]
        if check != 'ok':
            raise RuntimeError(f'integrity_check of {tmp} says {check}')
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")}
        columns = [r[1] for r in conn.execute('PRAGMA table_info(users)')]
        newest = conn.execute('SELECT max(started_at) FROM time_entries').fetchone()[0]
    finally:
        conn.close()
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.db)
    return {
        'db': args.db,
        'role': args.role,
        'diverged': args.diverged,
        'migrations_applied': migrations[:applied],
        'migrations_pending': migrations[applied:],
        'users_columns': columns,
        'rows': counts,
        'history_rows': history,
        'newest_time_entry': newest,
        'size_bytes': os.path.getsize(args.db),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--db', required=True, help='DB file to create')
    parser.add_argument('--role', required=True, choices=('production', 'staging'),
                        help='production = BLUE (fully migrated, newest rows); staging = GREEN (001 only, bigger file)')
    parser.add_argument('--migrations-dir', required=True, help="the app's migrations/ folder")
    parser.add_argument('--applied', type=int, help='how many migrations to apply (default: all for production, 1 for staging)')
    parser.add_argument('--size-mb', type=int, default=0, help='grow the DB to about this many MiB with old history rows')
    parser.add_argument('--diverged', action='store_true', help='give each DB rows the other lacks')
    parser.add_argument('--seed', type=int, default=20250616)
    parser.add_argument('--force', action='store_true', help='replace an existing DB (default: leave it and report unchanged)')
    args = parser.parse_args(argv)
    args.db = os.path.abspath(args.db)
    if os.path.lexists(args.db) and not args.force:
        print(json.dumps({'changed': False, 'db': args.db, 'msg': 'DB exists; pass --force to rebuild it'}))
        return 0
    try:
        result = build(args)
    except (OSError, ValueError, RuntimeError, sqlite3.Error) as exc:
        print(f'make_estate_db: building {args.db} failed: {exc}', file=sys.stderr)
        return 1
    result['changed'] = True
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
