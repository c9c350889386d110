"""The Flask application: MAS's URL layout, the OAuth endpoints and the HTML pages."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest
from flask import Flask, g, jsonify, redirect, request, session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from . import pages
from .admin import register_admin_api
from .homeserver import HomeserverError
from .oauth import (
    DEVICE_GRANT,
    ClientCredentials,
    CodeGrant,
    Core,
    DeviceAuthorization,
    DeviceGrant,
    MatrixServer,
    RefreshGrant,
    Registration,
    Revocation,
    S256Required,
    UsernameTaken,
)
from .store import User, digest, new_id

log = logging.getLogger("mxconform.authserver")

ACCOUNT_ACTIONS = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.account_deactivate",
    "org.matrix.cross_signing_reset",
]
# Older names MAS also accepts for the same pages.
_ACTION_ALIASES = {
    "org.matrix.sessions_list": "org.matrix.devices_list",
    "org.matrix.session_view": "org.matrix.device_view",
    "org.matrix.session_end": "org.matrix.device_delete",
}
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
    }


class _Payload(JsonPayload):
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value


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
    server.register_grant(CodeGrant, [S256Required(required=True)])
    server.register_grant(RefreshGrant)
    server.register_grant(DeviceGrant)
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

    # Discovery

    @app.get("/.well-known/openid-configuration")
    @app.get("/.well-known/oauth-authorization-server")
    def discovery() -> Response:
        return jsonify(metadata(base))

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
            "code_challenge, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            grant_id,
            grant.client.client_id,
            redirect_uri,
            mode,
            request.args.get("scope") or "",
            state,
            request.args.get("code_challenge"),
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
                "fulfilled_at = ? WHERE id = ? AND status = 'pending'",
                user.id,
                digest(code),
                time.time(),
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
        session["uid"] = user.id
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
        session["uid"] = user.id
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

    @app.post("/oauth2/introspect")
    def introspect() -> Response:
        expected = f"Bearer {settings.shared_secret}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            response = jsonify({"error": "invalid_client"})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        presented = request.form.get("token")
        if not presented:
            return oauth_error(InvalidRequestError("token is required"))
        return jsonify(introspection(presented))

    def introspection(presented: str) -> dict[str, Any]:
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

    # Device verification pages

    @app.route("/link", methods=["GET", "POST"])
    def link() -> Response:
        if request.method == "GET":
            code = (request.args.get("code") or "").strip().upper()
            return page(pages.LINK, title="Link a device", code=code[:32])
        if not csrf_ok():
            return error_page("The form expired; go back and try again.")
        code = (request.form.get("code") or "").strip().upper().replace("-", "")
        row = store.one(
            "SELECT * FROM device_grants WHERE user_code = ? AND status = 'pending' "
            "AND expires_at > ?",
            code,
            time.time(),
        )
        if row is None:
            return page(
                pages.LINK, 400, title="Link a device", code="", error="Unknown or expired code."
            )
        return redirect(f"/device/{row['id']}", 303)

    @app.route("/device/<grant_id>", methods=["GET", "POST"])
    def device(grant_id: str) -> Response:
        row = store.one("SELECT * FROM device_grants WHERE id = ?", grant_id)
        if row is None or row["status"] != "pending" or row["expires_at"] <= time.time():
            return error_page("This device request is unknown, expired or answered.", 404)
        user = current_user()
        if user is None:
            return login_redirect("/login", "continue_device_code_grant", grant_id)
        client = core.client(row["client_id"])
        name = client.name if client is not None else row["client_id"]
        if request.method == "POST":
            if not csrf_ok():
                return error_page("The form expired; go back and try again.")
            action = request.form.get("action")
            if action == "reject":
                status, message = "rejected", "The device was not allowed."
            elif action == "consent" and request.form.get("confirm_device") == "on":
                status, message = "fulfilled", "The device is allowed; you can return to it."
            else:
                return page(
                    pages.DEVICE,
                    400,
                    title="Allow this device?",
                    client_name=name,
                    user_id=user_id_of(user),
                    scopes=row["scope"].split(),
                    error="Tick the box to confirm you started this sign-in.",
                )
            store.run(
                "UPDATE device_grants SET status = ?, user_id = ? WHERE id = ? "
                "AND status = 'pending'",
                status,
                user.id,
                grant_id,
            )
            return page(pages.MESSAGE, title="Done", message=message)
        return page(
            pages.DEVICE,
            title="Allow this device?",
            client_name=name,
            user_id=user_id_of(user),
            scopes=row["scope"].split(),
        )

    # Account management (account_management_uri)

    @app.route("/account/", methods=["GET", "POST"])
    def account() -> Response:
        user = current_user()
        if user is None:
            return login_redirect("/login")
        action = request.args.get("action") or ""
        action = _ACTION_ALIASES.get(action, action)
        device_id = request.args.get("device_id") or ""
        back = "/account/"
        mine = store.sessions_of(user.id)

        def listing() -> Response:
            rows = [
                {
                    "name": _session_name(core, s.client_id, s.human_name, s.kind),
                    "device_id": s.device_id,
                }
                for s in mine
                if s.kind != "client"
            ]
            return page(
                pages.ACCOUNT, title="Your account", user_id=user_id_of(user), sessions=rows
            )

        if request.method == "POST" and not csrf_ok():
            return error_page("The form expired; go back and try again.")
        if action == "org.matrix.profile":
            return page(
                pages.PROFILE,
                title="Profile",
                username=user.username,
                user_id=user_id_of(user),
                account_url=back,
            )
        if action in ("org.matrix.device_view", "org.matrix.device_delete"):
            holding = [s for s in mine if s.device_id and s.device_id == device_id]
            if not holding:
                return error_page("No such device on your account.", 404, "Unknown device")
            if action == "org.matrix.device_view":
                first = holding[0]
                return page(
                    pages.DEVICE_VIEW,
                    title="Device",
                    device_id=device_id,
                    name=_session_name(core, first.client_id, first.human_name, first.kind),
                    scope=first.scope,
                    account_url=back,
                )
            if request.method == "POST":
                for held in holding:
                    core.end_session(held.id)
                return page(pages.MESSAGE, title="Signed out", message="The device is signed out.")
            return page(
                pages.CONFIRM,
                title="Sign out this device?",
                message=f"Device {device_id} will be signed out and deleted.",
                button="Sign out",
                account_url=back,
            )
        if action == "org.matrix.cross_signing_reset":
            if request.method == "POST":
                try:
                    core.homeserver.allow_cross_signing_reset(user.username)
                except HomeserverError:
                    return error_page("The homeserver could not be reached; try again.", 503)
                return page(
                    pages.MESSAGE,
                    title="Cross-signing reset allowed",
                    message="Your client may now replace your cross-signing keys "
                    "(for the next 10 minutes).",
                )
            return page(
                pages.CONFIRM,
                title="Reset your cross-signing identity?",
                message="Allow your client to replace your cross-signing keys. Devices you "
                "verified will need verifying again.",
                button="Allow the reset",
                account_url=back,
            )
        if action == "org.matrix.account_deactivate":
            if request.method == "POST":
                core.deactivate(user)
                session.clear()
                return page(
                    pages.MESSAGE, title="Account deactivated", message="The account is closed."
                )
            return page(
                pages.CONFIRM,
                title="Deactivate your account?",
                message="Every session ends and you will not be able to sign in again.",
                button="Deactivate",
                account_url=back,
            )
        return listing()  # devices_list, an unknown action, or none

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


def _session_name(core: Core, client_id: str | None, human_name: str | None, kind: str) -> str:
    if kind == "personal":
        return f"Personal session: {human_name or 'unnamed'}"
    client = core.client(client_id)
    return client.name if client is not None else "Unknown client"
