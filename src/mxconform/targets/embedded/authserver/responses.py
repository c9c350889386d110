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
