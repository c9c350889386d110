"""Calls to Synapse's `/_synapse/mas/*` API: the side effects MAS performs on the homeserver.

Synapse no longer creates users or devices on its own when it delegates authentication, and
it caches introspection for two minutes, so the server provisions users and devices before a
token is handed out and deletes devices when a session ends (that is what makes a revocation
visible at once).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

log = logging.getLogger("mxconform.authserver")


class HomeserverError(Exception):
    """Synapse refused or could not be reached; the message carries no secret."""


class Homeserver:
    """One client for every call, shared by the request threads: a client per call built a
    fresh TLS context each time, which was most of this server's CPU in a run."""

    def __init__(self, shared_secret: str, timeout_s: float = 10.0) -> None:
        self._secret = shared_secret
        self._timeout = timeout_s
        self.url: str | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.url is None:
            raise HomeserverError("the homeserver URL is not known yet")
        try:
            response = self._http().request(
                method,
                f"{self.url.rstrip('/')}/_synapse/mas/{path}",
                headers={"Authorization": f"Bearer {self._secret}"},
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise HomeserverError(f"{path}: {type(exc).__name__}") from None
        log.info("synapse %s -> %s", path, response.status_code)
        return response

    def _post(self, path: str, payload: dict[str, Any]) -> None:
        response = self._call("POST", path, json=payload)
        if response.status_code not in (200, 201, 204):
            raise HomeserverError(f"{path}: HTTP {response.status_code}")

    def localpart_available(self, localpart: str) -> bool:
        response = self._call("GET", "is_localpart_available", params={"localpart": localpart})
        if response.status_code == 200:
            return True
        if response.status_code == 400:
            return False
        raise HomeserverError(f"is_localpart_available: HTTP {response.status_code}")

    def provision_user(self, localpart: str) -> None:
        self._post("provision_user", {"localpart": localpart})

    def upsert_device(self, localpart: str, device_id: str, name: str | None = None) -> None:
        payload = {"localpart": localpart, "device_id": device_id}
        if name:
            payload["display_name"] = name
        self._post("upsert_device", payload)

    def delete_device(self, localpart: str, device_id: str) -> None:
        self._post("delete_device", {"localpart": localpart, "device_id": device_id})

    def allow_cross_signing_reset(self, localpart: str) -> None:
        self._post("allow_cross_signing_reset", {"localpart": localpart})
