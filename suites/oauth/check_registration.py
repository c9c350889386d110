"""Dynamic client registration (RFC 7591) under Matrix's rules for URIs and redirects."""

from dataclasses import dataclass
from typing import Any

import pytest

from mxconform.oauth.client import native_client
from mxconform.spec.matchers import body, expect, match

pytestmark = pytest.mark.api("oauth")

SITE = "https://client.mxconform.example.org/"


def web(redirects: list[str], **extra: Any) -> dict[str, Any]:
    return native_client(redirects, **({"application_type": "web", "client_uri": SITE} | extra))


def native(redirects: list[str], **extra: Any) -> dict[str, Any]:
    return native_client(redirects, **({"client_uri": SITE} | extra))


@dataclass(frozen=True)
class Case:
    id: str
    requirement: str
    metadata: dict[str, Any]

    def __str__(self) -> str:
        return self.id


VALID = (
    Case("web", "OAUTH-REDIR-WEB", web([SITE + "callback"])),
    Case("web-subdomain", "OAUTH-REDIR-WEB", web(["https://app.client.mxconform.example.org/cb"])),
    Case(
        "web-port-query", "OAUTH-REDIR-WEB", web(["https://client.mxconform.example.org:5173/?q=v"])
    ),
    Case(
        "native-scheme", "OAUTH-REDIR-NATIVE-SCHEME", native(["org.example.mxconform.client:/cb"])
    ),
    Case("native-loopback", "OAUTH-REDIR-LOOPBACK", native(["http://127.0.0.1/callback"])),
    Case("native-localhost", "OAUTH-REDIR-LOOPBACK", native(["http://localhost/callback"])),
    Case("native-claimed-https", "OAUTH-REDIR-CLAIMED-HTTPS", native([SITE + "cb"])),
    Case(
        "unknown-types-ignored",
        "OAUTH-DCR-GRANT-TYPES",
        native(
            ["http://127.0.0.1/callback"],
            grant_types=["authorization_code", "refresh_token", "urn:example:made-up"],
            response_types=["code", "made-up"],
        ),
    ),
    Case(
        "same-host-uris",
        "OAUTH-DCR-COMMON-BASE",
        web(
            [SITE + "cb"],
            logo_uri=SITE + "logo.png",
            tos_uri="https://docs.client.mxconform.example.org/tos",
        ),
    ),
)

INVALID = (
    Case(
        "client-uri-http",
        "OAUTH-DCR-CLIENT-URI",
        native(["http://127.0.0.1/cb"], client_uri="http://client.mxconform.example.org/"),
    ),
    Case(
        "client-uri-userinfo",
        "OAUTH-DCR-CLIENT-URI",
        native(["http://127.0.0.1/cb"], client_uri="https://user:pw@client.mxconform.example.org/"),
    ),
    Case(
        "logo-other-host",
        "OAUTH-DCR-COMMON-BASE-OTHER",
        web([SITE + "cb"], logo_uri="https://elsewhere.example.net/logo.png"),
    ),
    Case(
        "logo-http",
        "OAUTH-DCR-LOGO",
        web([SITE + "cb"], logo_uri="http://client.mxconform.example.org/logo.png"),
    ),
    Case(
        "tos-http",
        "OAUTH-DCR-TOS-POLICY",
        web([SITE + "cb"], tos_uri="http://client.mxconform.example.org/tos"),
    ),
    Case("web-redirect-http", "OAUTH-REDIR-WEB", web(["http://client.mxconform.example.org/cb"])),
    Case("web-redirect-other-host", "OAUTH-REDIR-WEB", web(["https://elsewhere.example.net/cb"])),
    Case("web-redirect-localhost", "OAUTH-REDIR-WEB", web(["http://localhost/"])),
    Case("redirect-fragment", "OAUTH-REDIR-NOFRAG", web([SITE + "cb#frag"])),
    Case(
        "native-scheme-not-reverse-dns", "OAUTH-REDIR-NATIVE-SCHEME", native(["example:/callback"])
    ),
    Case(
        "native-scheme-with-authority",
        "OAUTH-REDIR-NATIVE-SCHEME",
        native(["org.example.mxconform.client://cb"]),
    ),
    Case("loopback-with-port", "OAUTH-REDIR-LOOPBACK", native(["http://127.0.0.1:1234/cb"])),
    Case("loopback-https", "OAUTH-REDIR-LOOPBACK", native(["https://localhost/cb"])),
)

ERRORS = ("invalid_redirect_uri", "invalid_client_metadata")


@pytest.mark.parametrize("case", VALID, ids=str)
@pytest.mark.check("oauth.dcr.accepted", "OAUTH-DCR-FLOW", "OAUTH-DCR-AUTH-NONE")
async def check_valid_registration_is_accepted(oauth, case):
    """A public client with valid metadata is registered: 201 with a client_id."""
    resp = await oauth.register(case.metadata)
    expect(
        resp,
        match.status(201),
        match.json_key_type("client_id", str, absent_ok=False),
        req=case.requirement,
    )
    expect(
        resp,
        match.json_key_in("token_endpoint_auth_method", ("none",), absent_ok=True),
        req="OAUTH-DCR-AUTH-NONE",
    )


@pytest.mark.parametrize("case", INVALID, ids=str)
@pytest.mark.check("oauth.dcr.refused", "OAUTH-DCR-REDIRECT-VALIDATE", "OAUTH-REDIR-RFC8252")
async def check_invalid_registration_is_refused(oauth, case):
    """Metadata breaking one rule is refused with 400 and an RFC 7591 error code."""
    resp = await oauth.register(case.metadata)
    expect(resp, match.status(400), match.oauth_error(*ERRORS), req=case.requirement)


@pytest.mark.check("oauth.dcr.default-web", "OAUTH-DCR-APP-TYPE")
async def check_missing_application_type_means_web(oauth):
    """Without application_type the client is a web client: a loopback http redirect,
    fine for native apps, is refused."""
    metadata = native(["http://127.0.0.1/callback"])
    del metadata["application_type"]
    resp = await oauth.register(metadata)
    expect(resp, match.status(400), match.oauth_error(*ERRORS))


@pytest.mark.check(
    "oauth.dcr.unknown-types-dropped", "OAUTH-DCR-RESPONSE-TYPES", "OAUTH-DCR-GRANT-TYPES"
)
async def check_unknown_types_are_not_echoed_as_granted(oauth):
    """Unknown grant and response types are ignored, not granted: the echo leaves them out
    or the server simply accepts the registration."""
    resp = await oauth.register(VALID[7].metadata)
    expect(resp, match.status(201))
    data = body(resp) or {}
    granted = (data.get("grant_types") or []) + (data.get("response_types") or [])
    if "urn:example:made-up" in granted or "made-up" in granted:
        from mxconform.spec.verdicts import observe

        observe(f"the registration echoes unknown types as accepted: {granted}")
