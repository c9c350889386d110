"""`dendrite`: a real Dendrite (matrix-org/dendrite, built from the Go module proxy) started
as a subprocess on loopback, the second homeserver implementation the suites are run against.

Its configuration is Dendrite's own (`generate-keys`, then `generate-config`), changed only
where a test server differs from a deployment: SQLite in a throwaway folder, in-memory
JetStream, no key servers to ask, a loopback listener, a registration shared secret (Dendrite serves
Synapse's `/_synapse/admin/v1/register`), cheap bcrypt, rate limiting relaxed, and open
registration (`-really-enable-open-registration`) for the checks that register accounts.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mxconform.errors import HarnessError
from mxconform.targets.embedded.dendrite_builds import Build
from mxconform.targets.embedded.synapse import (
    _die_with_parent,
    end_process,
    free_port,
    memory_dir,
    wait_answering,
)

# Dendrite's limiter counts requests in flight per user or address ("slots"), each freed
# `cooloff_ms` after its request: 9999 slots freed at once never refuse a test run.
RELAXED_RATE_LIMITING = {"enabled": True, "threshold": 9999, "cooloff_ms": 1}
BCRYPT_MIN_COST = 4  # golang.org/x/crypto/bcrypt.MinCost


def dendrite_overrides(
    base: dict[str, Any], workdir: Path, shared_secret: str, open_registration: bool
) -> dict[str, Any]:
    """`generate-config`'s output made a throwaway test server (see the module docstring)."""
    config = dict(base)
    glob = dict(config.get("global") or {})
    glob["private_key"] = str(workdir / "matrix_key.pem")
    # Federation stays on (nothing federates with a loopback server): its version endpoint
    # is where the harness reads what software answers.
    glob["trusted_third_party_id_servers"] = []
    glob["jetstream"] = {**(glob.get("jetstream") or {}), "in_memory": True}
    glob["jetstream"]["storage_path"] = str(workdir)
    glob["report_stats"] = {"enabled": False}
    config["global"] = glob
    client = dict(config.get("client_api") or {})
    client["registration_disabled"] = not open_registration
    client["registration_shared_secret"] = shared_secret
    client["rate_limiting"] = dict(RELAXED_RATE_LIMITING)
    config["client_api"] = client
    federation = dict(config.get("federation_api") or {})
    federation["key_perspectives"] = []  # never ask matrix.org for keys
    config["federation_api"] = federation
    user = dict(config.get("user_api") or {})
    user["bcrypt_cost"] = BCRYPT_MIN_COST
    config["user_api"] = user
    sync = dict(config.get("sync_api") or {})
    sync["search"] = {**(sync.get("search") or {}), "enabled": False}
    config["sync_api"] = sync
    config["logging"] = [{"type": "std", "level": "info"}]  # into console.log
    return config


class EmbeddedDendrite:
    """Owns one Dendrite process and its temporary folder; `stop` is safe to call twice."""

    def __init__(
        self,
        build: Build,
        *,
        server_name: str = "localhost",
        log_dir: Path | None = None,
        open_registration: bool = True,
        startup_timeout_s: float = 90.0,
        adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.build = build
        self.server_name = server_name
        self.log_dir = log_dir
        self.open_registration = open_registration
        self.startup_timeout_s = startup_timeout_s
        self.adjust = adjust  # a variant of the whole configuration (tests)
        self.shared_secret = secrets.token_urlsafe(24)
        self.workdir = Path(tempfile.mkdtemp(prefix="mxconform-dendrite-", dir=memory_dir()))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return self.build.version

    def _tool(self, *argv: str) -> str:
        """One of the build's helper commands, in the work folder; its stdout."""
        try:
            done = subprocess.run(
                [str(self.build.command(argv[0])), *argv[1:]],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HarnessError(f"Dendrite's {argv[0]} could not run: {exc}") from None
        if done.returncode != 0:
            raise HarnessError(f"Dendrite's {argv[0]} failed:\n{done.stderr.strip()[-800:]}")
        return done.stdout

    def configure(self) -> Path:
        """generate-keys and generate-config, then the test server's overrides."""
        self._tool("generate-keys", "-private-key", str(self.workdir / "matrix_key.pem"))
        generated = self._tool(
            "generate-config", "-dir", str(self.workdir), "-server", self.server_name
        )
        base = yaml.safe_load(generated)
        if not isinstance(base, dict):
            raise HarnessError("Dendrite's generate-config printed no configuration")
        config = dendrite_overrides(base, self.workdir, self.shared_secret, self.open_registration)
        if self.adjust is not None:
            config = self.adjust(config)
        path = self.workdir / "dendrite.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> EmbeddedDendrite:
        started = time.perf_counter()
        config_path = self.configure()
        self.port = free_port()
        argv = [
            str(self.build.command("dendrite")),
            "-config",
            str(config_path),
            "-http-bind-address",
            f"127.0.0.1:{self.port}",
        ]
        if self.open_registration:
            argv.append("-really-enable-open-registration")
        console = open(self.workdir / "console.log", "wb")  # noqa: SIM115 - owned by the child
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                start_new_session=True,  # a Ctrl-C reaches the harness, which stops it
            )
        except OSError as exc:
            raise HarnessError(f"could not start Dendrite: {exc}") from exc
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
        wait_answering(self.process, url, self.startup_timeout_s, "Dendrite", self._tail)

    def _tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            text = (self.workdir / "console.log").read_text(errors="replace")
            text = text.replace(self.shared_secret, "<redacted:shared_secret>")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, scrub: Any = None) -> None:
        """Stop the process, keep its log (scrubbed) in log_dir, remove the temp folder."""
        end_process(self.process)
        self.process = None
        source = self.workdir / "console.log"
        if self.log_dir is not None and source.exists():
            self.log_dir.mkdir(parents=True, exist_ok=True)
            text = source.read_text(errors="replace")
            text = text.replace(self.shared_secret, "<redacted:shared_secret>")
            (self.log_dir / "dendrite-console.log").write_text(scrub(text) if scrub else text)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedDendrite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
