"""Discovery: the server metadata (RFC 8414 and OIDC Discovery 1.0 in one document, at both
well-known paths, as MAS serves it) and the JWK Set its ID tokens are signed with."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.wrappers import Response

from .core import DEVICE_GRANT
from .oidc import JWKS_PATH, SigningKey, discovery_fields

ACCOUNT_ACTIONS = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.account_deactivate",
    "org.matrix.cross_signing_reset",
]


def metadata(base: str) -> dict[str, Any]:
    """The discovery document; Synapse serves it verbatim as /auth_metadata."""
    auth_methods = ["none", "client_secret_basic", "client_secret_post"]
    return {
        "issuer": base + "/",
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/oauth2/token",
        "revocation_endpoint": base + "/oauth2/revoke",
        "registration_endpoint": base + "/oauth2/registration",
        "device_authorization_endpoint": base + "/oauth2/device",
        "introspection_endpoint": base + "/oauth2/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            DEVICE_GRANT,
            "client_credentials",
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "account_management_uri": base + "/account/",
        "account_management_actions_supported": ACCOUNT_ACTIONS,
        "prompt_values_supported": ["create"],
        **discovery_fields(base),
    }


def register_discovery(app: Flask, base: str, key: SigningKey) -> None:
    @app.get("/.well-known/openid-configuration")
    @app.get("/.well-known/oauth-authorization-server")
    def discovery() -> Response:
        return jsonify(metadata(base))

    @app.get(JWKS_PATH)
    def jwks() -> Response:
        return jsonify(key.jwks())
