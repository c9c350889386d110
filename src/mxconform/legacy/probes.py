"""Authenticated operations the token checks call: data, not plumbing, so suites stay short.

Each probe names its spec operation so the project's tests can confirm, against the spec's
own OpenAPI files, that the operation exists and requires an access token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from mxconform.http.client import MatrixClient
from mxconform.http.credentials import Credentials
from mxconform.legacy.api import CLIENT_V3


@dataclass(frozen=True)
class Probe:
    id: str
    operation_id: str
    method: str
    path: str  # relative to /_matrix/client/v3, with {userId}
    json: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)

    def url_path(self, user_id: str) -> str:
        return CLIENT_V3 + self.path.replace("{userId}", quote(user_id, safe="@:"))

    async def send(
        self, client: MatrixClient, user_id: str, credentials: Credentials
    ) -> httpx.Response:
        return await client.request(
            self.method,
            self.url_path(user_id),
            json=self.json,
            params=self.params or None,
            credentials=credentials,
        )


AUTHENTICATED_PROBES: tuple[Probe, ...] = (
    Probe("whoami", "getTokenOwner", "GET", "/account/whoami"),
    Probe("devices", "getDevices", "GET", "/devices"),
    Probe(
        "account-data",
        "setAccountData",
        "PUT",
        "/user/{userId}/account_data/org.mxconform.probe",
        json={"probe": True},
    ),
    Probe(
        "profile",
        "setProfileField",
        "PUT",
        "/profile/{userId}/displayname",
        json={"displayname": "mxconform test user"},
    ),
    Probe("sync", "sync", "GET", "/sync", params={"timeout": "0"}),
)
WHOAMI = AUTHENTICATED_PROBES[0]
