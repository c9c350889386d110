"""Dynamic client registration under the Matrix rules (public clients, MSC2966-style URIs).

authlib's RFC 7591 endpoint does the protocol; these checks decide what a Matrix client may
register: where its URIs may point, given its `client_uri` and `application_type`.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import SplitResult, urlsplit

from authlib.oauth2.rfc7591 import InvalidClientMetadataError, InvalidRedirectURIError

KNOWN_GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
)
KNOWN_RESPONSE_TYPES = ("code",)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SAME_SITE_URIS = ("logo_uri", "tos_uri", "policy_uri")


def _split(value: Any, field: str) -> SplitResult:
    if not isinstance(value, str) or not value:
        raise InvalidClientMetadataError(f"{field} must be a non-empty string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidClientMetadataError(f"{field} is not a valid URI") from None
    return parts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _on_site(host: str | None, site: str) -> bool:
    return host is not None and (host == site or host.endswith("." + site))


def _https_on_site(parts: SplitResult, site: str) -> bool:
    return (
        parts.scheme == "https"
        and "@" not in parts.netloc
        and _on_site(parts.hostname, site)
        and not parts.fragment
    )


def _native_redirect(uri: str, parts: SplitResult, site: str) -> bool:
    if parts.scheme == "https":
        return _https_on_site(parts, site)
    if parts.scheme == "http":
        # RFC 8252 loopback redirection: registered without a port, any port is used later.
        return (
            parts.hostname in LOOPBACK_HOSTS
            and parts.port is None
            and "@" not in parts.netloc
            and not parts.fragment
        )
    reverse = ".".join(reversed(site.split(".")))
    private_scheme = parts.scheme == reverse or parts.scheme.startswith(reverse + ".")
    no_authority = not uri[len(parts.scheme) + 1 :].startswith("//")
    return private_scheme and no_authority and not parts.fragment


def check_metadata(raw: Any) -> dict[str, Any]:
    """The metadata to register, cleaned; an RFC 7591 error for anything Matrix refuses."""
    if not isinstance(raw, dict):
        raise InvalidClientMetadataError("the body must be a JSON object")
    data = dict(raw)
    client_uri = _split(data.get("client_uri"), "client_uri")
    site = client_uri.hostname
    if (
        client_uri.scheme != "https"
        or "@" in client_uri.netloc
        or not site
        or site == "localhost"
        or _is_ip(site)
    ):
        raise InvalidClientMetadataError("client_uri must be an https URL on a DNS name")
    for field in _SAME_SITE_URIS:
        if field in data and not _https_on_site(_split(data[field], field), site):
            raise InvalidClientMetadataError(f"{field} must be https on the client_uri host")

    method = data.setdefault("token_endpoint_auth_method", "none")
    if method != "none":
        raise InvalidClientMetadataError("only public clients (token_endpoint_auth_method none)")
    for field, known, default in (
        ("grant_types", KNOWN_GRANT_TYPES, ["authorization_code"]),
        ("response_types", KNOWN_RESPONSE_TYPES, ["code"]),
    ):
        values = data.get(field, default)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidClientMetadataError(f"{field} must be a list of strings")
        data[field] = [v for v in dict.fromkeys(values) if v in known]  # unknown values dropped
    if "client_name" in data and not isinstance(data["client_name"], str):
        raise InvalidClientMetadataError("client_name must be a string")

    kind = data.setdefault("application_type", "web")
    if kind not in ("web", "native"):
        raise InvalidClientMetadataError("application_type must be web or native")
    uris = data.get("redirect_uris")
    if uris is None and "authorization_code" in data["grant_types"]:
        raise InvalidRedirectURIError("redirect_uris is required for the authorization code grant")
    if uris is not None:
        if not isinstance(uris, list) or not uris:
            raise InvalidRedirectURIError("redirect_uris must be a non-empty list")
        for uri in uris:
            parts = _split(uri, "redirect_uris")
            if parts.fragment or "#" in uri:
                raise InvalidRedirectURIError("a redirect URI must not have a fragment")
            allowed = (
                _https_on_site(parts, site) if kind == "web" else _native_redirect(uri, parts, site)
            )
            if not allowed:
                raise InvalidRedirectURIError(f"redirect URI not allowed for a {kind} client")
    return data
