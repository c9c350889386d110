"""Which password an account takes, read back without spending a login.

A UIA check proves a password change (or its absence) by what the account accepts
afterwards. A password login answers that, but logins are what homeservers rate-limit
hardest (Synapse: five, then one every 333 s per address), and a login makes a device. The
m.login.password stage of User-Interactive Authentication answers it too: asked on
`POST /delete_devices` with an empty list, whose completion deletes nothing. Only where UIA
cannot tell (no 401 challenge, no password-only flow, the token itself refused) is a login
made, as before.
"""

from __future__ import annotations

from typing import Any

from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.api import CLIENT_V3, Session
from mxconform.spec.matchers import body

PROBE_PATH = f"{CLIENT_V3}/delete_devices"


async def uia_takes_password(
    client: MatrixClient, user: Session, password: str
) -> tuple[bool | None, str]:
    """Whether the account's UIA password stage accepts `password` (True, False), or None
    with the reason when UIA cannot tell. Nothing is deleted either way."""
    creds = bearer_header(user.access_token)
    note = "read-back: which password the account takes (UIA on an empty delete_devices)"
    first = await client.request(
        "POST", PROBE_PATH, json={"devices": []}, credentials=creds, note=note
    )
    data: Any = body(first)
    session = data.get("session") if isinstance(data, dict) else None
    flows = data.get("flows") if isinstance(data, dict) else None
    if first.status_code != 401 or not isinstance(session, str) or not isinstance(flows, list):
        return None, f"no UIA challenge to ask (HTTP {first.status_code})"
    if not any(isinstance(f, dict) and f.get("stages") == ["m.login.password"] for f in flows):
        return None, "no m.login.password flow to ask"
    answer = await client.request(
        "POST",
        PROBE_PATH,
        json={"devices": [], "auth": legacy.password_auth(user.user_id, password, session)},
        credentials=creds,
        note=note,
    )
    if answer.status_code == 200:
        return True, "UIA password stage: accepted (HTTP 200)"
    answered: Any = body(answer)
    errcode = answered.get("errcode") if isinstance(answered, dict) else None
    if answer.status_code in (401, 403) and errcode == "M_FORBIDDEN":
        return False, f"UIA password stage: refused (HTTP {answer.status_code} M_FORBIDDEN)"
    return None, f"UIA password stage answered HTTP {answer.status_code} {errcode or ''}".rstrip()


async def password_taken(
    client: MatrixClient, user: Session, password: str
) -> tuple[bool | None, str]:
    """Whether the account takes `password`: asked through UIA with the user's token, else
    (UIA cannot tell) by a password login (200 yes, 403 no, anything else None)."""
    taken, seen = await uia_takes_password(client, user, password)
    if taken is not None:
        return taken, seen
    login = await legacy.login_password(client, user.user_id, password)
    verdict = {200: True, 403: False}.get(login.status_code)
    return verdict, f"{seen}; a login instead: HTTP {login.status_code}"
