"""Work started when a target's first check runs, so that its waiting overlaps other checks.

Two kinds: accounts registered ahead for the checks that need one of their own
(`fresh_user`), and logins whose access token must expire before their check can judge it
(`expiring_login`). Without this, each check of the second kind sleeps out a token's
lifetime on its own, and every `fresh_user` costs a registration in front of its check.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mxconform.errors import from_task
from mxconform.http.client import MatrixClient
from mxconform.http.evidence import Exchange, Recorder, shared_copies
from mxconform.legacy import api as legacy
from mxconform.legacy.api import Session
from mxconform.legacy.users import LegacyUsers
from mxconform.plugin.checks import API_MARKER, CHECK_MARKER, gating_requirements
from mxconform.spec import requirements
from mxconform.spec.matchers import body
from mxconform.targets.config import Target


@dataclass
class EarlyLogin:
    """A fresh user's login with `refresh_token: true`, made ahead of its check."""

    user: Session
    response: httpx.Response
    answered_at: float  # time.monotonic() when the login was answered
    exchanges: list[Exchange] = field(default_factory=list)
    taken: int = 0  # by how many checks: the second shows the exchanges as shared

    def evidence(self) -> list[Exchange]:
        """The login's exchanges for the check taking it now."""
        self.taken += 1
        return self.exchanges if self.taken == 1 else shared_copies(self.exchanges)

    def data(self) -> Any:
        return body(self.response)

    async def wait(self, seconds: float) -> None:
        """Sleep until `seconds` after the login was answered (no longer than that)."""
        left = self.answered_at + seconds - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


class EarlyLogins:
    """The expiring logins of one target, by the id of the check that will use each (both
    transports of a check use the same one)."""

    def __init__(
        self,
        users: LegacyUsers,
        client: MatrixClient,
        fresh: int = 0,
        expiring: list[str] | None = None,
    ) -> None:
        self._users = users
        self._client = client
        self._fresh = fresh
        self._expiring = expiring or []
        self._tasks: dict[str, asyncio.Future[EarlyLogin]] = {}

    def begin(self) -> None:
        """Start the planned work (inside the run's event loop): the expiring logins first,
        each on an account registered ahead, then the accounts of `fresh_user` checks."""
        self._users.prefill(self._client, len(self._expiring) + self._fresh)
        for check_id in self._expiring:
            self._tasks[check_id] = asyncio.ensure_future(self._login())

    async def _login(self) -> EarlyLogin:
        user = await self._users.fresh(self._client)
        recorder = Recorder()
        resp = await legacy.login_password(
            self._client.with_recorder(recorder),
            user.user_id,
            user.password,
            refresh_token=True,
        )
        return EarlyLogin(user, resp, time.monotonic(), recorder.exchanges)

    async def take(self, check_id: str) -> EarlyLogin:
        """The login started for this check, or one made now (a check nobody planned for);
        kept for the check's other transport."""
        task = self._tasks.get(check_id)
        if task is None:
            task = self._tasks[check_id] = asyncio.ensure_future(self._login())
        return await from_task(asyncio.shield(task))

    async def settle(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def planned(session: pytest.Session, target: Target, version: Any) -> list[pytest.Item]:
    """The selected checks of `target` that will run: their API offered and their version
    gate open (they may still SKIP for reasons found only while running)."""
    found = []
    for item in session.items:
        if item.get_closest_marker(CHECK_MARKER) is None:
            continue
        params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("target") != target.name:
            continue
        marker = item.get_closest_marker(API_MARKER)
        if marker is not None and not set(marker.args) & set(target.auth):
            continue
        if version is not None and not all(
            requirements.get(rid).applies_to(version) for rid in gating_requirements(item)
        ):
            continue
        found.append(item)
    return found


def uses(items: list[pytest.Item], fixture: str) -> list[pytest.Item]:
    return [item for item in items if fixture in getattr(item, "fixturenames", ())]
