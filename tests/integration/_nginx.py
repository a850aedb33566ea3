# SPDX-License-Identifier: GPL-3.0-or-later
"""A real nginx (Debian's /usr/sbin/nginx) as a plain process with its own prefix under a temp folder.

Loopback only. Used by the promote tests and bench/switch.py: ``start()`` writes nginx.conf (which includes
``conf.d/*.conf`` inside ``http {}`` as Debian's does), starts the master, ``stop()`` ends it (QUIT, then KILL
after a deadline) and every worker with it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


class Nginx:
    def __init__(self, prefix: Path):
        self.prefix = Path(prefix)
        self.conf = self.prefix / "nginx.conf"
        self.conf_dir = self.prefix / "conf.d"
        self.pid_file = self.prefix / "nginx.pid"

    def cmd(self, *args: str) -> list[str]:
        return [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args]

    def vars(self) -> dict:
        """The proxy role's variables for this nginx."""
        return {"dbfix_proxy_nginx": NGINX, "dbfix_proxy_nginx_prefix": str(self.prefix),
                "dbfix_proxy_nginx_conf": str(self.conf), "dbfix_proxy_conf_dir": str(self.conf_dir),
                "dbfix_proxy_listen_address": "127.0.0.1"}

    def start(self) -> Nginx:
        if not Path(NGINX).exists():
            raise RuntimeError(f"nginx not installed at {NGINX} (scripts/setup-system.sh installs it)")
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONF.format(prefix=self.prefix), encoding="utf-8")
        subprocess.run(self.cmd(), check=True, timeout=30, capture_output=True)
        deadline = time.monotonic() + 10
        while not self.pid() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
