"""The authorisation server's model: clients, codes, sessions, and what MAS does at each.

authlib parses requests, authenticates clients, dispatches grants, verifies PKCE and shapes
errors. What MAS does differently from authlib's defaults lives here: sessions that own a
device, refresh-token rotation that tolerates one lost response, code re-use ending the
session, device provisioning in Synapse before a token is returned.
"""

from __future__ import annotations

import contextlib
import hmac
import sqlite3
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidRequestError,
)
from authlib.oauth2.rfc8628 import (
    DeviceCredentialMixin,
)

from .homeserver import Homeserver, HomeserverError
from .registration import LOOPBACK_HOSTS
from .scopes import parse_interactive
from .store import Session, Store, TokenPair, User

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CODE_LIFETIME_S = 600
DEVICE_CODE_LIFETIME_S = 1200  # MAS: 20 minutes


class TemporarilyUnavailable(InvalidRequestError):
    """Synapse could not provision the device: the token is withheld (RFC 6749 §4.1.2.1)."""

    error = "temporarily_unavailable"
    status_code = 503


class Client(ClientMixin):
    """A registered public client, or the configured confidential admin client."""

    def __init__(self, client_id: str, metadata: dict[str, Any], secret: str | None = None) -> None:
        self.client_id = client_id
        self.metadata = metadata
        self._secret = secret

    @property
    def is_admin(self) -> bool:
        return self._secret is not None

    @property
    def name(self) -> str:
        return str(self.metadata.get("client_name") or self.client_id)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> Any:
        uris = self.metadata.get("redirect_uris") or []
        return str(uris[0]) if len(uris) == 1 else None

    def get_allowed_scope(self, scope: Any) -> str:
        return str(scope or "")

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        registered = self.metadata.get("redirect_uris") or []
        if redirect_uri in registered:
            return True
        try:
            asked = urlsplit(redirect_uri)
            asked_port = asked.port
        except ValueError:
            return False
        if asked.scheme != "http" or asked.hostname not in LOOPBACK_HOSTS or asked_port is None:
            return False
        without_port = asked._replace(netloc=asked.netloc.rsplit(":", 1)[0]).geturl()
        return without_port in registered  # RFC 8252 §7.3: any port on a loopback redirect

    def check_client_secret(self, client_secret: str) -> bool:
        if self._secret is None:
            return False
        return hmac.compare_digest(self._secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_admin:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type in (self.metadata.get("response_types") or [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.metadata.get("grant_types") or [])


@dataclass
class Code:
    """An authorisation grant that has reached the code stage; what authlib's OpenID
    extension reads of it (nonce, auth_time) goes into the ID token."""

    grant_id: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    user_id: str
    nonce: str | None = None
    auth_time: int | None = None  # when the user last signed in on the consenting browser

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


@dataclass
class DeviceCredential(DeviceCredentialMixin):
    grant_id: str
    client_id: str
    scope: str
    user_code: str
    expires_at: float

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return self.expires_at < time.time()


@dataclass
class RevocableToken:
    session: Session

    def check_client(self, client: Client) -> bool:
        # Whoever holds the token may end its session, whichever client (or none) they name:
        # the spec's SHOULD for a client_id that is missing or another client's.
        return True


class UsernameTaken(Exception):
    """The username exists here or in Synapse."""


class Core:
    """What the protocol endpoints share: state, Synapse, sessions that own devices."""

    def __init__(self, store: Store, homeserver: Homeserver, admin: Client) -> None:
        self.store = store
        self.homeserver = homeserver
        self.admin = admin

    def client(self, client_id: str | None) -> Client | None:
        if not client_id:
            return None
        if client_id == self.admin.client_id:
            return self.admin
        metadata = self.store.client_metadata(client_id)
        return None if metadata is None else Client(client_id, metadata)

    def provision_device(self, user: User, session: Session, client: Client | None) -> None:
        if session.device_id is None:
            return
        try:
            name = client.name if client is not None else session.human_name
            self.homeserver.upsert_device(user.username, session.device_id, name)
        except HomeserverError as exc:
            self.store.finish_session(session.id)
            raise TemporarilyUnavailable(f"the homeserver refused the device: {exc}") from None

    def start_session(
        self, client: Client, user: User, scope: str, with_refresh: bool
    ) -> tuple[Session, TokenPair]:
        """A new OAuth session with its first tokens; the device exists in Synapse on return."""
        parsed = parse_interactive(scope)
        session = self.store.add_session(
            "oauth",
            client_id=client.client_id,
            user_id=user.id,
            scope=scope,
            device_id=parsed.device_id,
        )
        pair = self.store.issue_pair(session, with_refresh)
        self.provision_device(user, session, client)
        return session, pair

    def end_session(self, session_id: str) -> None:
        """Finish a session; delete its device in Synapse unless another session holds it."""
        ended = self.store.finish_session(session_id)
        if ended is None or ended.device_id is None or ended.user_id is None:
            return
        if self.store.device_still_used(ended.user_id, ended.device_id):
            return
        user = self.store.user(ended.user_id)
        if user is not None:
            # If Synapse cannot be told, the session is still over here; its cache of the
            # token expires within two minutes.
            with contextlib.suppress(HomeserverError):
                self.homeserver.delete_device(user.username, ended.device_id)

    def create_user(self, username: str, password: str | None) -> User:
        """A local account, provisioned in Synapse first (MAS does this synchronously too)."""
        if self.store.user_by_name(username) is not None:
            raise UsernameTaken(username)
        if not self.homeserver.localpart_available(username):
            raise UsernameTaken(username)
        self.homeserver.provision_user(username)
        try:
            return self.store.add_user(username, password)
        except sqlite3.IntegrityError:  # a concurrent registration of the same name
            raise UsernameTaken(username) from None

    def deactivate(self, user: User) -> None:
        """End every session (deleting its device in Synapse) and refuse future logins.
        The Synapse account itself stays (MAS would also deactivate it there)."""
        self.store.deactivate_user(user.id)
        for held in self.store.sessions_of(user.id):
            self.end_session(held.id)


def token_response(pair: TokenPair, scope: str) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": pair.access_token, "token_type": "Bearer"}
    if pair.expires_in is not None:
        body["expires_in"] = pair.expires_in
    if pair.refresh_token is not None:
        body["refresh_token"] = pair.refresh_token
    if scope:
        body["scope"] = scope
    return body


NO_STORE = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]
