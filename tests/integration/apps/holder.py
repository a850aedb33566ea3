# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny non-Node app for pm2_info / shared_db_switch tests: holds a SQLite file open (or not).

python3 holder.py DB MODE PORT
  hold  - open DB with sqlite3 and keep it open
  child - start a child process that holds DB (the pm2 process itself holds nothing)
  lazy  - open nothing
Serves GET /health -> {"status":"ok"} on 127.0.0.1:PORT when PORT is not 0.
"""
import http.server
import json
import sqlite3
import subprocess
import sys
import time

db, mode, port = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0
keep = []
if mode == 'hold':
    conn = sqlite3.connect(db)
    conn.execute('SELECT count(*) FROM sqlite_master').fetchall()
    keep.append(conn)
elif mode == 'child':
    keep.append(subprocess.Popen([sys.executable, __file__, db, 'hold', '0']))


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({'status': 'ok'}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if port:
    http.server.HTTPServer(('127.0.0.1', port), Health).serve_forever()
while True:
    time.sleep(1)
