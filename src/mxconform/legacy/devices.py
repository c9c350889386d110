"""Extra devices of a check's own account, for the checks that delete, list or log out
devices other than the one they act with.

A password login makes one, but logins are what homeservers rate-limit hardest (Synapse:
five, then one every 333 s per address). Where the run has Synapse's admin API, a device
that only has to exist (be listed, then deleted) is made through it instead, with no token;
elsewhere, or on a release without that endpoint, the check logs in as before.
"""

from __future__ import annotations

import secrets

from mxconform.errors import PreconditionFailed
from mxconform.http.client import MatrixClient
from mxconform.legacy import api as legacy
from mxconform.legacy.api import Session
from mxconform.legacy.users import LegacyUsers
from mxconform.spec.matchers import body


async def extra_device(client: MatrixClient, users: LegacyUsers, user: Session) -> Session:
    """Another device of `user`: through the admin API when the run has one (its
    `access_token` is then empty), else a password login (with a token)."""
    admin = await users.admin(client) if users.owns(user.user_id) else None
    if admin is not None:
        device_id = f"MXC{secrets.token_hex(5).upper()}"
        if await admin.create_device(client, user.user_id, device_id):
            return Session(user.user_id, "", device_id, user.password)
    resp = await legacy.login_password(client, user.user_id, user.password)
    if resp.status_code != 200:
        raise PreconditionFailed(
            f"precondition failed: logging in another device answered HTTP {resp.status_code}"
        )
    data = body(resp)
    return Session(user.user_id, data["access_token"], data["device_id"], user.password)
