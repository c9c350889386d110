"""The harness's OAuth 2.0 client: discovery, client registration, grants, refresh, revocation.

Everything goes through `MatrixClient`, so every exchange is evidence. authlib builds the
authorisation URL, the PKCE challenge and the token requests, and parses the callback; this
module only adds Matrix's scopes and the choices a conformance check needs to vary (no PKCE,
`plain`, another redirect URI, fragment mode).
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from authlib.common.urls import url_decode
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import Credentials
from mxconform.oauth.tokens import IssuedTokens
from mxconform.spec.matchers import body

METADATA_PATH = "/_matrix/client/v1/auth_metadata"
UNSTABLE_METADATA_PATH = "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"
API_SCOPE = "urn:matrix:client:api:*"
DEVICE_SCOPE = "urn:matrix:client:device:"
UNSTABLE_API_SCOPE = "urn:matrix:org.matrix.msc2967.client:api:*"
UNSTABLE_DEVICE_SCOPE = "urn:matrix:org.matrix.msc2967.client:device:"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# The harness registers as a native app with a loopback redirect: nothing listens there, the
# drivers read the redirect's Location instead of following it.
CLIENT_URI = "https://mxconform.example.org/"
REDIRECT_URI = "http://127.0.0.1/callback"

_UNRESERVED = string.ascii_uppercase + string.digits


def new_device_id() -> str:
    """A fresh device ID from the unreserved set, long enough for MAS's 10-character rule."""
    return "MXC" + "".join(secrets.choice(_UNRESERVED) for _ in range(10))


def scope_for(device_id: str | None, *extra: str) -> str:
    """The API scope and (when given) exactly one device scope."""
    parts = [API_SCOPE]
    if device_id is not None:
        parts.append(DEVICE_SCOPE + device_id)
    return " ".join([*parts, *extra])


def device_scopes(scope: str) -> list[str]:
    """The device IDs a granted scope names (stable or unstable form)."""
    found = []
    for token in scope.split():
        for prefix in (DEVICE_SCOPE, UNSTABLE_DEVICE_SCOPE):
            if token.startswith(prefix):
                found.append(token[len(prefix) :])
    return found


@dataclass(frozen=True)
class Metadata:
    """The server metadata a target publishes, where it was found, and the origins
    servers.yaml names for its credentials (`oauth.origins.bind`)."""

    data: dict[str, Any]
    path: str
    named: frozenset[str] = frozenset()

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def endpoint(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise HarnessError(f"the server metadata has no usable {key}")
        return value

    @property
    def origins(self) -> frozenset[str]:
        """Where the harness may send passwords, codes, verifiers and tokens besides the
        target itself: the origins servers.yaml names, never the ones the metadata names."""
        return self.named

    def supports(self, key: str, value: str) -> bool:
        listed = self.data.get(key)
        return isinstance(listed, list) and value in listed


async def discover(client: MatrixClient) -> tuple[Metadata | None, httpx.Response]:
    """GET auth_metadata (then the unstable MSC2965 path): the metadata, or None."""
    resp = await client.request("GET", METADATA_PATH, note="OAuth 2.0 server metadata")
    if resp.status_code == 200 and isinstance(body(resp), dict):
        return Metadata(body(resp), METADATA_PATH), resp
    unstable = await client.request(
        "GET", UNSTABLE_METADATA_PATH, note="the unstable (MSC2965) metadata path"
    )
    if unstable.status_code == 200 and isinstance(body(unstable), dict):
        return Metadata(body(unstable), UNSTABLE_METADATA_PATH), resp
    return None, resp


def native_client(redirect_uris: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Client metadata for a public native client, the way the harness registers itself."""
    base = {
        "client_name": "mxconform",
        "client_uri": CLIENT_URI,
        "application_type": "native",
        "redirect_uris": redirect_uris or [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
        "response_types": ["code"],
    }
    return base | extra


@dataclass
class AuthRequest:
    """One authorisation request: the URL to visit and what the token request will need."""

    url: str
    client_id: str
    redirect_uri: str
    state: str
    verifier: str = field(repr=False)  # the PKCE secret: never in a repr
    device_id: str | None
    scope: str
    response_mode: str


@dataclass
class TokenSet:
    """Tokens from one grant, and what the grant said about them."""

    access_token: str = field(repr=False)  # secrets never reach a repr (tracebacks)
    refresh_token: str | None = field(repr=False)
    expires_in: int | None
    scope: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def token_set(resp: httpx.Response) -> TokenSet | None:
    data = body(resp)
    if resp.status_code != 200 or not isinstance(data, dict):
        return None
    access = data.get("access_token")
    if not isinstance(access, str):
        return None
    refresh = data.get("refresh_token")
    expires = data.get("expires_in")
    scope = data.get("scope")
    return TokenSet(
        access,
        refresh if isinstance(refresh, str) else None,
        expires if isinstance(expires, int) else None,
        scope if isinstance(scope, str) else None,
        data,
    )


def callback_params(url: str) -> dict[str, str]:
    """The parameters of a redirect back to the client: query and fragment together."""
    parts = urlsplit(url)
    found: dict[str, str] = {}
    for part in (parts.query, parts.fragment):
        if "=" in part:
            found.update(dict(url_decode(part)))
    return found


def is_redirect_to(location: str | None, redirect_uri: str) -> bool:
    """Whether a Location sends the user agent to the client (any port for loopback)."""
    if not location:
        return False
    got, want = urlsplit(location), urlsplit(redirect_uri)
    same_port = got.port == want.port or (
        want.port is None and want.hostname in ("127.0.0.1", "localhost", "::1")
    )
    return (
        got.scheme == want.scheme
        and got.hostname == want.hostname
        and same_port
        and got.path == want.path
    )


class OAuthApi:
    """The spec's OAuth 2.0 endpoints of one target, called through a recording client;
    every token its token endpoint gives is noted in `issued` (revoked when the run ends)."""

    def __init__(
        self, client: MatrixClient, metadata: Metadata, issued: IssuedTokens | None = None
    ) -> None:
        self.client = client
        self.metadata = metadata
        self.issued = issued if issued is not None else IssuedTokens()

    async def register(self, metadata: dict[str, Any], note: str | None = None) -> httpx.Response:
        return await self.client.request(
            "POST",
            self.metadata.endpoint("registration_endpoint"),
            json=metadata,
            note=note or "dynamic client registration",
            allow_origins=self.metadata.origins,
        )

    async def register_client(self, redirect_uris: list[str] | None = None) -> str:
        """Register the harness as a public native client; its client_id."""
        resp = await self.register(native_client(redirect_uris), "register the harness's client")
        client_id = (body(resp) or {}).get("client_id")
        if resp.status_code not in (200, 201) or not isinstance(client_id, str):
            raise HarnessError(f"client registration failed with HTTP {resp.status_code}")
        return client_id

    def authorization_request(
        self,
        client_id: str,
        *,
        redirect_uri: str = REDIRECT_URI,
        device_id: str | None = None,
        scope: str | None = None,
        response_mode: str = "query",
        pkce: str | None = "S256",
        prompt: str | None = None,
    ) -> AuthRequest:
        """An authorisation URL (authlib builds it); `pkce` None or "plain" to probe refusal."""
        device_id = device_id or new_device_id()
        verifier = secrets.token_urlsafe(48)
        self.client.secrets.add(verifier, "code_verifier")  # `plain` puts it in the URL
        state = secrets.token_urlsafe(12)
        scope = scope if scope is not None else scope_for(device_id)
        extra: dict[str, str] = {"response_mode": response_mode}
        if pkce == "S256":
            extra |= {"code_challenge": create_s256_code_challenge(verifier)}
            extra |= {"code_challenge_method": "S256"}
        elif pkce == "plain":
            extra |= {"code_challenge": verifier, "code_challenge_method": "plain"}
        if prompt:
            extra["prompt"] = prompt
        url = prepare_grant_uri(
            self.metadata.endpoint("authorization_endpoint"),
            client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            **extra,
        )
        return AuthRequest(
            url, client_id, redirect_uri, state, verifier, device_id, scope, response_mode
        )

    async def _token(self, note: str, grant_type: str, **params: Any) -> httpx.Response:
        encoded = prepare_token_request(grant_type, **params)
        resp = await self.client.request(
            "POST",
            self.metadata.endpoint("token_endpoint"),
            form=url_decode(encoded),
            note=note,
            allow_origins=self.metadata.origins,
        )
        tokens = token_set(resp)
        if tokens is not None:
            self.issued.note(params, tokens.access_token, tokens.refresh_token)
        return resp

    async def exchange_code(
        self,
        request: AuthRequest,
        code: str,
        *,
        verifier: str | None = None,
        redirect_uri: str | None = None,
        note: str = "exchange the authorisation code",
    ) -> httpx.Response:
        return await self._token(
            note,
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri or request.redirect_uri,
            client_id=request.client_id,
            code_verifier=verifier or request.verifier,
        )

    async def refresh(
        self, client_id: str, refresh_token: str, note: str = "refresh"
    ) -> httpx.Response:
        return await self._token(
            note, "refresh_token", refresh_token=refresh_token, client_id=client_id
        )

    async def revoke_status(self, client_id: str | None, token: str, hint: str) -> int:
        """The cleanup's revocation of one token the run was issued: its HTTP status."""
        resp = await self.revoke(client_id, token, hint, note=f"cleanup: revoke ({hint})")
        return resp.status_code

    async def revoke(
        self,
        client_id: str | None,
        token: str | None,
        hint: str | None = None,
        note: str = "revoke",
    ) -> httpx.Response:
        form = {"token": token} if token is not None else {}
        if hint:
            form["token_type_hint"] = hint
        if client_id:
            form["client_id"] = client_id
        return await self.client.request(
            "POST",
            self.metadata.endpoint("revocation_endpoint"),
            form=form,
            note=note,
            allow_origins=self.metadata.origins,
        )

    async def device_authorization(self, client_id: str, scope: str) -> httpx.Response:
        return await self.client.request(
            "POST",
            self.metadata.endpoint("device_authorization_endpoint"),
            form={"client_id": client_id, "scope": scope},
            note="device authorisation request",
            allow_origins=self.metadata.origins,
        )

    async def poll_device(self, client_id: str, device_code: str) -> httpx.Response:
        return await self._token(
            "poll the token endpoint for the device grant",
            DEVICE_CODE_GRANT,
            device_code=device_code,
            client_id=client_id,
        )


def basic_auth(client_id: str, client_secret: str) -> Credentials:
    """HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return Credentials(
        headers=(("Authorization", "Basic " + base64.b64encode(raw).decode()),), label="basic"
    )
