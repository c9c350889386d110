"""`synapse-stock`: Synapse as an operator deploys it for a test, behind nginx.

Synapse's generated configuration, changed only where a test deployment changes it (a
loopback listener, a registration shared secret, the database): rate limits, bursts and
bcrypt rounds stay as shipped, and registration stays off. In front of it, Debian's nginx
with the `location` block of Synapse's reverse-proxy documentation and TLS from a CA made for
the run. The admin API (shared-secret registration included) is not forwarded, as the
documentation has it: the harness reaches it on Synapse's own listener (`admin_url`).

`rate_scale` (tests only) multiplies the shipped per-second rates of the auth limiters while
their bursts stay as shipped, so a test sees real 429s without waiting minutes for each.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from mxconform.errors import HarnessError
from mxconform.targets.embedded.authserver.certs import make_loopback_tls
from mxconform.targets.embedded.synapse import (
    EmbeddedSynapse,
    end_process,
    free_port,
    wait_answering,
)

# Synapse's shipped (per_second, burst_count) for the limiters authentication meets
# (synapse/config/ratelimiting.py): what `rate_scale` speeds up.
SHIPPED_AUTH_LIMITS: dict[str, tuple[float, int]] = {
    "rc_login.address": (0.003, 5),
    "rc_login.account": (0.003, 5),
    "rc_login.failed_attempts": (0.17, 3),
    "rc_registration": (0.17, 3),
}


def stock_overrides(base: dict[str, Any], rate_scale: float) -> dict[str, Any]:
    """The embedded target's relaxations taken back out of `base` (Synapse's defaults then
    apply), registration off, the listener behind a proxy; rates scaled only if asked."""
    config = {
        k: v
        for k, v in base.items()
        if not k.startswith("rc_")
        and k
        not in (
            "bcrypt_rounds",
            "enable_registration_without_verification",
            "refreshable_access_token_lifetime",
            "login_via_existing_session",
        )
    }
    config["enable_registration"] = False
    listener = dict(config["listeners"][0])
    listener["x_forwarded"] = True  # nginx in front sets X-Forwarded-For
    listener["resources"] = [{"names": ["client", "federation"], "compress": False}]
    config["listeners"] = [listener]
    if rate_scale != 1.0:
        for key, (per_second, burst) in SHIPPED_AUTH_LIMITS.items():
            section, _, sub = key.partition(".")
            limit = {"per_second": per_second * rate_scale, "burst_count": burst}
            if sub:
                config.setdefault(section, {})[sub] = limit
            else:
                config[section] = limit
    return config


def nginx_config(workdir: Path, port: int, upstream_port: int) -> str:
    """Synapse's documented reverse-proxy block, TLS on, everything kept in `workdir`."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    temp = "\n".join(
        f"  {name}_temp_path {workdir}/nginx-{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""user {user};
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
  access_log {workdir}/nginx-access.log;
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {workdir}/server.pem;
    ssl_certificate_key {workdir}/server.key;
    location ~ ^(/_matrix|/_synapse/client) {{
      proxy_pass http://127.0.0.1:{upstream_port};
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Host $host;
      client_max_body_size 50M;
      proxy_http_version 1.1;
    }}
  }}
}}
"""


class StockSynapse:
    """Synapse at stock settings and the nginx in front of it; stopped together."""

    def __init__(self, synapse: EmbeddedSynapse, nginx: str | None = None) -> None:
        self.synapse = synapse
        self.nginx = nginx or shutil.which("nginx") or "/usr/sbin/nginx"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.ca_file: Path | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return self.synapse.base_url

    def start(self) -> StockSynapse:
        started = time.perf_counter()
        if not os.path.exists(self.nginx):
            raise HarnessError("synapse-stock needs nginx (Debian: apt-get install nginx)")
        self.synapse.start()
        try:
            workdir = self.synapse.workdir
            self.ca_file, _ = make_loopback_tls(workdir)
            self.port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(nginx_config(workdir, self.port, self.synapse.port))
            with open(workdir / "nginx-console.log", "wb") as console:  # nginx keeps its own
                self.process = subprocess.Popen(
                    [self.nginx, "-c", str(conf), "-p", str(workdir), "-e", "stderr"],
                    stdout=subprocess.DEVNULL,
                    stderr=console,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        log = self.synapse.workdir / "nginx-console.log"
        url = f"{self.base_url}/_matrix/client/versions"
        wait_answering(
            self.process,
            url,
            15,
            "nginx",
            lambda: log.read_text(errors="replace")[-800:],
            verify=str(self.ca_file),
        )

    def stop(self, scrub: Any = None) -> None:
        end_process(self.process, signal.SIGQUIT)  # nginx's graceful stop
        self.process = None
        workdir, log_dir = self.synapse.workdir, self.synapse.log_dir
        if log_dir is not None and (workdir / "nginx-access.log").exists():
            log_dir.mkdir(parents=True, exist_ok=True)
            text = (workdir / "nginx-access.log").read_text(errors="replace")
            (log_dir / "nginx-access.log").write_text(scrub(text) if scrub else text)
        self.synapse.stop(scrub)
