"""authlib's grants and endpoints, bent to MAS's semantics: rotation that tolerates one
lost response, code re-use ending the session, S256 required, the device grant's pacing.
The code and device grants' token responses are `hooked`, as authlib's own are, so its
OpenID extension (`oidc.IdTokens`) adds the ID token when `openid` is granted."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientMetadataClaims, ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
)

from .core import (
    CODE_LIFETIME_S,
    DEVICE_CODE_LIFETIME_S,
    DEVICE_GRANT,
    NO_STORE,
    Client,
    Code,
    Core,
    DeviceCredential,
    RevocableToken,
    token_response,
)
from .registration import check_metadata
from .scopes import MAS_ADMIN_SCOPE, ScopeError, parse_interactive
from .store import User, digest, new_id

_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class MatrixServer(AuthorizationServer):
    """authlib's Flask server with Matrix scope rules and our client lookup."""

    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core

    def query_client(self, client_id: str) -> Any:
        return self.core.client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        raise NotImplementedError("every grant here stores its own tokens")

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            parse_interactive(scope)
        except ScopeError as exc:
            raise InvalidScopeError(str(exc)) from None


def _payload(grant: Any) -> Any:
    return grant.request.payload


def _core(part: Any) -> Core:
    """The shared state, from a grant or an endpoint (authlib gives both a `server`)."""
    server: MatrixServer = part.server
    return server.core


class S256Required(CodeChallenge):
    """PKCE is mandatory, S256 only (the Matrix OAuth profile)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("code_challenge is required (PKCE)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, code: Code) -> str:
        return code.code_challenge

    def get_authorization_code_challenge_method(self, code: Code) -> str:
        return "S256"


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def query_authorization_code(self, code: str, client: Any) -> Code | None:
        core = _core(self)
        row = core.store.one(
            "SELECT * FROM auth_grants WHERE code_hash = ? AND client_id = ?",
            digest(code),
            client.client_id,
        )
        if row is None:
            return None
        if row["status"] == "exchanged":
            # RFC 6749 §4.1.2: a code used twice revokes what it gave.
            if row["session_id"]:
                core.end_session(row["session_id"])
            return None
        if row["status"] != "fulfilled" or row["fulfilled_at"] + CODE_LIFETIME_S < time.time():
            return None
        return Code(
            row["id"],
            row["client_id"],
            row["redirect_uri"],
            row["scope"],
            row["code_challenge"],
            row["user_id"],
            row["nonce"],
            int(row["auth_time"]) if row["auth_time"] is not None else None,
        )

    @hooked
    def create_token_response(self) -> Any:
        core = _core(self)
        code = cast(Code, self.request.authorization_code)
        client = cast(Client, self.request.client)
        with core.store.transaction() as db:  # the code is spent before any token exists
            spent = db.execute(
                "UPDATE auth_grants SET status = 'exchanged', exchanged_at = ? "
                "WHERE id = ? AND status = 'fulfilled'",
                (time.time(), code.grant_id),
            ).rowcount
        user = core.store.user(code.user_id)
        if not spent or user is None or user.deactivated_at is not None:
            raise InvalidGrantError("the code is no longer valid")
        self.request.user = user  # the ID token's subject
        # MAS always pairs the first access token with a refresh token in this grant.
        session, pair = core.start_session(client, user, code.scope, with_refresh=True)
        core.store.run(
            "UPDATE auth_grants SET session_id = ? WHERE id = ?", session.id, code.grant_id
        )
        return 200, token_response(pair, code.scope), NO_STORE


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _validate_request_token(self, client: Client) -> Any:
        core = _core(self)
        presented = self.request.form.get("refresh_token")
        if not presented:
            raise InvalidRequestError("refresh_token is required")
        row = core.store.refresh_token(presented)
        if row is None or row["revoked_at"] is not None:
            raise InvalidGrantError("unknown or revoked refresh token")
        session = core.store.session(row["session_id"])
        if session is None or session.finished_at is not None:
            raise InvalidGrantError("the session has ended")
        if session.client_id != client.client_id:
            raise InvalidGrantError("the refresh token was issued to another client")
        if row["consumed_at"] is not None and self._replayed(row):
            core.end_session(session.id)  # proof of a copy in other hands: end it all
            raise InvalidGrantError("refresh token already used")
        return row

    def _replayed(self, row: Any) -> bool:
        """A consumed token may be presented again only while its successor is untouched
        (the client lost the response); once the new pair has been used, it is a replay."""
        store = _core(self).store
        successor = store.one("SELECT * FROM refresh_tokens WHERE id = ?", row["next_id"])
        if successor is None or successor["consumed_at"] is not None:
            return True
        access = store.one("SELECT * FROM access_tokens WHERE hash = ?", successor["access_hash"])
        return access is not None and access["first_used_at"] is not None

    def _validate_token_scope(self, token: Any) -> None:
        scope = _payload(self).scope
        if scope:
            session = _core(self).store.session(token["session_id"])
            granted = set((session.scope if session else "").split())
            if not set(scope.split()) <= granted:
                raise InvalidScopeError("a refresh cannot widen the scope")

    def create_token_response(self) -> Any:
        core = _core(self)
        old: Any = self.request.refresh_token
        session = core.store.session(old["session_id"])
        if session is None:
            raise InvalidGrantError("the session has ended")
        now = time.time()
        with core.store.transaction() as db:
            if old["consumed_at"] is not None:  # a lost response: retire the unused pair
                successor = db.execute(
                    "SELECT * FROM refresh_tokens WHERE id = ?", (old["next_id"],)
                ).fetchone()
                db.execute(
                    "UPDATE refresh_tokens SET revoked_at = ? WHERE id = ?", (now, old["next_id"])
                )
                db.execute(
                    "UPDATE access_tokens SET revoked_at = ? WHERE hash = ?",
                    (now, successor["access_hash"]),
                )
            pair = core.store.issue_pair(session)
            assert pair.refresh_token is not None
            new = db.execute(
                "SELECT id FROM refresh_tokens WHERE hash = ?", (digest(pair.refresh_token),)
            ).fetchone()
            db.execute(
                "UPDATE refresh_tokens SET consumed_at = COALESCE(consumed_at, ?), next_id = ? "
                "WHERE hash = ?",
                (now, new["id"], old["hash"]),
            )
            # As MAS: the access token paired with the spent refresh token is revoked.
            db.execute(
                "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash = ?",
                (now, old["access_hash"]),
            )
        return 200, token_response(pair, session.scope), NO_STORE


class ClientCredentials(grants.ClientCredentialsGrant):
    """Only the admin client, only `urn:mas:admin` (what MAS's policy allows by default)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_requested_scope(self) -> None:
        if (_payload(self).scope or "").split() != [MAS_ADMIN_SCOPE]:
            raise InvalidScopeError(f"only {MAS_ADMIN_SCOPE} is available with this grant")

    def create_token_response(self) -> Any:
        core = _core(self)
        client = cast(Client, self.request.client)
        session = core.store.add_session(
            "client",
            client_id=client.client_id,
            user_id=None,
            scope=MAS_ADMIN_SCOPE,
            device_id=None,
        )
        pair = core.store.issue_pair(session, with_refresh=False)
        return 200, token_response(pair, MAS_ADMIN_SCOPE), NO_STORE


class DeviceGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        row = _core(self).store.one(
            "SELECT * FROM device_grants WHERE device_code_hash = ?", digest(device_code)
        )
        if row is None:
            raise InvalidGrantError("unknown device code")
        if row["status"] == "exchanged":
            raise InvalidGrantError("the device code was already exchanged")
        return DeviceCredential(
            row["id"], row["client_id"], row["scope"], row["user_code"], row["expires_at"]
        )

    def query_user_grant(self, user_code: str) -> tuple[User, bool] | None:
        store = _core(self).store
        row = store.one("SELECT * FROM device_grants WHERE user_code = ?", user_code)
        if row is None or row["status"] == "pending":
            return None
        user = store.user(row["user_id"]) if row["user_id"] else None
        if row["status"] == "rejected" or user is None:
            raise AccessDeniedError()
        return user, True

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        """RFC 8628 §3.5: polling faster than the interval adds 5 s to it."""
        store = _core(self).store
        now = time.time()
        with store.transaction() as db:
            row = db.execute(
                "SELECT last_poll_at, interval FROM device_grants WHERE id = ?",
                (credential.grant_id,),
            ).fetchone()
            too_soon = (
                row["last_poll_at"] is not None and now - row["last_poll_at"] < (row["interval"])
            )
            db.execute(
                "UPDATE device_grants SET last_poll_at = ?, interval = interval + ? WHERE id = ?",
                (now, 5 if too_soon else 0, credential.grant_id),
            )
        return bool(too_soon)

    @hooked
    def create_token_response(self) -> Any:
        core = _core(self)
        credential = cast(DeviceCredential, self.request.credential)
        client = cast(Client, self.request.client)
        user = cast(User, self.request.user)
        with core.store.transaction() as db:
            spent = db.execute(
                "UPDATE device_grants SET status = 'exchanged' WHERE id = ? "
                "AND status = 'fulfilled'",
                (credential.grant_id,),
            ).rowcount
        if not spent:
            raise InvalidGrantError("the device code was already exchanged")
        session, pair = core.start_session(
            client, user, credential.scope, with_refresh=client.check_grant_type("refresh_token")
        )
        core.store.run(
            "UPDATE device_grants SET session_id = ? WHERE id = ?", session.id, credential.grant_id
        )
        return 200, token_response(pair, credential.scope), NO_STORE


class DeviceAuthorization(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def __init__(self, server: MatrixServer, base_url: str, interval_s: int) -> None:
        super().__init__(server)
        self.base_url = base_url
        self.INTERVAL = interval_s
        self.EXPIRES_IN = DEVICE_CODE_LIFETIME_S

    def authenticate_client(self, request: Any) -> Client:
        client: Client = super().authenticate_client(request)
        if not client.check_grant_type(DEVICE_GRANT):
            raise UnauthorizedClientError("the client did not register the device code grant")
        return client

    def generate_user_code(self) -> str:
        return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(6))

    def get_verification_uri(self) -> str:
        return f"{self.base_url}/link"

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], Any]:
        status, data, headers = super().create_endpoint_response(request)
        data["verification_uri_complete"] = f"{self.base_url}/link?code={data['user_code']}"
        return status, data, headers

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        now = time.time()
        _core(self).store.run(
            "INSERT INTO device_grants (id, device_code_hash, user_code, client_id, scope, "
            "created_at, expires_at, interval, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            new_id(),
            digest(data["device_code"]),
            data["user_code"],
            client_id,
            scope,
            now,
            now + self.EXPIRES_IN,
            self.INTERVAL,
        )


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def check_params(self, request: Any, client: Client) -> None:
        if not request.form.get("token"):
            raise InvalidRequestError("token is required")
        # RFC 7009 §2.1: a hint the server does not know is ignored, not an error.

    def authenticate_endpoint_client(self, request: Any) -> Client:
        """A revocation naming no client is honoured (the spec's SHOULD, as MAS does): a
        holder of a leaked token can always end its session."""
        if not request.form.get("client_id") and not request.headers.get("Authorization"):
            return Client("", {"token_endpoint_auth_method": "none"})
        client: Client = super().authenticate_endpoint_client(request)
        return client

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        store = _core(self).store
        row = store.access_token(token_string) or store.refresh_token(token_string)
        if row is None:
            return None
        session = store.session(row["session_id"])
        if session is None or session.finished_at is not None:
            return None
        return RevocableToken(session)

    def revoke_token(self, token: RevocableToken, request: Any) -> None:
        _core(self).end_session(token.session.id)


class MatrixClaims(ClientMetadataClaims):
    """authlib's claims plus `application_type`; URIs were checked by `check_metadata`."""

    REGISTERED_CLAIMS = [*ClientMetadataClaims.REGISTERED_CLAIMS, "application_type"]  # noqa: RUF012

    def validate_redirect_uris(self) -> None:
        return None  # private-use schemes have no host, which authlib's check would refuse


class Registration(ClientRegistrationEndpoint):
    def __init__(self, server: MatrixServer) -> None:
        super().__init__(server, claims_classes=[MatrixClaims])

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration, as on MAS

    def get_server_metadata(self) -> dict[str, Any]:
        return {}  # our own checks decide; authlib's options would refuse instead of dropping

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        request.payload.data = check_metadata(request.payload.data)
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        return {"client_id": new_id(), "client_id_issued_at": int(time.time())}

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any
    ) -> Client:
        _core(self).store.add_client(client_info["client_id"], client_metadata)
        return Client(client_info["client_id"], client_metadata)
