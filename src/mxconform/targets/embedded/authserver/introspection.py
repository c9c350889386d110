"""Token introspection as Synapse calls it (`/oauth2/introspect` with the shared secret)."""

from __future__ import annotations

import hmac
import time
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from .core import Core
from .responses import oauth_error
from .store import Store


def register_introspection(app: Flask, core: Core, shared_secret: str) -> None:
    """Only Synapse may introspect: a request without its secret is `invalid_client`."""

    @app.post("/oauth2/introspect")
    def introspect() -> Response:
        expected = f"Bearer {shared_secret}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            response = jsonify({"error": "invalid_client"})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        presented = request.form.get("token")
        if not presented:
            return oauth_error(InvalidRequestError("token is required"))
        return jsonify(introspection(core.store, presented))


def introspection(store: Store, presented: str) -> dict[str, Any]:
    """Only access tokens are active here: Synapse is the only caller, and a refresh
    token must never pass for an access token."""
    row = store.access_token(presented)
    now = time.time()
    if row is None or row["revoked_at"] is not None:
        return {"active": False}
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return {"active": False}
    sess = store.session(row["session_id"])
    if sess is None or sess.finished_at is not None:
        return {"active": False}
    user = store.user(sess.user_id) if sess.user_id else None
    if sess.user_id is not None and (user is None or user.deactivated_at is not None):
        return {"active": False}
    store.mark_used(row["hash"])  # the new pair is in use: the old refresh token is done
    reply: dict[str, Any] = {
        "active": True,
        "scope": sess.scope,
        "token_type": "access_token",
        "iat": int(row["created_at"]),
    }
    if sess.client_id:
        reply["client_id"] = sess.client_id
    if user is not None:
        reply["username"] = user.username
        reply["sub"] = user.id
    if sess.device_id:
        reply["device_id"] = sess.device_id
    if row["expires_at"] is not None:
        reply["exp"] = int(row["expires_at"])
        reply["expires_in"] = max(0, int(row["expires_at"] - now))
    return reply
