// SPDX-License-Identifier: GPL-3.0-or-later
// Test-only preload for the Molecule scenario `health-failure` (loaded into
// every node process of the GREEN container through NODE_OPTIONS=--require,
// set on the platform). While DBFIX_TEST_FAIL_IF_LINK (GREEN's database.db)
// is a symlink, the app's GET /api/health answers 500: a real app, really
// started by pm2, that fails its health check after phase 2's switch, so the
// role's automatic rollback runs for real. With a regular file (before the
// switch, after the rollback) the app is untouched. Processes that never call
// http.createServer (pm2 itself, the migrator) are not affected.
'use strict';

const fs = require('node:fs');
const http = require('node:http');

const watched = process.env.DBFIX_TEST_FAIL_IF_LINK;

function isLink(path) {
  try {
    return fs.lstatSync(path).isSymbolicLink();
  } catch (err) {
    return false;
  }
}

if (watched) {
  const createServer = http.createServer;
  http.createServer = function createServerFailingHealth(...args) {
    const i = args.findIndex((a) => typeof a === 'function');
    if (i >= 0) {
      const handler = args[i];
      args[i] = function failHealthOnLink(req, res) {
        if (req.url.split('?')[0] === '/api/health' && isLink(watched)) {
          const body = JSON.stringify({
            status: 'error',
            error: `test-only failure (molecule health-failure): ${watched} is a symlink`,
          });
          res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
          res.end(body);
          return undefined;
        }
        return handler.call(this, req, res);
      };
    }
    return createServer.apply(this, args);
  };
}
