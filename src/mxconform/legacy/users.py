"""Auth drivers for the legacy API: how the harness obtains test users and their tokens.

Users are always created by the harness, with run-unique names, and cleaned up at the end;
nothing here touches an account the harness did not create.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from mxconform.errors import HarnessError, from_task
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.admin import SynapseAdmin
from mxconform.legacy.api import CLIENT_V3, Session
from mxconform.legacy.cleanup import AccountCleanup
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.legacy.ledger import Ledger
from mxconform.legacy.registration import register_shared_secret, register_uia, session_from
from mxconform.spec.matchers import body
from mxconform.targets.config import (
    OpenRegistration,
    RegistrationToken,
    StaticUsers,
    SynapseSharedSecret,
    Target,
)


class UserNames:
    """Run-unique localparts: time + randomness, so repeated runs never collide."""

    def __init__(self) -> None:
        self._run = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(3)
        self._seq = itertools.count(1)

    @property
    def run_id(self) -> str:
        return self._run

    def next(self, purpose: str) -> str:
        return f"mxc-{self._run}-{purpose}-{next(self._seq)}"


class LegacyUsers(AccountCleanup):
    """Creates test users on one target through its declared provisioning, and cleans up."""

    def __init__(
        self,
        target: Target,
        shared_secret: str | None,
        secrets_: SecretRegistry,
        names: UserNames,
        server_name: str = "localhost",
        ledger: Ledger | None = None,
        admin_url: str | None = None,
    ) -> None:
        self.server_name = server_name
        # Every account written down before it is asked for (legacy/ledger.py), when the
        # target's accounts are deactivated rather than discarded with the server.
        self.ledger = ledger
        # Where the admin API and shared-secret registration answer (the target's admin_url
        # when they are not public), else the client's base URL.
        self.admin_url = admin_url
        self._static_turn = 0
        self._static_devices: list[Session] = []
        # A given account's devices when the run first logged in: the only ones it keeps.
        self._found_devices: dict[str, set[str | None]] = {}
        self._passwords: dict[str, str] = {}
        self._pending: dict[str, list[str]] = {}
        self._deactivated: set[str] = set()
        self._may_be_deactivated: set[str] = set()
        self._may_be_registered: dict[str, str] = {}  # user ID -> password (see registration)
        self._target = target
        self._shared_secret = shared_secret
        self._secrets = secrets_
        self._names = names
        self._sessions: list[Session] = []
        self._spare: list[asyncio.Future[Session]] = []  # registered ahead (prefill)
        self._in_flight: set[asyncio.Future[Session]] = set()  # registrations not yet answered
        self._admin: SynapseAdmin | None = None
        self._admin_lock = asyncio.Lock()
        self._admin_user: str | None = None  # the admin account the run registered, if any
        self.housekeeping = Housekeeping()

    def note_login(self, data: Any) -> None:
        """Every device any check logs in on a given (static) account is logged out at the
        end, so the account is left as it was found."""
        if not isinstance(self._target.provisioning, StaticUsers) or not isinstance(data, dict):
            return
        given = {u.user_id for u in self._target.provisioning.users}
        if data.get("user_id") in given and isinstance(data.get("access_token"), str):
            self._static_devices.append(
                Session(data["user_id"], data["access_token"], str(data.get("device_id")), "")
            )

    @property
    def may_destroy(self) -> bool:
        """Whether checks may change or destroy accounts: never for given (static) users."""
        return not isinstance(self._target.provisioning, StaticUsers)

    async def create(
        self, client: MatrixClient, purpose: str, password: str | None = None
    ) -> Session:
        """A user for a check: newly registered (with `password` when the check needs a
        given one), or a new device of a given static user."""
        method = self._target.provisioning
        where = f"target {self._target.name}: provisioning"
        if isinstance(method, StaticUsers):
            given = method.users[self._static_turn % len(method.users)]
            self._static_turn += 1
            password = given.password.resolve(f"{where}.users")
            self._secrets.add(password, "password")
            session = await self.login(
                client, Session(given.user_id, "", "", password), f"setup: device for {purpose}"
            )
            if given.user_id not in self._found_devices:  # the account as it was given
                listed = await client.request(
                    "GET",
                    f"{CLIENT_V3}/devices",
                    credentials=bearer_header(session.access_token),
                    note="setup: the given account's devices before the run",
                )
                found = {d.get("device_id") for d in (body(listed) or {}).get("devices", [])}
                self._found_devices[given.user_id] = found - {session.device_id}
            return session
        return await self._tracked(self._register(client, purpose, password))

    async def _tracked(self, registering: Coroutine[Any, Any, Session]) -> Session:
        """A registration as a task of its own, which `settle` waits for: a run stopped
        mid-check leaves the check's coroutine suspended, but the account it was registering
        is still recorded (inside the task) before cleanup lists the accounts."""
        task = asyncio.ensure_future(registering)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await from_task(asyncio.shield(task))

    async def _register(
        self, client: MatrixClient, purpose: str, password: str | None = None
    ) -> Session:
        method = self._target.provisioning
        where = f"target {self._target.name}: provisioning"
        username = self._names.next(purpose)
        if password is None:
            password = self.new_password()
        else:
            self._secrets.add(password, "password")
        self._write_down(username, password)
        if isinstance(method, OpenRegistration):
            session = await register_uia(client, username, password, None)
        elif isinstance(method, RegistrationToken):
            token = method.token.resolve(f"{where}.token")
            self._secrets.add(token, "token")
            session = await register_uia(client, username, password, token)
        elif isinstance(method, SynapseSharedSecret):
            if self._shared_secret is None:
                raise HarnessError("synapse-shared-secret provisioning has no secret")
            self._secrets.add(self._shared_secret, "shared_secret")
            session = await register_shared_secret(
                client, self._shared_secret, username, password, at=self.admin_url
            )
        else:  # pragma: no cover - pydantic restricts the methods
            raise HarnessError(f"unsupported provisioning {method}")
        self._secrets.add(session.access_token, "access_token")
        self.housekeeping.users_created.append(session.user_id)
        self._sessions.append(session)
        return session

    def prefill(self, client: MatrixClient, count: int) -> None:
        """Start registering `count` users for checks to come, a bounded number at a time,
        so that provisioning overlaps the checks instead of preceding each of them. Only
        for accounts the run creates; a given account's devices are made when asked for."""
        if count <= 0 or not self.may_destroy:
            return
        gate = asyncio.Semaphore(self._target.housekeeping_concurrency)

        async def one() -> Session:
            async with gate:
                return await self.create(client, "check")

        self._spare.extend(asyncio.ensure_future(one()) for _ in range(count))

    async def fresh(self, client: MatrixClient) -> Session:
        """A user no other check has touched: one registered ahead if any is left, else a
        new one. A registration that failed ahead fails here, in the check that needed it."""
        if self._spare:
            return await from_task(self._spare.pop(0))
        return await self.create(client, "check")

    async def settle(self) -> None:
        """Wait for registrations still in flight, so that cleanup sees every account."""
        spare, self._spare = self._spare, []
        waiting = [*spare, *self._in_flight]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    def owns(self, user_id: str) -> bool:
        """Whether the run created this account (given accounts are never the run's)."""
        return self.may_destroy and (
            user_id in self.housekeeping.users_created or user_id in self._may_be_registered
        )

    async def admin(self, client: MatrixClient) -> SynapseAdmin | None:
        """An administrator for the checks that lock, suspend or deactivate an account: the
        target's `admin_token`, else an admin account the run registers itself through
        shared-secret registration; None when the deployment gives neither."""
        async with self._admin_lock:
            if self._admin is None:
                self._admin = await self._make_admin(client)
            return self._admin

    async def _make_admin(self, client: MatrixClient) -> SynapseAdmin | None:
        where = f"target {self._target.name}"
        if self._target.admin_token is not None:
            token = self._target.admin_token.resolve(f"{where}: admin_token")
            self._secrets.add(token, "access_token")
            return SynapseAdmin(token, self.owns, "the target's admin_token", at=self.admin_url)
        method = self._target.provisioning
        if not isinstance(method, SynapseSharedSecret) or self._shared_secret is None:
            return None
        session = await self._tracked(self._register_admin(client, self._shared_secret))
        return SynapseAdmin(
            session.access_token, self.owns, "an admin account the run made", at=self.admin_url
        )

    async def _register_admin(self, client: MatrixClient, shared_secret: str) -> Session:
        username = self._names.next("admin")
        password = self.new_password()
        self._write_down(username, password, admin=True)
        session = await register_shared_secret(
            client, shared_secret, username, password, admin=True, at=self.admin_url
        )
        self._secrets.add(session.access_token, "access_token")
        self.housekeeping.users_created.append(session.user_id)
        self._sessions.append(session)
        self._admin_user = session.user_id
        return session

    def unused_name(self, purpose: str) -> str:
        """A run-unique localpart nobody has registered (yet)."""
        return self._names.next(purpose)

    def registration(self, purpose: str) -> tuple[str, str]:
        """A run-unique name and a new password for a check that registers an account
        itself. Both are remembered: if the run stops before the check can `adopt` the
        account, cleanup logs in with them and deactivates whatever was made."""
        name, password = self.unused_name(purpose), self.new_password()
        self._may_be_registered[f"@{name}:{self.server_name}"] = password
        self._write_down(name, password)
        return name, password

    def _write_down(self, localpart: str, password: str, admin: bool = False) -> None:
        """Into the ledger before the server is asked: a run killed while the request is in
        flight still leaves the account on record for `mxconform cleanup`."""
        if self.ledger is not None:
            self.ledger.account(f"@{localpart}:{self.server_name}", password, admin=admin)

    def new_password(self, length: int | None = None) -> str:
        """A new random password (registered as a secret), `length` characters if given."""
        password = secrets.token_urlsafe(max(18, length or 0))[: length or None]
        self._secrets.add(password, "password")
        return password

    def adopt(self, user_id: str, password: str) -> None:
        """Track an account a check registered itself, so that cleanup deactivates it."""
        self.housekeeping.users_created.append(user_id)
        self._sessions.append(Session(user_id, "", "", password))

    def take_over(self, user_id: str, passwords: list[str]) -> None:
        """An account an earlier run left (its ledger): cleaned up as if this run made it,
        with every password it may have."""
        for password in passwords:
            self._secrets.add(password, "password")
        self.adopt(user_id, passwords[0])
        if passwords[1:]:
            self._pending[user_id] = passwords[1:]

    def password_may_change(self, user_id: str, password: str) -> None:
        """A check is about to try this password change: if the run stops before it can read
        the result back, cleanup tries the new password too."""
        self._pending.setdefault(user_id, []).append(password)
        if self.ledger is not None:
            self.ledger.password(user_id, password)

    def password_changed(self, user_id: str, password: str) -> None:
        """A check changed this user's password: cleanup logs in with the new one."""
        self._passwords[user_id] = password

    def deactivation_may_happen(self, user_id: str) -> None:
        """A check is about to deactivate this user: if the run stops before the check can
        say it did, cleanup takes a refused login (Synapse answers a deactivated account's
        password 403 `M_FORBIDDEN`, its hash being gone) as that deactivation."""
        self._may_be_deactivated.add(user_id)

    def deactivated(self, user_id: str) -> None:
        """A check deactivated this user itself: nothing left for cleanup to do."""
        self._deactivated.add(user_id)

    async def login(self, client: MatrixClient, user: Session, note: str) -> Session:
        """Another device for a user the harness created (m.login.password)."""
        resp = await client.request(
            "POST",
            f"{CLIENT_V3}/login",
            note=note,
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": user.password,
                "initial_device_display_name": "mxconform",
            },
        )
        if resp.status_code != 200:
            raise HarnessError(f"login as {user.user_id} failed with HTTP {resp.status_code}")
        session = session_from(body(resp), user.password, "login")
        self._secrets.add(session.access_token, "access_token")
        return session

    async def logout(self, client: MatrixClient, session: Session, note: str) -> None:
        resp = await client.request(
            "POST",
            f"{CLIENT_V3}/logout",
            json={},
            credentials=bearer_header(session.access_token),
            note=note,
        )
        if resp.status_code != 200:
            raise HarnessError(f"logout of a test device failed with HTTP {resp.status_code}")
        self.housekeeping.devices_logged_out += 1
