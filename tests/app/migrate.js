// SPDX-License-Identifier: GPL-3.0-or-later
// The app's own migrator (`npm run migrate`): applies pending
// migrations/NNN_*.sql in name order, each in its own transaction, and records
// them in `app_migrations` (the collection's sqlite_migrate uses a different
// table, schema_migrations, so the two never mistake each other's bookkeeping).
'use strict';

const fs = require('node:fs');
const Database = require('better-sqlite3');
const config = require('./config');

function pending(db, dir) {
  // Same DDL text as the estate's DB generator, so both write the same schema.
  db.exec('CREATE TABLE IF NOT EXISTS app_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
  const done = new Set(db.prepare('SELECT name FROM app_migrations').pluck().all());
  return fs.readdirSync(dir)
    .filter((f) => /^\d+_.*\.sql$/.test(f))
    .sort()
    .filter((f) => !done.has(f));
}

function main() {
  const db = new Database(config.dbPath, { timeout: config.busyTimeoutMs });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    const todo = pending(db, config.migrationsDir);
    if (todo.length === 0) {
      console.log('No pending migrations - database is up to date');
      return 0;
    }
    const record = db.prepare("INSERT INTO app_migrations (name, applied_at) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
    for (const file of todo) {
      const sql = fs.readFileSync(`${config.migrationsDir}/${file}`, 'utf8');
      try {
        db.transaction(() => {
          db.exec(sql);
          record.run(file);
        })();
      } catch (err) {
        err.message = `${file}: ${err.message} (rolled back; earlier migrations stay applied)`;
        throw err;
      }
      console.log(`Applied ${file}`);
    }
    return 0;
  } finally {
    db.close();
  }
}

try {
  process.exitCode = main();
} catch (err) {
  console.error(`Migration failed on ${config.dbPath}: ${err.message}`);
  process.exitCode = 1;
}
