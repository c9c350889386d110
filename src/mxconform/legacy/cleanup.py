"""Cleanup of the accounts a run made: what the checks left behind is undone at the end.

Split from `users`: the end of an account's life, including a run stopped half-way through a
check (a lock not lifted, a deactivation or a registration whose answer never came back).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from mxconform.errors import HarnessError, Unsupported
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.admin import SynapseAdmin
from mxconform.legacy.api import CLIENT_V3, Session, password_auth
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.legacy.ledger import Ledger
from mxconform.legacy.registration import session_from
from mxconform.spec.matchers import body
from mxconform.targets.config import StaticUsers, Target


class AccountCleanup:
    """What `LegacyUsers` knows about its accounts, read back at the end of the run."""

    housekeeping: Housekeeping
    _target: Target
    _secrets: SecretRegistry
    _sessions: list[Session]
    _static_devices: list[Session]
    _found_devices: dict[str, set[str | None]]
    _passwords: dict[str, str]
    _pending: dict[str, list[str]]
    _deactivated: set[str]
    _may_be_deactivated: set[str]
    _may_be_registered: dict[str, str]
    _admin: SynapseAdmin | None
    _admin_user: str | None

    async def settle(self) -> None:
        raise NotImplementedError

    async def login(self, client: MatrixClient, user: Session, note: str) -> Session:
        raise NotImplementedError

    async def logout(self, client: MatrixClient, session: Session, note: str) -> None:
        raise NotImplementedError

    async def admin(self, client: MatrixClient) -> SynapseAdmin | None:
        raise NotImplementedError

    ledger: Ledger | None

    def _crossed_off(self, user_id: str) -> None:
        self.housekeeping.users_deactivated.append(user_id)
        if self.ledger is not None:
            self.ledger.gone(user_id)

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
        gate = asyncio.Semaphore(self._target.housekeeping_concurrency)
        handled: set[str] = set()

        async def one(user: Session) -> None:
            if user.user_id in self._deactivated:
                self._crossed_off(user.user_id)
                return
            async with gate:
                try:
                    await self._cleanup_account(client, user)
                    self._crossed_off(user.user_id)
                except HarnessError as exc:
                    self.housekeeping.problems.append(f"{user.user_id}: {exc}")

        async def unadopted(user_id: str, password: str) -> None:
            async with gate:
                try:
                    await self._deactivate_if_made(client, user_id, password)
                except HarnessError:
                    if self.ledger is not None:
                        self.ledger.gone(user_id)
                    return  # no such account: the registration never went through
            self.housekeeping.users_created.append(user_id)
            self._crossed_off(user_id)

        # Rounds until nothing new turns up: a check the run was stopped in may still adopt
        # an account (its answer arriving) while the first round runs.
        # The run's admin account goes last: it unlocks what a stopped lock check left locked.
        while True:
            users = {
                s.user_id: s
                for s in self._sessions
                if s.user_id not in handled and s.user_id != self._admin_user
            }
            handled |= set(users)
            if users:
                await asyncio.gather(*(one(user) for user in users.values()))
                continue
            # Names a check was registering itself and never adopted: the password it was
            # given logs in only if the registration went through.
            maybe = {u: p for u, p in self._may_be_registered.items() if u not in handled}
            handled |= set(maybe)
            if maybe:
                await asyncio.gather(*(unadopted(u, p) for u, p in maybe.items()))
                continue
            admin = [s for s in self._sessions if s.user_id == self._admin_user]
            if not admin or self._admin_user in handled:
                break
            handled.add(admin[0].user_id)
            await one(admin[0])
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
                done = await _with_password(
                    client,
                    f"{CLIENT_V3}/delete_devices",
                    {"devices": ours},
                    Session(given.user_id, fresh.access_token, fresh.device_id, password),
                    "delete devices the run left",
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
        """Deactivate an account without a new login where the run can: through the admin API
        (whatever the checks left: a lock, a suspension, a changed password), else with the
        token it was registered with; only then log in with the password we know (or one a
        check was about to set when the run was stopped). Logins are rate-limited on every
        stock server: cleanup must not need one per account."""
        mine = user.user_id == self._admin_user
        if not mine and await self._admin_deactivate(client, user.user_id) is not None:
            return
        known = self._passwords.get(user.user_id, user.password)
        if user.access_token and await self._deactivate_held(client, user, known):
            return
        await self._login_and_deactivate(client, user, known)

    async def cleanup_admin(self, client: MatrixClient) -> SynapseAdmin | None:
        """The admin cleanup deactivates through: the run's, or one made now where the target
        allows (a shared-secret registration costs no login)."""
        if self._admin is not None:
            return self._admin
        return await self.admin(client)

    async def _deactivate_if_made(self, client: MatrixClient, user_id: str, password: str) -> None:
        """A name a check was registering when it stopped (or whose registration the server
        refused): the admin API says whether it exists; without one, the password logs in
        only if the registration went through. HarnessError when there is no such account."""
        made = await self._admin_deactivate(client, user_id)
        if made is None:
            await self._login_and_deactivate(client, Session(user_id, "", "", password), password)
        elif not made:
            raise HarnessError(f"{user_id} was never registered")

    async def _admin_deactivate(self, client: MatrixClient, user_id: str) -> bool | None:
        """Through the admin API: whether the account existed (and is now deactivated), or
        None when there is no admin or its server has no admin deactivation (Dendrite)."""
        admin = await self.cleanup_admin(client)
        if admin is None:
            return None
        try:
            return await admin.deactivate_if_made(client, user_id)
        except Unsupported:
            return None

    async def _deactivate_held(self, client: MatrixClient, user: Session, password: str) -> bool:
        """Deactivate with the token the run already holds; False when that token no longer
        works (a check logged it out or changed the password)."""
        try:
            await self._deactivate(client, Session(user.user_id, user.access_token, "", password))
        except HarnessError:
            return False
        return True

    async def _login_and_deactivate(self, client: MatrixClient, user: Session, known: str) -> None:
        answers = []
        unlocked = False
        passwords = list(dict.fromkeys([known, *self._pending.get(user.user_id, [])]))
        while passwords:
            password = passwords.pop(0)
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
            if errcode == "M_USER_LOCKED" and self._admin is not None and not unlocked:
                # a lock check was stopped before it could unlock: unlock, then try again
                await self._admin.set_locked(client, user.user_id, False)
                unlocked = True
                passwords.insert(0, password)
                continue
            if resp.status_code == 200:
                fresh = session_from(body(resp), password, "login")
                self._secrets.add(fresh.access_token, "access_token")
                await self._deactivate(client, fresh)
                return
            answers.append(f"HTTP {resp.status_code} {errcode or ''}".strip())
        if user.user_id in self._may_be_deactivated and all(
            a.startswith("HTTP 403") for a in answers
        ):
            return  # the deactivation a check had in flight when the run stopped
        raise HarnessError(f"cleanup login failed ({', '.join(answers)})")

    async def _deactivate(self, client: MatrixClient, session: Session) -> None:
        path = f"{CLIENT_V3}/account/deactivate"
        second = await _with_password(client, path, {"erase": True}, session, "deactivate")
        if second.status_code != 200:
            raise HarnessError(f"deactivation failed with HTTP {second.status_code}")


async def _with_password(
    client: MatrixClient, path: str, payload: dict[str, Any], session: Session, what: str
) -> httpx.Response:
    """A UIA-guarded POST done in cleanup: the challenge, then the password stage with the
    session's own password; the second answer."""
    creds = bearer_header(session.access_token)
    first = await client.request(
        "POST", path, json=payload, credentials=creds, note=f"cleanup: {what}, UIA challenge"
    )
    auth = password_auth(session.user_id, session.password, (body(first) or {}).get("session"))
    return await client.request(
        "POST",
        path,
        json={**payload, "auth": auth},
        credentials=creds,
        note=f"cleanup: {what}, password stage",
    )
