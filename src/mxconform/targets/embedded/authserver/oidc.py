"""OpenID Connect, as MAS does it: when `openid` is granted, the code and device grants'
token responses carry an ID token, signed with a key published at `jwks_uri`.

Clients built on OIDC libraries refuse a token response that grants `openid` without one
(matrix-js-sdk 41's oidc-client-ts did: issue 25). authlib's OpenID extension builds the
token (claims, `nonce`, `auth_time`, `at_hash`) and signs it through joserfc, the JOSE
library authlib itself uses; this module only says which key, issuer and subject.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDToken
from joserfc.jwk import KeySet, RSAKey

from .core import Client
from .store import User

JWKS_PATH = "/oauth2/keys.json"  # MAS's path
ALG = "RS256"  # OIDC Discovery: RS256 MUST be among the signing algorithms
ID_TOKEN_LIFETIME_S = 3600  # MAS: one hour
CLAIMS = ["iss", "sub", "aud", "iat", "exp", "nonce", "auth_time", "at_hash"]


class SigningKey:
    """The server's ID token key: made at start, never written anywhere (as the CA)."""

    def __init__(self) -> None:
        params: Any = {"use": "sig", "alg": ALG}
        self.key = RSAKey.generate_key(2048, parameters=params, auto_kid=True)

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def jwks(self) -> dict[str, Any]:
        """The public half, as a JWK Set (RFC 7517 §5)."""
        return dict(KeySet([self.key]).as_dict(private=False))


def discovery_fields(base: str) -> dict[str, Any]:
    """What OIDC Discovery 1.0 §3 requires beyond RFC 8414's fields (MAS lists them too)."""
    return {
        "jwks_uri": base + JWKS_PATH,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALG],
        "scopes_supported": ["openid"],
        "claims_supported": CLAIMS,
    }


class IdTokens(OpenIDToken):
    """authlib's ID token extension for a grant: our issuer and key; `sub` is the account's
    own ID (stable, never reused, as MAS's), `aud` the client's ID."""

    DEFAULT_EXPIRES_IN = ID_TOKEN_LIFETIME_S

    def __init__(self, issuer: str, key: SigningKey) -> None:
        self.issuer = issuer
        self.signing = key

    def resolve_client_private_key(self, client: Client) -> Any:
        return self.signing.key

    def get_client_algorithm(self, client: Client) -> str:
        return ALG

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ALG, "kid": self.signing.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.issuer, "aud": client.get_client_id()}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(sub=user.id)
