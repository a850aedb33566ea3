// SPDX-License-Identifier: GPL-3.0-or-later
// Test app for pm2_service: answers on 127.0.0.1:$PORT.
//   GET /env/NAME -> {"name": NAME, "value": process.env[NAME] ?? null}
//   GET /health   -> HEALTH_STATUS (default 200) once $HEALTH_DELAY_MS have passed since start, 503 before
//   GET /pid      -> {"pid": process.pid}
// With EXIT_AFTER_MS it exits (status 1) that long after its start: healthy first, then gone.
'use strict'
const http = require('http')
const started = Date.now()
// Non-secret settings may also come as KEY=VALUE arguments (pm2_service `args`), so
// tests need not put them in `env`, whose values Ansible masks everywhere in output.
const conf = Object.assign({}, process.env)
for (const a of process.argv.slice(2)) { const i = a.indexOf('='); if (i > 0) conf[a.slice(0, i)] = a.slice(i + 1) }
const port = Number(conf.PORT)
if (!port) { console.error('echo_env: PORT is not set'); process.exit(2) }
const delay = Number(conf.HEALTH_DELAY_MS || 0)
const healthStatus = Number(conf.HEALTH_STATUS || 200)
if (conf.EXIT_AFTER_MS) setTimeout(() => { console.error('echo_env: exiting as EXIT_AFTER_MS asks'); process.exit(1) }, Number(conf.EXIT_AFTER_MS))
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  if (req.url.startsWith('/env/')) {
    const name = decodeURIComponent(req.url.slice(5))
    res.end(JSON.stringify({ name, value: process.env[name] === undefined ? null : process.env[name] }))
  } else if (req.url === '/health') {
    const ready = Date.now() - started >= delay
    res.statusCode = ready ? healthStatus : 503
    res.end(JSON.stringify({ ready, note: ready ? 'health status set by HEALTH_STATUS' : 'warming up' }))
  } else if (req.url === '/pid') {
    res.end(JSON.stringify({ pid: process.pid }))
  } else {
    res.statusCode = 404
    res.end('{}')
  }
}).listen(port, '127.0.0.1', () => console.log(`echo_env listening on 127.0.0.1:${port}`))
