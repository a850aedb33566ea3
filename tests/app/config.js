// SPDX-License-Identifier: GPL-3.0-or-later
// Settings shared by server.js and migrate.js. Like the real TimeTracking
// server, they come from the `.env` next to this file (read by dotenv), and
// from the process environment, which dotenv never overrides.
'use strict';

const path = require('node:path');

require('dotenv').config({ path: path.join(__dirname, '.env'), quiet: true });

function list(value) {
  return String(value || '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

module.exports = {
  port: Number.parseInt(process.env.PORT || '3000', 10),
  host: process.env.HOST || '127.0.0.1',
  color: process.env.APP_COLOR || process.env.COLOR || 'unknown',
  // A relative DB_PATH is relative to the server folder, not to the cwd.
  dbPath: path.resolve(__dirname, process.env.DB_PATH || './database.db'),
  migrationsDir: path.join(__dirname, 'migrations'),
  allowedOrigins: list(process.env.ALLOWED_ORIGINS),
  busyTimeoutMs: 5000,
};
