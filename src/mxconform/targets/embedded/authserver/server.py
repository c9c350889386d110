"""The embedded authorisation server's lifecycle: bind, serve in a thread, stop, clean up."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mxconform import stopping

from .app import Settings, build_app
from .certs import make_loopback_tls
from .core import Client, Core
from .homeserver import Homeserver
from .store import Store

log = logging.getLogger("mxconform.authserver")


class _QuietHandler(WSGIRequestHandler):
    """Access lines go to our own log, method and path only: query strings can carry codes.

    TCP_NODELAY: werkzeug writes a response's head and body apart on a kept-alive connection,
    and without it the body waited for the client's delayed ACK (17 ms a request, not 5).
    """

    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        log.info("%s %s -> %s", self.command, path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("werkzeug %s", type)


class EmbeddedAuthServer:
    """A MAS-shaped OAuth 2.0 server for Synapse's `matrix_authentication_service` mode.

    It binds its port in `start()` (Synapse's config needs its URL); set `synapse_url` once
    Synapse answers, which also provisions the seed users there.
    """

    def __init__(
        self,
        *,
        shared_secret: str,
        server_name: str,
        admin_client_id: str,
        admin_client_secret: str,
        access_token_lifetime_s: int = 300,
        device_code_interval_s: int = 5,
        seed_users: dict[str, str] | None = None,
        state_dir: Path | None = None,
        log_dir: Path | None = None,
        public_tls: bool = False,
    ) -> None:
        self._shared_secret = shared_secret
        self._admin_secret = admin_client_secret
        self.server_name = server_name
        self._admin = Client(
            admin_client_id,
            {"client_name": "admin", "grant_types": ["client_credentials"], "response_types": []},
            admin_client_secret,
        )
        self.access_token_lifetime_s = access_token_lifetime_s
        self.device_code_interval_s = device_code_interval_s
        self._seed_users = dict(seed_users or {})
        self._own_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="mxconform-authserver-"))
        # a second stop signal ends the process at once: its state goes with it
        self._forget_state = (
            stopping.on_hard_stop(lambda: shutil.rmtree(self.state_dir, ignore_errors=True))
            if self._own_dir
            else lambda: None
        )
        self.log_dir = log_dir
        self.homeserver = Homeserver(shared_secret)
        self.port = 0
        # With public_tls, clients meet https (issuer, endpoints, pages) on `tls_port`,
        # signed by a CA made for this run (`ca_file`); Synapse keeps the plain internal
        # link on `port`, as a MAS deployment's homeserver often does.
        self.public_tls = public_tls
        self.tls_port = 0
        self.ca_file: Path | None = None
        self.startup_s: float | None = None
        self._server: BaseWSGIServer | None = None
        self._tls_server: BaseWSGIServer | None = None
        self._tls_thread: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._core: Core | None = None
        self._log_handler: logging.Handler | None = None

    @property
    def base_url(self) -> str:
        """Where clients reach the server: its issuer's origin (https with public_tls)."""
        if self.public_tls:
            return f"https://127.0.0.1:{self.tls_port}"
        return self.internal_url

    @property
    def internal_url(self) -> str:
        """The plain link Synapse is given as its `endpoint`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "authserver.log"

    @property
    def synapse_url(self) -> str | None:
        return self.homeserver.url

    @synapse_url.setter
    def synapse_url(self, url: str | None) -> None:
        """Point the server at Synapse and provision the seed users there."""
        self.homeserver.url = url
        if url is None or self._core is None:
            return
        for user in self._core.store.all("SELECT username FROM users"):
            self.homeserver.provision_user(user["username"])

    def start(self) -> EmbeddedAuthServer:
        started = time.perf_counter()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log_handler = logging.FileHandler(self.log_path)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # the harness's own logging never sees request lines
        try:
            self._store = Store(self.state_dir / "authserver.db", self.access_token_lifetime_s)
            self._core = Core(self._store, self.homeserver, self._admin)
            for username, password in self._seed_users.items():
                self._store.add_user(username, password)  # provisioned once synapse_url is set
            self._server = make_server(
                "127.0.0.1",
                0,
                _Placeholder(),
                threaded=True,
                request_handler=_QuietHandler,
            )
            self.port = self._server.server_port
            if self.public_tls:
                self.ca_file, context = make_loopback_tls(self.state_dir)
                self._tls_server = make_server(
                    "127.0.0.1",
                    0,
                    _Placeholder(),
                    threaded=True,
                    request_handler=_QuietHandler,
                    ssl_context=context,
                )
                self.tls_port = self._tls_server.server_port
            settings = Settings(
                base_url=self.base_url,
                server_name=self.server_name,
                shared_secret=self._shared_secret,
                device_code_interval_s=self.device_code_interval_s,
            )
            self._server.app = build_app(settings, self._core)
            self._thread = _serve(self._server, "mxconform-authserver")
            if self._tls_server is not None:
                self._tls_server.app = self._server.app
                self._tls_thread = _serve(self._tls_server, "mxconform-authserver-tls")
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        log.info("listening on %s", self.base_url)
        return self

    def stop(self, scrub: Callable[[str], str] | None = None) -> None:
        """Stop serving, keep the log (scrubbed) in log_dir, remove the temp state."""
        for server in (self._server, self._tls_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._tls_server = None
        for thread in (self._thread, self._tls_thread):
            if thread is not None:
                thread.join(timeout=10)
        self._thread = self._tls_thread = None
        self.homeserver.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self.log_dir is not None and self.log_path.exists():
            text = self.log_path.read_text(errors="replace")
            for secret in (self._shared_secret, self._admin_secret):
                if secret:
                    text = text.replace(secret, "<redacted:secret>")
            if scrub is not None:
                text = scrub(text)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "authserver.log").write_text(text)
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._forget_state()

    def __enter__(self) -> EmbeddedAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(server: BaseWSGIServer, name: str) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
    )
    thread.start()
    return thread


class _Placeholder:
    """The WSGI app until the real one exists (it needs the port, known only after binding)."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting\n"]
