"""The Flask application: MAS's URL layout, the OAuth endpoints and the HTML pages."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest
from flask import Flask, g, jsonify, redirect, request, session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from . import pages
from .account_pages import PageKit, register_account_pages
from .admin import register_admin_api
from .core import Core, UsernameTaken
from .discovery import register_discovery
from .grants import (
    ClientCredentials,
    CodeGrant,
    DeviceAuthorization,
    DeviceGrant,
    MatrixServer,
    RefreshGrant,
    Registration,
    Revocation,
    S256Required,
)
from .homeserver import HomeserverError
from .introspection import register_introspection
from .oidc import IdTokens, SigningKey
from .responses import CORS_HEADERS, CORS_PATHS, client_redirect, oauth_error
from .store import User, digest, new_id

log = logging.getLogger("mxconform.authserver")

_GRANT_ID = re.compile(r"^[0-9A-Z]{26}$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9/?&=%._~+-]*$")
_USERNAME = re.compile(r"^[a-z0-9._=/+-]{1,64}$")
_KINDS = {
    "continue_authorization_grant": "/consent/",
    "continue_device_code_grant": "/device/",
}


@dataclass
class Settings:
    base_url: str
    server_name: str
    shared_secret: str
    device_code_interval_s: int


class _Payload(JsonPayload):
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value


def build_app(settings: Settings, core: Core) -> Flask:
    app = Flask("mxconform.authserver")
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_NAME="session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1 << 20,
    )
    base = settings.base_url
    store = core.store
    server = MatrixServer(core)
    key = SigningKey()
    id_tokens = IdTokens(base + "/", key)  # as MAS: the code and device grants, not refresh
    server.register_grant(CodeGrant, [S256Required(required=True), id_tokens])
    server.register_grant(RefreshGrant)
    server.register_grant(DeviceGrant, [id_tokens])
    server.register_grant(ClientCredentials)
    server.register_endpoint(Revocation(server))
    device_endpoint: Any = DeviceAuthorization(server, base, settings.device_code_interval_s)
    server.register_endpoint(device_endpoint)  # an RFC 8628 endpoint predates authlib's base
    registration = Registration(server)

    # Browser state: the login session (Flask's signed cookie) and the CSRF token cookie.

    def current_user() -> User | None:
        user_id = session.get("uid")
        user = store.user(user_id) if isinstance(user_id, str) else None
        if user is None or user.deactivated_at is not None:
            return None
        return user

    def csrf_token() -> str:
        token = request.cookies.get("csrf")
        if not token or len(token) > 100:
            token = g.get("new_csrf") or secrets.token_urlsafe(32)
            g.new_csrf = token
        return token

    def csrf_ok() -> bool:
        cookie = request.cookies.get("csrf") or ""
        field = request.form.get("csrf") or ""
        return bool(cookie) and hmac.compare_digest(cookie.encode(), field.encode())

    @app.after_request
    def _set_csrf(response: Response) -> Response:
        token = g.get("new_csrf")
        if token:
            response.set_cookie("csrf", token, httponly=True, samesite="Lax", max_age=3600)
        response.headers.setdefault("Cache-Control", "no-store")
        if request.path in CORS_PATHS:  # what a web client calls from its own origin, as MAS
            response.headers.update(CORS_HEADERS)
        return response

    def page(template: str, status: int = 200, **context: Any) -> Response:
        html = pages.render(template, csrf=csrf_token(), **context)
        return Response(html, status=status, mimetype="text/html")

    def error_page(
        message: str, status: int = 400, title: str = "Something went wrong"
    ) -> Response:
        return page(pages.ERROR, status, title=title, message=message)

    def continuation() -> str:
        """Where to go after logging in or registering (MAS's post-auth actions)."""
        kind, ident = request.args.get("kind"), request.args.get("id") or ""
        if kind in _KINDS and _GRANT_ID.match(ident):
            return _KINDS[kind] + ident
        target = request.args.get("next") or ""
        if target.startswith("/account/") and _SAFE_PATH.match(target):
            return target  # only back to our own account pages: no open redirect
        return "/account/"

    def login_redirect(path: str, kind: str | None = None, ident: str | None = None) -> Response:
        if kind is not None and ident is not None:
            return redirect(f"{path}?kind={kind}&id={ident}", 303)
        return redirect(f"{path}?next={quote(request.full_path.rstrip('?'), safe='')}", 303)

    def user_id_of(user: User) -> str:
        return f"@{user.username}:{settings.server_name}"

    register_discovery(app, base, key)

    # Authorisation endpoint

    @app.get("/authorize")
    def authorize() -> Response:
        mode = request.args.get("response_mode") or "query"
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as error:
            if error.redirect_uri:
                valid_mode = mode if mode in ("query", "fragment") else "query"
                params: list[tuple[str, str]] = [
                    (str(k), str(v)) for k, v in error.get_body() if v is not None
                ]
                return client_redirect(error.redirect_uri, params, valid_mode)
            # RFC 6749 §4.1.2.1: never redirect to an unverified client or redirect URI.
            return error_page(
                f"This authorisation request is invalid ({error.error}): "
                f"{error.get_error_description() or 'no detail'}",
            )
        redirect_uri: str = grant.redirect_uri
        state = request.args.get("state")
        if mode not in ("query", "fragment"):
            failure = [("error", "invalid_request")]
            failure += [("error_description", "response_mode must be query or fragment")]
            return client_redirect(redirect_uri, failure + _state(state), "query")
        prompts = (request.args.get("prompt") or "").split()
        user = current_user()
        if "none" in prompts:  # as MAS: consent is always interactive, so this always fails
            failure = [("error", "login_required")]
            return client_redirect(redirect_uri, failure + _state(state), mode)
        grant_id = new_id()
        store.run(
            "INSERT INTO auth_grants (id, client_id, redirect_uri, response_mode, scope, state, "
            "code_challenge, nonce, created_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            grant_id,
            grant.client.client_id,
            redirect_uri,
            mode,
            request.args.get("scope") or "",
            state,
            request.args.get("code_challenge"),
            request.args.get("nonce"),  # for the ID token (OIDC Core 1.0 §3.1.2.1)
            time.time(),
        )
        if user is not None:
            return redirect(f"/consent/{grant_id}", 303)
        entry = "/register" if "create" in prompts else "/login"
        response = login_redirect(entry, "continue_authorization_grant", grant_id)
        hint = request.args.get("login_hint") or ""
        if hint.startswith("mxid:@") and ":" in hint[6:]:  # MAS passes the hint to the page
            response.headers["Location"] += "&login_hint=" + quote(hint, safe="")
        return response

    def _state(state: str | None) -> list[tuple[str, str]]:
        return [("state", state)] if state else []

    @app.route("/consent/<grant_id>", methods=["GET", "POST"])
    def consent(grant_id: str) -> Response:
        row = store.one("SELECT * FROM auth_grants WHERE id = ?", grant_id)
        if row is None or row["status"] != "pending" or row["created_at"] + 3600 < time.time():
            return error_page("This authorisation request is unknown, expired or answered.", 404)
        user = current_user()
        if user is None:
            return login_redirect("/login", "continue_authorization_grant", grant_id)
        client = core.client(row["client_id"])
        if client is None:
            return error_page("The client is no longer registered.", 404)
        if request.method == "POST":
            if not csrf_ok():
                return error_page("The form expired; go back and try again.")
            params = _state(row["state"])
            if request.form.get("action") == "deny":
                store.run("UPDATE auth_grants SET status = 'denied' WHERE id = ?", grant_id)
                denied = [("error", "access_denied")]
                return client_redirect(row["redirect_uri"], denied + params, row["response_mode"])
            code = secrets.token_urlsafe(32)
            changed = store.run(
                "UPDATE auth_grants SET status = 'fulfilled', user_id = ?, code_hash = ?, "
                "fulfilled_at = ?, auth_time = ? WHERE id = ? AND status = 'pending'",
                user.id,
                digest(code),
                time.time(),
                session.get("auth_time"),
                grant_id,
            )
            if not changed:
                return error_page("This authorisation request was already answered.", 409)
            return client_redirect(
                row["redirect_uri"], [("code", code), *params], row["response_mode"]
            )
        return page(
            pages.CONSENT,
            title="Allow access?",
            client_name=client.name,
            client_uri=client.metadata.get("client_uri"),
            user_id=user_id_of(user),
            scopes=row["scope"].split(),
        )

    # Login and registration

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        other = "/register" + (f"?{request.query_string.decode()}" if request.query_string else "")
        if request.method == "GET":
            hint = request.args.get("login_hint") or ""
            hinted = hint[6:].split(":", 1)[0] if hint.startswith("mxid:@") else ""
            return page(pages.LOGIN, title="Sign in", username=hinted, other_url=other)
        if not csrf_ok():
            return error_page("The form expired; go back and try again.")
        username = (request.form.get("username") or "").strip()
        if username.startswith("@") and ":" in username:
            username = username[1:].split(":", 1)[0]  # a full Matrix ID names its localpart
        user = store.check_password(username, request.form.get("password") or "")
        if user is None:
            return page(
                pages.LOGIN,
                400,
                title="Sign in",
                username=username,
                other_url=other,
                error="Invalid username or password.",
            )
        session.clear()
        session["uid"], session["auth_time"] = user.id, int(time.time())
        return redirect(continuation(), 303)

    @app.route("/register", methods=["GET", "POST"])
    def register() -> Response:
        other = "/login" + (f"?{request.query_string.decode()}" if request.query_string else "")

        def again(message: str, username: str = "") -> Response:
            return page(
                pages.REGISTER,
                400,
                title="Create an account",
                username=username,
                other_url=other,
                error=message,
            )

        if request.method == "GET":
            return page(pages.REGISTER, title="Create an account", username="", other_url=other)
        if not csrf_ok():
            return error_page("The form expired; go back and try again.")
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        if not _USERNAME.match(username):
            return again("Usernames are 1 to 64 of a-z, 0-9 and . _ = / + -", username)
        if not password:
            return again("A password is required.", username)
        if password != request.form.get("password_confirm"):
            return again("The passwords do not match.", username)
        try:
            user = core.create_user(username, password)
        except UsernameTaken:
            return again("That username is taken.", username)
        except HomeserverError:
            return error_page("The homeserver could not be reached; try again.", 503)
        session.clear()
        session["uid"], session["auth_time"] = user.id, int(time.time())
        return redirect(continuation(), 303)

    # Token, revocation, registration, introspection, device authorisation

    @app.post("/oauth2/token")
    def token() -> Response:
        if not request.form.get("grant_type"):
            return oauth_error(InvalidRequestError("grant_type is required"))
        return cast(Response, server.create_token_response())

    @app.post("/oauth2/revoke")
    def revoke() -> Response:
        if not request.form.get("token"):
            return oauth_error(InvalidRequestError("token is required"))
        return cast(Response, server.create_endpoint_response("revocation"))

    @app.post("/oauth2/device")
    def device_authorization() -> Response:
        return cast(Response, server.create_endpoint_response("device_authorization"))

    @app.post("/oauth2/registration")
    def register_client() -> Response:
        body = request.get_json(force=True, silent=True)
        req = JsonRequest(request.method, request.url, dict(request.headers))
        req.payload = _Payload(body)
        try:
            status, data, _ = registration.create_registration_response(req)
        except OAuth2Error as error:
            return oauth_error(error)
        response = jsonify(data)
        response.status_code = status
        return response

    register_introspection(app, core, settings.shared_secret)
    register_account_pages(
        app,
        core,
        PageKit(current_user, csrf_ok, page, error_page, login_redirect, user_id_of),
    )
    register_admin_api(app, core)

    # Errors: RFC-shaped JSON for the API, a page for people, never a traceback.

    def wants_json() -> bool:
        return request.path.startswith(("/oauth2/", "/.well-known/", "/api/"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 400
        if request.path.startswith("/api/"):
            response = jsonify({"errors": [{"title": exc.description or exc.name}]})
        elif wants_json():
            code = {404: "not_found", 405: "invalid_request"}.get(status, "invalid_request")
            response = jsonify({"error": code, "error_description": exc.name})
        else:
            return error_page(exc.description or exc.name, status, exc.name)
        response.status_code = status
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return http_error(exc)
        if isinstance(exc, HomeserverError):
            message, status = "the homeserver could not be reached", 503
        else:
            log.error("unexpected %s at %s", type(exc).__name__, request.path)
            message, status = "internal error", 500
        if wants_json():
            response = jsonify({"error": "server_error", "error_description": message})
            if request.path.startswith("/api/"):
                response = jsonify({"errors": [{"title": message}]})
            response.status_code = status
            return response
        return error_page(message, status)

    return app
