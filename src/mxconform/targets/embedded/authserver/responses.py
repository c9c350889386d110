"""Responses the app's views and the introspection endpoint share."""

from __future__ import annotations

import json

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import redirect
from werkzeug.wrappers import Response


def oauth_error(error: OAuth2Error) -> Response:
    status, body, headers = error()
    response = Response(json.dumps(body), status=status)
    for name, value in headers:
        response.headers[name] = value
    response.headers["Content-Type"] = "application/json"
    return response


def client_redirect(uri: str, params: list[tuple[str, str]], mode: str) -> Response:
    """A 303 to the client with the result in the query or the fragment."""
    location = add_params_to_uri(uri, params, fragment=(mode == "fragment"))
    return redirect(location, 303)


# The endpoints a browser client on another origin calls (discovery, the ID tokens' keys,
# registration, token, revocation, device authorisation), with the CORS headers MAS sends
# them: no cookies, so any origin. The pages (authorize, login, consent, account) are
# navigations and get none.
CORS_PATHS = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth2/keys.json",
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/device",
        "/oauth2/registration",
    }
)
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept",
    "Access-Control-Max-Age": "600",
}
