"""Server lifecycle: turn a declared target into a reachable one (starting it if embedded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .client import HarnessError
from .embedded.synapse import EmbeddedSynapse, synapse_available
from .targets import SynapseSharedSecret, Target


class Stoppable(Protocol):
    startup_s: float | None

    def stop(self, scrub: Callable[[str], str] | None = None) -> None: ...


@dataclass(frozen=True)
class AdminAccess:
    """Credentials for a MAS-style admin API: client credentials giving `urn:mas:admin`."""

    url: str  # base URL under which /api/admin/v1 and /oauth2/token live
    client_id: str
    client_secret: str


@dataclass
class RunningTarget:
    """A target that can be talked to: where it is, and the secrets to provision on it."""

    target: Target
    base_url: str
    server_name: str
    shared_secret: str | None
    embedded: Stoppable | None = None
    oauth_admin: AdminAccess | None = None

    @property
    def name(self) -> str:
        return self.target.name

    def stop(self, scrub: Callable[[str], str] | None = None) -> None:
        if self.embedded is not None:
            self.embedded.stop(scrub)


def start_target(target: Target, log_dir: Path | None = None) -> RunningTarget:
    """Start an embedded target (and wait for it), or resolve a remote one's secrets."""
    where = f"target {target.name}"
    if target.embedded == "synapse-legacy":
        if not synapse_available(target.synapse_python):
            raise HarnessError(
                f"{where}: Synapse is not installed; install the embedded extra "
                "(pip install 'mxconform[embedded]') or set synapse_python"
            )
        server = EmbeddedSynapse(
            server_name=target.server_name or "localhost",
            python=target.synapse_python,
            log_dir=log_dir,
        ).start()
        return RunningTarget(
            target, server.base_url, server.server_name, server.shared_secret, server
        )
    assert target.base_url is not None and target.server_name is not None
    secret = None
    if isinstance(target.provisioning, SynapseSharedSecret) and target.provisioning.shared_secret:
        secret = target.provisioning.shared_secret.resolve(f"{where}: provisioning.shared_secret")
    return RunningTarget(target, target.base_url, target.server_name, secret)
