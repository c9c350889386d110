"""Auth drivers for the legacy API: how the harness obtains test users and their tokens.

Users are always created by the harness, with run-unique names, and cleaned up at the end;
nothing here touches an account the harness did not create.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.admin import SynapseAdmin
from mxconform.legacy.api import CLIENT_V3, Session, password_auth
from mxconform.legacy.registration import register_shared_secret, register_uia, session_from
from mxconform.spec.matchers import body
from mxconform.targets.config import (
    OpenRegistration,
    RegistrationToken,
    StaticUsers,
    SynapseSharedSecret,
    Target,
)


@dataclass
class Housekeeping:
    """What the harness created on a target, and what it cleaned up; listed in the report."""

    users_created: list[str] = field(default_factory=list)
    users_deactivated: list[str] = field(default_factory=list)
    devices_logged_out: int = 0
    problems: list[str] = field(default_factory=list)
    # Accounts left to go with the server (`cleanup: discard`): not deactivated one by one.
    users_discarded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "users_created": self.users_created,
            "users_deactivated": self.users_deactivated,
            "users_discarded": self.users_discarded,
            "devices_logged_out": self.devices_logged_out,
            "problems": self.problems,
        }

    def discard_all(self) -> None:
        """Every account the run made is left to be deleted with the server."""
        done = set(self.users_deactivated)
        self.users_discarded = sorted(u for u in self.users_created if u not in done)


class UserNames:
    """Run-unique localparts: time + randomness, so repeated runs never collide."""

    def __init__(self) -> None:
        self._run = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(3)
        self._seq = itertools.count(1)

    def next(self, purpose: str) -> str:
        return f"mxc-{self._run}-{purpose}-{next(self._seq)}"


class LegacyUsers:
    """Creates test users on one target through its declared provisioning, and cleans up."""

    def __init__(
        self,
        target: Target,
        shared_secret: str | None,
        secrets_: SecretRegistry,
        names: UserNames,
        server_name: str = "localhost",
    ) -> None:
        self.server_name = server_name
        self._static_turn = 0
        self._static_devices: list[Session] = []
        # A given account's devices when the run first logged in: the only ones it keeps.
        self._found_devices: dict[str, set[str | None]] = {}
        self._passwords: dict[str, str] = {}
        self._pending: dict[str, list[str]] = {}
        self._deactivated: set[str] = set()
        self._target = target
        self._shared_secret = shared_secret
        self._secrets = secrets_
        self._names = names
        self._sessions: list[Session] = []
        self._spare: list[asyncio.Future[Session]] = []  # registered ahead (prefill)
        self._admin: SynapseAdmin | None = None
        self._admin_lock = asyncio.Lock()
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

    async def create(self, client: MatrixClient, purpose: str) -> Session:
        """A user for a check: newly registered, or a new device of a given static user."""
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
        username = self._names.next(purpose)
        password = self.new_password()
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
            session = await register_shared_secret(client, self._shared_secret, username, password)
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
            return await self._spare.pop(0)
        return await self.create(client, "check")

    async def settle(self) -> None:
        """Wait for registrations still in flight, so that cleanup sees every account."""
        spare, self._spare = self._spare, []
        if spare:
            await asyncio.gather(*spare, return_exceptions=True)

    def owns(self, user_id: str) -> bool:
        """Whether the run created this account (given accounts are never the run's)."""
        return self.may_destroy and user_id in self.housekeeping.users_created

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
            return SynapseAdmin(token, self.owns, "the target's admin_token")
        method = self._target.provisioning
        if not isinstance(method, SynapseSharedSecret) or self._shared_secret is None:
            return None
        username = self._names.next("admin")
        password = self.new_password()
        session = await register_shared_secret(
            client, self._shared_secret, username, password, admin=True
        )
        self._secrets.add(session.access_token, "access_token")
        self.housekeeping.users_created.append(session.user_id)
        self._sessions.append(session)
        return SynapseAdmin(session.access_token, self.owns, "an admin account the run made")

    def unused_name(self, purpose: str) -> str:
        """A run-unique localpart nobody has registered (yet)."""
        return self._names.next(purpose)

    def new_password(self) -> str:
        password = secrets.token_urlsafe(18)
        self._secrets.add(password, "password")
        return password

    def adopt(self, user_id: str, password: str) -> None:
        """Track an account a check registered itself, so that cleanup deactivates it."""
        self.housekeeping.users_created.append(user_id)
        self._sessions.append(Session(user_id, "", "", password))

    def password_may_change(self, user_id: str, password: str) -> None:
        """A check is about to try this password change: if the run stops before it can read
        the result back, cleanup tries the new password too."""
        self._pending.setdefault(user_id, []).append(password)

    def password_changed(self, user_id: str, password: str) -> None:
        """A check changed this user's password: cleanup logs in with the new one."""
        self._passwords[user_id] = password

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

    async def discard(self, client: MatrixClient) -> None:
        """The server goes with the run (an embedded one): nothing to undo on it but what is
        still in flight, and given accounts' devices, which are logged out all the same."""
        await self.settle()
        if isinstance(self._target.provisioning, StaticUsers):
            await self.cleanup(client)
            return
        self.housekeeping.discard_all()

    async def cleanup(self, client: MatrixClient) -> None:
        """Deactivate every account this run created (a fresh login, then UIA with the
        password), whatever the checks did to its earlier tokens."""
        for device in self._static_devices:  # given accounts: only our own devices go
            resp = await client.request(
                "POST",
                f"{CLIENT_V3}/logout",
                json={},
                credentials=bearer_header(device.access_token),
                note="cleanup: log out a device we made on a given account",
            )
            if resp.status_code == 200:
                self.housekeeping.devices_logged_out += 1
        await self.settle()
        await self._remove_leftover_devices(client)
        users = {s.user_id: s for s in self._sessions}
        gate = asyncio.Semaphore(self._target.housekeeping_concurrency)

        async def one(user: Session) -> None:
            if user.user_id in self._deactivated:
                self.housekeeping.users_deactivated.append(user.user_id)
                return
            async with gate:
                try:
                    await self._cleanup_account(client, user)
                    self.housekeeping.users_deactivated.append(user.user_id)
                except HarnessError as exc:
                    self.housekeeping.problems.append(f"{user.user_id}: {exc}")

        await asyncio.gather(*(one(user) for user in users.values()))
        self.housekeeping.users_deactivated.sort()  # the same order whichever finished first

    async def _remove_leftover_devices(self, client: MatrixClient) -> None:
        """Devices the run made on a given account that a logout could not end (their token
        was refreshed away, say): deleted through UIA with the account's password, so the
        account keeps exactly the devices it had when it was given."""
        method = self._target.provisioning
        if not isinstance(method, StaticUsers):
            return
        for given in method.users:
            if given.user_id not in self._found_devices:
                continue
            password = given.password.resolve(f"target {self._target.name}: provisioning.users")
            try:
                fresh = await self.login(
                    client, Session(given.user_id, "", "", password), "cleanup: list devices"
                )
            except HarnessError as exc:
                self.housekeeping.problems.append(f"{given.user_id}: {exc}")
                continue
            creds = bearer_header(fresh.access_token)
            listed = await client.request(
                "GET", f"{CLIENT_V3}/devices", credentials=creds, note="cleanup: devices left"
            )
            present = {d.get("device_id") for d in (body(listed) or {}).get("devices", [])}
            ours = sorted(
                str(d) for d in present - self._found_devices[given.user_id] - {fresh.device_id}
            )
            if ours:
                path = f"{CLIENT_V3}/delete_devices"
                first = await client.request(
                    "POST",
                    path,
                    json={"devices": ours},
                    credentials=creds,
                    note="cleanup: delete devices the run left, UIA challenge",
                )
                auth = password_auth(given.user_id, password, (body(first) or {}).get("session"))
                done = await client.request(
                    "POST",
                    path,
                    json={"devices": ours, "auth": auth},
                    credentials=creds,
                    note="cleanup: delete devices the run left, password stage",
                )
                if done.status_code == 200:
                    self.housekeeping.devices_logged_out += len(ours)
                else:
                    self.housekeeping.problems.append(
                        f"{given.user_id}: {len(ours)} devices of the run left (HTTP "
                        f"{done.status_code})"
                    )
            await self.logout(client, fresh, "cleanup: log out the listing device")

    async def _cleanup_account(self, client: MatrixClient, user: Session) -> None:
        """Log in with the password we know (or one a check was about to set when the run
        was stopped) and deactivate; an account already deactivated is done."""
        known = self._passwords.get(user.user_id, user.password)
        answers = []
        for password in dict.fromkeys([known, *self._pending.get(user.user_id, [])]):
            resp = await client.request(
                "POST",
                f"{CLIENT_V3}/login",
                note="cleanup: log in to deactivate",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user.user_id},
                    "password": password,
                    "initial_device_display_name": "mxconform",
                },
            )
            errcode = (body(resp) or {}).get("errcode")
            if errcode == "M_USER_DEACTIVATED":
                return  # a check deactivated it and was stopped before it could say so
            if resp.status_code == 200:
                fresh = session_from(body(resp), password, "login")
                self._secrets.add(fresh.access_token, "access_token")
                await self._deactivate(client, fresh)
                return
            answers.append(f"HTTP {resp.status_code} {errcode or ''}".strip())
        raise HarnessError(f"cleanup login failed ({', '.join(answers)})")

    async def _deactivate(self, client: MatrixClient, session: Session) -> None:
        path = f"{CLIENT_V3}/account/deactivate"
        creds = bearer_header(session.access_token)
        first = await client.request(
            "POST", path, json={}, credentials=creds, note="cleanup: deactivate, UIA challenge"
        )
        auth = password_auth(session.user_id, session.password, (body(first) or {}).get("session"))
        second = await client.request(
            "POST",
            path,
            json={"auth": auth},
            credentials=creds,
            note="cleanup: deactivate, password stage",
        )
        if second.status_code != 200:
            raise HarnessError(f"deactivation failed with HTTP {second.status_code}")
