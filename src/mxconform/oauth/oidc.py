"""OpenID Connect on top of the OAuth 2.0 API: what clients built on OIDC libraries need
besides the Matrix rules (matrix-js-sdk 41's oidc-client-ts refused a token response that
granted `openid` without an ID token: issue 25).

None of it is a Matrix rule. Each check of it judges at a catalogue row whose `basis` is
`interop` (level `unspecified`), so a broken one is INFO, its message an "interoperability
finding", and never counts against the server's Matrix conformance.
"""

from __future__ import annotations

from typing import Any

import httpx

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.oauth.client import Metadata
from mxconform.spec import requirements
from mxconform.spec.matchers import expect_true

OPENID = "openid"
DISCOVERY_PATH = "/.well-known/openid-configuration"
INTEROP = "interop"  # the catalogue `basis` of a rule outside Matrix that clients rely on
FINDING = "interoperability finding: "
# OpenID Connect Discovery 1.0 §3: the REQUIRED provider metadata (token_endpoint unless
# the provider offers the implicit flow only).
DISCOVERY_REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)
IMPLICIT_ONLY = frozenset({"id_token", "id_token token"})


def discovery_url(issuer: str) -> str:
    """Where OIDC Discovery §4 puts the document: the issuer, its trailing slash dropped,
    then /.well-known/openid-configuration."""
    return issuer.rstrip("/") + DISCOVERY_PATH


async def openid_configuration(
    client: MatrixClient, issuer: str, metadata: Metadata
) -> httpx.Response:
    """GET the issuer's OpenID discovery document (no credential goes with it)."""
    return await client.request(
        "GET",
        discovery_url(issuer),
        note="OpenID Connect discovery document",
        allow_origins=metadata.origins,
    )


def missing_discovery_fields(document: dict[str, Any], issuer: str) -> list[str]:
    """What the document lacks of OIDC Discovery's REQUIRED fields, and an issuer that is
    not the one it was fetched for (§4.3: identical)."""
    types = document.get("response_types_supported")
    implicit_only = isinstance(types, list) and bool(types) and set(types) <= IMPLICIT_ONLY
    wanted = [k for k in DISCOVERY_REQUIRED if not (k == "token_endpoint" and implicit_only)]
    missing = [k for k in wanted if document.get(k) in (None, "", [])]
    if "issuer" not in missing and document.get("issuer") != issuer:
        missing.append(f"issuer {issuer!r} (it says {document.get('issuer')!r})")
    return missing


def is_jws(value: Any) -> bool:
    """A compact JWS, as an ID token is (three base64url parts)."""
    return isinstance(value, str) and value.count(".") == 2 and all(value.split("."))


def expect_interop(
    condition: bool,
    message: str,
    *,
    req: str,
    resp: httpx.Response | None = None,
    expected: Any = None,
    observed: Any = None,
) -> None:
    """As `expect_true`, for a rule outside Matrix: INFO when broken, the message marked
    as an interoperability finding. A row not marked `interop`, or graded MUST or SHOULD,
    is a harness bug: it would FAIL or WARN a server on a rule Matrix does not make."""
    rule = requirements.get(req)
    if rule.basis != INTEROP or rule.level in ("MUST", "SHOULD"):
        raise HarnessError(f"{req} is not an interop row (basis {rule.basis}, {rule.level})")
    where = f"{resp.request.method} {resp.request.url.path}: " if resp is not None else ""
    expect_true(condition, FINDING + where + message, req=req, expected=expected, observed=observed)
