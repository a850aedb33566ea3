// SPDX-License-Identifier: GPL-3.0-or-later
// Oracle for dotenv_set: parse .env contents with the real npm dotenv packages.
// stdin: JSON list of base64-encoded file contents (bytes, exactly as on disk).
// stdout: JSON list, one object per input: {"16": {...}, "17": {...}, "18": {...}, "18fast": {...}}
// Usage: node dotenv_oracle.js <dir holding dotenv16/ dotenv17/ dotenv18/>
'use strict'
const path = require('path')
const base = process.argv[2] || path.join(__dirname, '..', '..', 'tools', 'node_modules')
const versions = { 16: 'dotenv16', 17: 'dotenv17', 18: 'dotenv18' }
const mods = {}
for (const [v, dir] of Object.entries(versions)) mods[v] = require(path.join(base, dir))
let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (c) => { input += c })
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((b64) => {
    const buf = Buffer.from(b64, 'base64')
    const r = {}
    for (const v of Object.keys(mods)) r[v] = mods[v].parse(buf)
    r['18fast'] = mods[18].parse(buf, { fast: true })
    return r
  })
  process.stdout.write(JSON.stringify(out))
})
