"""One refreshable login that the refresh checks share, each taking the newest pair.

Every refresh check needs a session holding a refresh token, and on a staging server only
a password login gives one (`/register` is usually off, and Synapse's shared-secret
registration issues no refresh token); logins are what homeservers rate-limit hardest. A
check that refreshes leaves a working pair behind, so the next check can start from it:
one login serves them all. A check says which pair it left (`went_on`); the next one takes
that pair only after whoami accepts it, and logs in anew when an earlier check (on a server
that broke a rule) left nothing that works. Checks that end the session (logout, expiry)
keep their own logins.
"""

from __future__ import annotations

from typing import Any

import httpx

from mxconform.errors import NotApplicable, PreconditionFailed
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.evidence import Exchange, Recorder, shared_copies
from mxconform.legacy import api as legacy
from mxconform.legacy.api import Session
from mxconform.legacy.users import LegacyUsers
from mxconform.spec.matchers import body

NO_REFRESH = "the server issues no refresh tokens (opting in is server policy)"


class RefreshSession:
    """The shared refreshable session of one target's account made for it."""

    def __init__(self, users: LegacyUsers, client: MatrixClient) -> None:
        self._users = users
        self._client = client
        self.user: Session | None = None  # the account, and the device it registered with
        self._pair: dict[str, Any] | None = None
        self._login: list[Exchange] = []
        self._unsupported: str | None = None

    async def pair(self, hs: MatrixClient) -> dict[str, Any]:
        """The newest pair (`access_token`, `refresh_token`, `device_id`), accepted by
        whoami just now; a new refreshable login when there is none that works."""
        if self._unsupported is not None:
            raise NotApplicable(self._unsupported)
        if self._pair is not None:
            hs.recorder.exchanges.extend(shared_copies(self._login))
            note = "setup: the shared refresh session still works"
            who = await legacy.whoami(hs, bearer_header(self._pair["access_token"]), note=note)
            if who.status_code == 200:
                return dict(self._pair)
        if self.user is None:
            self.user = await self._users.create(self._client, "refresh")
        recorder = Recorder()
        resp = await legacy.login_password(
            hs.with_recorder(recorder), self.user.user_id, self.user.password, refresh_token=True
        )
        hs.recorder.exchanges.extend(recorder.exchanges)
        data = body(resp)
        if resp.status_code != 200 or not isinstance(data, dict):
            raise PreconditionFailed(
                f"precondition failed: a login with refresh_token: true answered HTTP "
                f"{resp.status_code}"
            )
        if not isinstance(data.get("refresh_token"), str):
            self._unsupported = NO_REFRESH
            raise NotApplicable(NO_REFRESH)
        self._pair, self._login = dict(data), recorder.exchanges
        return dict(data)

    def went_on(self, resp: httpx.Response) -> None:
        """A refresh answer a check got: its pair is the newest (the refresh token kept
        when the server returned none)."""
        data = body(resp)
        if resp.status_code != 200 or not isinstance(data, dict) or self._pair is None:
            return
        if isinstance(data.get("access_token"), str):
            self._pair["access_token"] = data["access_token"]
            if isinstance(data.get("refresh_token"), str):
                self._pair["refresh_token"] = data["refresh_token"]
