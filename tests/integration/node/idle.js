// SPDX-License-Identifier: GPL-3.0-or-later
// Test app for pm2_service: does nothing but stay up (cheaper than an HTTP server when a test needs many processes).
'use strict'
setInterval(() => {}, 1000)
