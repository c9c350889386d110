"""Server lifecycle: turn a declared target into a reachable one (starting it if embedded)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from mxconform.errors import HarnessError
from mxconform.targets.embedded import dendrite_builds, releases
from mxconform.targets.embedded.dendrite import EmbeddedDendrite
from mxconform.targets.embedded.stock import StockSynapse, stock_overrides
from mxconform.targets.embedded.synapse import EmbeddedSynapse, synapse_available

if TYPE_CHECKING:
    from .embedded.authserver import EmbeddedAuthServer
from mxconform.targets.config import SynapseSharedSecret, Target


class Stoppable(Protocol):
    startup_s: float | None

    def stop(self, scrub: Callable[[str], str] | None = None) -> None: ...


@dataclass(frozen=True)
class AdminAccess:
    """Credentials for a MAS-style admin API: client credentials giving `urn:mas:admin`."""

    url: str  # base URL under which /api/admin/v1 and /oauth2/token live
    client_id: str
    client_secret: str = field(repr=False)  # never in a repr (tracebacks)


@dataclass
class RunningTarget:
    """A target that can be talked to: where it is, and the secrets to provision on it."""

    target: Target
    base_url: str
    server_name: str
    shared_secret: str | None = field(repr=False)  # never in a repr (tracebacks)
    embedded: Stoppable | None = None
    oauth_admin: AdminAccess | None = None
    # The issuer of the OAuth server an embedded target brings: its origin may receive
    # credentials, as if servers.yaml named it in oauth.issuer.
    oauth_issuer: str | None = None
    # Other secrets the target holds (e.g. Synapse's delegation secret): scrubbed by value.
    held_secrets: tuple[str, ...] = field(default=(), repr=False)
    # The exact Synapse release an embedded target runs (provenance), when known.
    synapse_version: str | None = None
    # A CA the harness made for this run (the embedded OAuth server's https face): trusted
    # for this target only, besides the target's own `tls` settings.
    ca_file: Path | None = None
    # Where the admin API and shared-secret registration answer when not at base_url.
    admin_url: str | None = None

    @property
    def name(self) -> str:
        return self.target.name

    def stop(self, scrub: Callable[[str], str] | None = None) -> None:
        if self.embedded is not None:
            self.embedded.stop(scrub)


class DelegatedPair:
    """Synapse in `matrix_authentication_service` mode and the OAuth server it trusts.

    Stopped together: Synapse first (it calls the server), then the server. The shared
    secret and the admin client secret are scrubbed from both kept logs.
    """

    def __init__(self, synapse: EmbeddedSynapse, authserver: EmbeddedAuthServer) -> None:
        self.synapse = synapse
        self.authserver = authserver
        self.startup_s: float | None = None
        self._secrets: list[str] = []

    def keep_secret(self, *values: str) -> None:
        self._secrets.extend(v for v in values if v)

    def _scrub(self, scrub: Callable[[str], str] | None) -> Callable[[str], str]:
        def clean(text: str) -> str:
            for value in self._secrets:
                text = text.replace(value, "<redacted:secret>")
            return scrub(text) if scrub is not None else text

        return clean

    def stop(self, scrub: Callable[[str], str] | None = None) -> None:
        clean = self._scrub(scrub)
        try:
            self.synapse.stop(clean)
        finally:
            self.authserver.stop(clean)


def start_delegated(
    target: Target, log_dir: Path | None = None, python: str | None = None
) -> RunningTarget:
    """The `synapse-oauth` target: our OAuth server first (Synapse's config needs its URL),
    then Synapse delegated to it, then the server learns where Synapse is."""
    try:  # Flask and bcrypt are needed only when this target runs
        from .embedded.authserver import EmbeddedAuthServer
    except ImportError as exc:
        raise HarnessError(
            f"target {target.name}: the embedded OAuth server needs the embedded extra "
            f"(pip install 'mxconform[embedded]'): {exc}"
        ) from exc

    started = time.perf_counter()
    server_name = target.server_name or "localhost"
    shared_secret = secrets.token_urlsafe(32)
    admin_id, admin_secret = "mxconform-admin", secrets.token_urlsafe(32)
    authserver = EmbeddedAuthServer(
        shared_secret=shared_secret,
        server_name=server_name,
        admin_client_id=admin_id,
        admin_client_secret=admin_secret,
        device_code_interval_s=1,  # MAS uses 5 s; 1 s keeps the device-grant check quick
        log_dir=log_dir,
        public_tls=True,  # an https issuer, as a deployed MAS has; Synapse keeps plain http
    ).start()
    synapse = EmbeddedSynapse(
        server_name=server_name,
        python=python,
        log_dir=log_dir,
        delegated_to=(authserver.internal_url + "/", shared_secret),
    )
    pair = DelegatedPair(synapse, authserver)
    pair.keep_secret(shared_secret, admin_secret)
    try:
        synapse.start()
        authserver.synapse_url = synapse.base_url
    except BaseException:
        pair.stop()
        raise
    pair.startup_s = time.perf_counter() - started
    return RunningTarget(
        target,
        synapse.base_url,
        server_name,
        None,
        pair,
        oauth_admin=AdminAccess(authserver.base_url, admin_id, admin_secret),
        oauth_issuer=authserver.issuer,
        held_secrets=(shared_secret,),
        ca_file=authserver.ca_file,
    )


def synapse_python(target: Target, offline: bool = False) -> tuple[str | None, str | None]:
    """The interpreter that runs the target's Synapse, and the exact release it imports.

    `synapse_version` is resolved (and installed unless `offline`) in the release cache;
    otherwise `synapse_python` or the harness's own interpreter is asked for its release.
    """
    where = f"target {target.name}"
    if target.synapse_version is not None:
        try:
            release = releases.ensure(target.synapse_version, offline=offline)
        except HarnessError as exc:
            raise HarnessError(f"{where}: {exc}") from None
        why = releases.oauth_problem(release.version)
        if target.embedded == "synapse-oauth" and why:
            raise HarnessError(f"{where}: {why}")
        return str(release.python), release.version
    if not synapse_available(target.synapse_python):
        raise HarnessError(
            f"{where}: Synapse is not installed; install the embedded extra "
            "(pip install 'mxconform[embedded]'), or set synapse_version or synapse_python"
        )
    if target.synapse_python is None:
        try:
            return None, importlib.metadata.version("matrix-synapse")
        except importlib.metadata.PackageNotFoundError:
            return None, None
    return target.synapse_python, releases.installed_version(target.synapse_python)


def start_target(
    target: Target, log_dir: Path | None = None, *, offline: bool = False
) -> RunningTarget:
    """Start an embedded target (and wait for it), or resolve a remote one's secrets.

    `offline`: a `synapse_version` is looked up in the release cache only, never installed.
    """
    where = f"target {target.name}"
    if target.embedded == "dendrite":
        return start_dendrite(target, log_dir, offline)
    if target.embedded is not None:
        python, version = synapse_python(target, offline)
        if target.embedded == "synapse-oauth":
            running = start_delegated(target, log_dir, python)
        elif target.embedded == "synapse-stock":
            running = start_stock(target, log_dir, python)
        else:
            server = EmbeddedSynapse(
                server_name=target.server_name or "localhost", python=python, log_dir=log_dir
            ).start()
            running = RunningTarget(
                target, server.base_url, server.server_name, server.shared_secret, server
            )
        running.synapse_version = version
        return running
    assert target.base_url is not None and target.server_name is not None
    secret = None
    if isinstance(target.provisioning, SynapseSharedSecret) and target.provisioning.shared_secret:
        secret = target.provisioning.shared_secret.resolve(f"{where}: provisioning.shared_secret")
    return RunningTarget(
        target, target.base_url, target.server_name, secret, admin_url=target.admin_url
    )


def start_dendrite(target: Target, log_dir: Path | None, offline: bool) -> RunningTarget:
    """The `dendrite` target: its build from the cache (built first unless `offline`), then a
    Dendrite on loopback with open registration and its own shared secret."""
    version = target.dendrite_version or dendrite_builds.DEFAULT_VERSION
    try:
        build = dendrite_builds.ensure(version, offline=offline)
    except HarnessError as exc:
        raise HarnessError(f"target {target.name}: {exc}") from None
    server = EmbeddedDendrite(
        build, server_name=target.server_name or "localhost", log_dir=log_dir
    ).start()
    return RunningTarget(target, server.base_url, server.server_name, server.shared_secret, server)


def start_stock(target: Target, log_dir: Path | None, python: str | None) -> RunningTarget:
    """Synapse at stock settings behind nginx: the public URL is nginx's (https, the run's
    CA), the admin API is Synapse's own listener."""
    scale = target.synapse_rate_scale or 1.0
    synapse = EmbeddedSynapse(
        server_name=target.server_name or "localhost",
        python=python,
        log_dir=log_dir,
        adjust=lambda config: stock_overrides(config, scale),
    )
    stock = StockSynapse(synapse).start()
    return RunningTarget(
        target,
        stock.base_url,
        synapse.server_name,
        synapse.shared_secret,
        stock,
        ca_file=stock.ca_file,
        admin_url=stock.admin_url,
    )


class Starter(threading.Thread):
    """Starts targets one after another on a thread of its own, each into its future, then
    stays alive until released: Linux ties the kernel's stop-with-parent signal
    (PR_SET_PDEATHSIG, see `embedded.synapse`) to the thread that spawned Synapse, so that
    thread must not end while Synapse is meant to run."""

    def __init__(self, starts: list[Callable[[], RunningTarget]]) -> None:
        super().__init__(name="mxconform-start", daemon=True)
        self._starts = starts
        self.futures: list[Future[RunningTarget]] = [Future() for _ in starts]
        self._released = threading.Event()

    def run(self) -> None:
        for future, start in zip(self.futures, self._starts, strict=True):
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to whoever waits for the target
                future.set_exception(exc)
        self._released.wait()

    def release(self) -> None:
        self._released.set()


# The longest a start under way is waited for at the end of a run: Synapse's start-up
# time-out, with room. Past it the start is left to the hard stop (`stopping`).
SETTLE_S = 120.0


def settled(starting: Future[RunningTarget], timeout_s: float = SETTLE_S) -> RunningTarget | None:
    """At the end of a run: a start not begun is called off; one under way is waited for,
    so that it can be stopped (None if it failed, or is still not done after `timeout_s`:
    nothing then to stop here)."""
    if starting.cancel():
        return None
    try:
        return starting.result(timeout=timeout_s)
    except Exception:
        return None


# A target another process started and shares with this one (`mxconform run --jobs` giving
# one embedded target's checks to several processes). The environment names it; where it is
# and the secrets to use it come on stdin once it answers: never in a file, and the child
# imports and collects its checks meanwhile.
ATTACH_VAR = "MXCONFORM_ATTACH"
_handed: dict[str, RunningTarget] = {}
_handover: list[TextIO] = []


def keep_handover_stream() -> None:
    """Called before pytest starts (it swaps stdin for /dev/null while it captures): keep
    a handle on the stdin the parent writes its line to."""
    if os.environ.get(ATTACH_VAR) and not _handover:
        _handover.append(os.fdopen(os.dup(0), "r"))


class _Attached:
    """An embedded target started by the parent process: it stops it, not this one."""

    def __init__(self, startup_s: float | None) -> None:
        self.startup_s = startup_s

    def stop(self, scrub: Callable[[str], str] | None = None) -> None:
        return None


def attachment(running: RunningTarget | None, error: str | None = None) -> str:
    """The line a child reads on stdin to attach to the running target (see `attached`), or
    why there is none."""
    if running is None:
        return json.dumps({"error": error or "the target was not started"}) + "\n"
    admin = running.oauth_admin
    admin_json = (
        None
        if admin is None
        else {"url": admin.url, "client_id": admin.client_id, "secret": admin.client_secret}
    )
    return (
        json.dumps(
            {
                "base_url": running.base_url,
                "server_name": running.server_name,
                "shared_secret": running.shared_secret,
                "oauth_admin": admin_json,
                "oauth_issuer": running.oauth_issuer,
                "held_secrets": list(running.held_secrets),
                "synapse_version": running.synapse_version,
                "ca_file": str(running.ca_file) if running.ca_file else None,
                "admin_url": running.admin_url,
                "startup_s": running.embedded.startup_s if running.embedded else None,
            }
        )
        + "\n"
    )


def attached(target: Target) -> RunningTarget | None:
    """This target as the parent process started it, when it hands it over (waiting for
    the parent's line on stdin); None when this process is to start it itself."""
    if os.environ.get(ATTACH_VAR) != target.name:
        return None
    if target.name not in _handed:
        line = (_handover[0] if _handover else sys.stdin).readline()
        if not line:
            raise HarnessError("the parent process ended before it could start the target")
        data = json.loads(line)
        if data.get("error"):
            raise HarnessError(str(data["error"]))
        admin = data.get("oauth_admin")
        _handed[target.name] = RunningTarget(
            target,
            data["base_url"],
            data["server_name"],
            data.get("shared_secret"),
            _Attached(data.get("startup_s")),
            oauth_admin=None
            if admin is None
            else AdminAccess(admin["url"], admin["client_id"], admin["secret"]),
            oauth_issuer=data.get("oauth_issuer"),
            held_secrets=tuple(data.get("held_secrets") or ()),
            synapse_version=data.get("synapse_version"),
            ca_file=Path(data["ca_file"]) if data.get("ca_file") else None,
            admin_url=data.get("admin_url"),
        )
    return _handed[target.name]
