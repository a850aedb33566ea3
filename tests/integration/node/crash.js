// SPDX-License-Identifier: GPL-3.0-or-later
// Test app for pm2_service: a crash loop. Comes up (pm2 says "online"), writes a
// recognisable line to stderr and exits non-zero after $CRASH_AFTER_MS (default 300).
'use strict'
const after = Number(process.env.CRASH_AFTER_MS || 300)
setTimeout(() => {
  console.error('crash.js: fatal: cannot open database (simulated failure)')
  process.exit(1)
}, after)
setInterval(() => {}, 1000)
