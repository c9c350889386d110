"""A real Synapse (from PyPI) started as a subprocess on loopback, with test-friendly config."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from mxconform import stopping
from mxconform.errors import HarnessError

_RELAXED = {"per_second": 9999, "burst_count": 9999}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_dir() -> str | None:
    """Where a throwaway Synapse keeps its state: /dev/shm where there is one (Linux), so that
    its SQLite commits are not disk flushes; else (or when TMPDIR is set) the temp folder."""
    if os.environ.get("TMPDIR"):
        return None  # a temp folder the user chose is honoured
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel stop Synapse if the harness itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def signing_key_line() -> str:
    """An ed25519 signing key in Synapse's file format, made by signedjson when present."""
    try:
        from signedjson.key import encode_signing_key_base64, generate_signing_key

        key = generate_signing_key("a_mxc")
        return f"ed25519 a_mxc {encode_signing_key_base64(key)}\n"
    except ImportError:  # Synapse runs from another interpreter: a seed is all the file holds
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        return f"ed25519 a_mxc {seed}\n"


def synapse_config(
    workdir: Path, port: int, server_name: str, shared_secret: str, log_path: Path
) -> dict[str, Any]:
    """Loopback only, SQLite, cheap hashing, relaxed rate limits, open registration."""
    log_config = workdir / "log.yaml"
    log_config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "formatters": {
                    "plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}
                },
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(log_path),
                        "formatter": "plain",
                    }
                },
                "root": {"level": "INFO", "handlers": ["file"]},
                "disable_existing_loggers": False,
            }
        )
    )
    return {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "media_store_path": str(workdir / "media"),
        "signing_key_path": str(workdir / "signing.key"),
        "log_config": str(log_config),
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "registration_shared_secret": shared_secret,
        "bcrypt_rounds": 4,
        # Short-lived refreshable tokens when a client opts in, so expiry can be checked quickly.
        "refreshable_access_token_lifetime": "3s",
        # POST /login/get_token (a UIA endpoint) is off unless enabled.
        "login_via_existing_session": {"enabled": True, "require_ui_auth": True},
        "rc_message": _RELAXED,
        "rc_registration": _RELAXED,
        "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
        "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
        "rc_joins_per_room": _RELAXED,
        "rc_3pid_validation": _RELAXED,
        "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
        "rc_room_creation": _RELAXED,
        "rc_delayed_event_mgmt": _RELAXED,
        "rc_key_requests": _RELAXED,
        "rc_registration_token_validity": _RELAXED,
        "rc_profile": _RELAXED,
    }


# Settings Synapse refuses (or ignores) when it delegates authentication to MAS.
_NOT_WITH_MAS = (
    "enable_registration",
    "enable_registration_without_verification",
    "registration_shared_secret",
    "refreshable_access_token_lifetime",
    "login_via_existing_session",
)


def delegated_synapse_config(
    workdir: Path, port: int, server_name: str, endpoint: str, secret: str, log_path: Path
) -> dict[str, Any]:
    """The same test-friendly server, with authentication delegated to a MAS-shaped AS."""
    config = synapse_config(workdir, port, server_name, secret, log_path)
    for key in _NOT_WITH_MAS:
        config.pop(key, None)
    config["matrix_authentication_service"] = {
        "enabled": True,
        "endpoint": endpoint,
        "secret": secret,
    }
    return config


def synapse_env(workdir: Path) -> dict[str, str]:
    """Synapse's environment: ours, minus any git repository around it.

    Synapse adds git details to its version ("1.163.2 (b=main,764ad47)", the `Server`
    header) by running `git` in the folder of its installed package. When that package sits
    in a venv inside a checkout (ours), git answers for the checkout, and the server's
    provenance shows our commit. `GIT_DIR` naming a folder that is not a repository makes
    every such `git` call fail, so the header says only the release.
    """
    env = dict(os.environ)
    env["GIT_DIR"] = str(workdir / "no-git-repository")
    env["GIT_CEILING_DIRECTORIES"] = str(workdir)
    return env


def wait_answering(
    process: subprocess.Popen[bytes],
    url: str,
    timeout_s: float,
    what: str,
    tail: Callable[[], str],
    verify: Any = True,
) -> None:
    """Poll `url` until it answers 200: a server we started (Synapse, Dendrite, the nginx in
    front) is ready. HarnessError when it exits first (with `tail()` of its log), does not
    answer in time, or the run is being stopped meanwhile."""
    deadline = time.monotonic() + timeout_s
    # one client for the whole poll: a client per attempt builds an SSL context each time,
    # about 20 ms of CPU taken from the server that is starting beside it
    with httpx.Client(timeout=1.0, verify=verify) as http:
        while time.monotonic() < deadline:
            if stopping.requested():  # the run is stopping: no need to wait for it
                raise HarnessError(f"the run was stopped while {what} was starting")
            if process.poll() is not None:
                raise HarnessError(
                    f"{what} exited during start-up (code {process.returncode}):\n" + tail()
                )
            with contextlib.suppress(httpx.TransportError):
                if http.get(url).status_code == 200:
                    return
            time.sleep(0.05)
    raise HarnessError(f"{what} did not answer {url} within {timeout_s:g}s")


def end_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Ask a server we started to stop (`sig`), and kill it if it has not within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class EmbeddedSynapse:
    """Owns one Synapse process and its temporary folder; `stop` is safe to call twice.

    With `delegated_to=(endpoint, secret)` it runs in `matrix_authentication_service` mode;
    `shared_secret` is then that secret (so it is scrubbed from the kept logs).
    """

    def __init__(
        self,
        *,
        server_name: str = "localhost",
        python: str | None = None,
        log_dir: Path | None = None,
        startup_timeout_s: float = 90.0,
        extra_config: dict[str, Any] | None = None,
        delegated_to: tuple[str, str] | None = None,
        adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.extra_config = extra_config or {}
        self.adjust = adjust  # a variant of the whole configuration (synapse-stock)
        self.delegated_to = delegated_to
        self.server_name = server_name
        self.python = python or sys.executable
        self.log_dir = log_dir
        self.startup_timeout_s = startup_timeout_s
        self.shared_secret = delegated_to[1] if delegated_to else secrets.token_urlsafe(24)
        self.workdir = Path(tempfile.mkdtemp(prefix="mxconform-synapse-", dir=memory_dir()))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        # a second stop signal ends the process at once: Synapse and its state go with it
        self._forget_kill = stopping.on_hard_stop(self._kill)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    def start(self) -> EmbeddedSynapse:
        started = time.perf_counter()
        self.port = free_port()
        (self.workdir / "signing.key").write_text(signing_key_line())
        if self.delegated_to is None:
            config = synapse_config(
                self.workdir, self.port, self.server_name, self.shared_secret, self.log_path
            )
        else:
            config = delegated_synapse_config(
                self.workdir,
                self.port,
                self.server_name,
                self.delegated_to[0],
                self.shared_secret,
                self.log_path,
            )
        config.update(self.extra_config)  # variants for tests (e.g. tokens required)
        if self.adjust is not None:
            config = self.adjust(config)
        config_path = self.workdir / "homeserver.yaml"
        config_path.write_text(yaml.safe_dump(config))
        console = open(self.workdir / "console.log", "wb")  # noqa: SIM115 - owned by the child
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", "synapse.app.homeserver", "-c", str(config_path)],
                cwd=self.workdir,  # a temp folder: never our checkout
                env=synapse_env(self.workdir),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                # its own process group: a Ctrl-C to the terminal reaches the harness only,
                # which stops Synapse after the test accounts are cleaned up
                start_new_session=True,
            )
        except OSError as exc:
            raise HarnessError(f"could not start Synapse with {self.python}: {exc}") from exc
        finally:
            console.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        url = f"{self.base_url}/_matrix/client/versions"
        wait_answering(self.process, url, self.startup_timeout_s, "Synapse", self._tail)

    def _tail(self, lines: int = 25) -> str:
        text = ""
        for name in ("console.log", "homeserver.log"):
            with contextlib.suppress(OSError):
                text += (self.workdir / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self) -> None:
        """A hard stop's: no grace, no log kept (quick, and takes no lock)."""
        process = self.process
        if process is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait(timeout=2)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self, scrub: Any = None) -> None:
        """Stop the process, keep its log (scrubbed) in log_dir, remove the temp folder."""
        end_process(self.process)
        self.process = None
        if self.log_dir is not None and self.workdir.exists():
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for name in ("homeserver.log", "console.log"):
                source = self.workdir / name
                if source.exists():
                    text = source.read_text(errors="replace")
                    text = text.replace(self.shared_secret, "<redacted:shared_secret>")
                    if scrub is not None:
                        text = scrub(text)
                    (self.log_dir / f"synapse-{name}").write_text(text)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._forget_kill()

    def __enter__(self) -> EmbeddedSynapse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def synapse_available(python: str | None = None) -> bool:
    if python is None or python == sys.executable:
        import importlib.util

        return importlib.util.find_spec("synapse") is not None
    return os.path.exists(python)
