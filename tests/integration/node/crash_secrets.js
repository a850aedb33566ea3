// SPDX-License-Identifier: GPL-3.0-or-later
// Test app for pm2_service: a crash loop that prints its secrets, as careless apps do. It comes up, then writes to
// stderr every line of ./.env (raw) and NAME=value for each variable named in $PRINT_VARS (comma-separated), and
// exits 1 after $CRASH_AFTER_MS (default 300).
'use strict'
const fs = require('fs')
const after = Number(process.env.CRASH_AFTER_MS || 300)
setTimeout(() => {
  console.error('crash_secrets: fatal: cannot connect, config follows')
  try {
    for (const line of fs.readFileSync('.env', 'utf8').split('\n')) if (line.trim()) console.error('.env: ' + line)
  } catch (e) { console.error('crash_secrets: no .env: ' + e.code) }
  for (const n of (process.env.PRINT_VARS || '').split(',').filter(Boolean)) console.error(n + '=' + process.env[n])
  process.exit(1)
}, after)
setInterval(() => {}, 1000)
