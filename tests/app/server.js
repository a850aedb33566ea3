// SPDX-License-Identifier: GPL-3.0-or-later
// A small stand-in for the TimeTracking API server: plain node:http,
// better-sqlite3 in WAL mode with a busy timeout (two apps may share one DB
// file), CORS from ALLOWED_ORIGINS, graceful shutdown for pm2.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const Database = require('better-sqlite3');
const config = require('./config');

let db = null;
let dbRealPath = null;

// Opened lazily and re-tried per request: a missing or unreadable DB turns
// into HTTP 500 on /api/health instead of a crash loop under pm2.
function getDb() {
  if (db === null) {
    const handle = new Database(config.dbPath, { fileMustExist: true, timeout: config.busyTimeoutMs });
    try {
      handle.pragma('journal_mode = WAL');
      handle.pragma(`busy_timeout = ${config.busyTimeoutMs}`);
      handle.pragma('foreign_keys = ON');
    } catch (err) {
      handle.close();
      throw err;
    }
    db = handle;
    // The file actually opened: through a symlink this is the shared DB.
    dbRealPath = fs.realpathSync(config.dbPath);
  }
  return db;
}

function corsHeaders(req, preflight) {
  const headers = { Vary: 'Origin' };
  const origin = req.headers.origin;
  if (origin && config.allowedOrigins.includes(origin)) {
    headers['Access-Control-Allow-Origin'] = origin;
    headers['Access-Control-Allow-Credentials'] = 'true';
    if (preflight) {
      headers['Access-Control-Allow-Methods'] = 'GET, POST, PUT, PATCH, DELETE, OPTIONS';
      headers['Access-Control-Allow-Headers'] = req.headers['access-control-request-headers'] || 'Content-Type, Authorization';
      headers['Access-Control-Max-Age'] = '600';
    }
  }
  return headers;
}

function send(req, res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...corsHeaders(req, false),
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1024 * 1024) {
        reject(new Error('request body larger than 1 MiB'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (err) {
        reject(new Error(`invalid JSON body: ${err.message}`));
      }
    });
    req.on('error', reject);
  });
}

function health(req, res) {
  try {
    getDb().prepare('SELECT count(*) AS n FROM sqlite_master').get();
    send(req, res, 200, { status: 'ok', color: config.color, db: dbRealPath });
  } catch (err) {
    send(req, res, 500, { status: 'error', color: config.color, db: dbRealPath, error: err.message });
  }
}

function usersMe(req, res) {
  // The release that introduced the profile view reads users.position; on a
  // DB where migration 002 was never applied SQLite answers
  // "no such column: position" and this route fails with 500.
  const user = getDb()
    .prepare('SELECT id, name, email, position FROM users WHERE active = 1 ORDER BY id LIMIT 1')
    .get();
  if (!user) {
    send(req, res, 404, { error: 'no active user' });
    return;
  }
  send(req, res, 200, user);
}

async function createTimeEntry(req, res) {
  let body;
  try {
    body = await readJson(req);
  } catch (err) {
    send(req, res, 400, { error: err.message });
    return;
  }
  const userId = Number(body.user_id);
  const minutes = Number(body.minutes);
  if (!Number.isInteger(userId) || !Number.isInteger(minutes) || minutes <= 0) {
    send(req, res, 400, { error: 'user_id and minutes must be positive integers' });
    return;
  }
  const projectId = body.project_id === undefined || body.project_id === null ? null : Number(body.project_id);
  const now = new Date().toISOString();
  try {
    const info = getDb()
      .prepare('INSERT INTO time_entries (user_id, project_id, started_at, minutes, note, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(userId, projectId, body.started_at || now, minutes, body.note === undefined ? null : String(body.note), now);
    send(req, res, 201, { id: Number(info.lastInsertRowid) });
  } catch (err) {
    const status = err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || err.code === 'SQLITE_CONSTRAINT_CHECK' ? 400 : 500;
    send(req, res, status, { error: err.message });
  }
}

function stats(req, res) {
  const conn = getDb();
  const tables = conn
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all();
  const counts = {};
  for (const name of tables) {
    counts[name] = conn.prepare(`SELECT count(*) FROM "${name.replace(/"/g, '""')}"`).pluck().get();
  }
  send(req, res, 200, { color: config.color, db: dbRealPath, tables: counts });
}

const routes = {
  'GET /api/health': health,
  'GET /api/users/me': usersMe,
  'POST /api/time-entries': createTimeEntry,
  'GET /api/stats': stats,
};

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, corsHeaders(req, true));
    res.end();
    return;
  }
  const handler = routes[`${req.method} ${url.pathname}`];
  if (!handler) {
    send(req, res, 404, { error: `no route for ${req.method} ${url.pathname}` });
    return;
  }
  try {
    await handler(req, res);
  } catch (err) {
    console.error(`${req.method} ${url.pathname}: ${err.message}`);
    if (!res.headersSent) {
      send(req, res, 500, { error: err.message });
    }
  }
});

function shutdown(signal) {
  console.log(`${signal} received: closing HTTP server and database`);
  server.close(() => {
    if (db !== null) {
      db.close();
      db = null;
    }
    process.exit(0);
  });
  server.closeAllConnections();
  // Never outlive pm2's kill_timeout because of a stuck client.
  setTimeout(() => {
    if (db !== null) {
      db.close();
    }
    process.exit(0);
  }, 1500).unref();
}

process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

server.listen(config.port, config.host, () => {
  try {
    getDb();
  } catch (err) {
    console.error(`database ${config.dbPath} not usable yet: ${err.message}`);
  }
  console.log(`timetracking-server (${config.color}) listening on http://${config.host}:${config.port}, db ${dbRealPath || config.dbPath}`);
});
