"""The subset of MAS's admin API the harness uses (JSON:API shapes, `urn:mas:admin` tokens)."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Flask, Response, jsonify, request

from .core import Core, UsernameTaken
from .homeserver import HomeserverError
from .scopes import MAS_ADMIN_SCOPE, ScopeError, parse_personal
from .store import Session, User, digest

PREFIX = "/api/admin/v1"
_USERNAME = re.compile(r"^[a-z0-9._=/+-]{1,64}$")


def _error(status: int, title: str) -> Response:
    response = jsonify({"errors": [{"title": title}]})
    response.status_code = status
    return response


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _user_resource(user: User) -> dict[str, Any]:
    return {
        "type": "user",
        "id": user.id,
        "attributes": {
            "username": user.username,
            "created_at": _iso(user.created_at),
            "locked_at": None,
            "deactivated_at": _iso(user.deactivated_at),
            "admin": False,
        },
        "links": {"self": f"{PREFIX}/users/{user.id}"},
    }


def _session_resource(session: Session, token: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "created_at": _iso(session.created_at),
        "revoked_at": _iso(session.finished_at),
        "actor_user_id": session.user_id,
        "human_name": session.human_name,
        "scope": session.scope,
        "expires_at": _iso(session.expires_at),
    }
    if token is not None:
        attributes["access_token"] = token  # shown once, at creation, as on MAS
    return {
        "type": "personal-session",
        "id": session.id,
        "attributes": attributes,
        "links": {"self": f"{PREFIX}/personal-sessions/{session.id}"},
    }


def _document(resource: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({"data": resource, "links": {"self": resource["links"]["self"]}})
    response.status_code = status
    return response


def register_admin_api(app: Flask, core: Core) -> None:
    store = core.store

    @app.before_request
    def _admin_token() -> Response | None:
        """Every admin call needs a live token whose session holds `urn:mas:admin`."""
        if not request.path.startswith(PREFIX + "/"):
            return None
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "Missing or malformed bearer token")
        row = store.one(
            "SELECT * FROM access_tokens WHERE hash = ?", digest(header[len("Bearer ") :])
        )
        now = time.time()
        if (
            row is None
            or row["revoked_at"] is not None
            or (row["expires_at"] is not None and row["expires_at"] <= now)
        ):
            return _error(401, "Invalid or expired access token")
        session = store.session(row["session_id"])
        if session is None or session.finished_at is not None:
            return _error(401, "Invalid or expired access token")
        if MAS_ADMIN_SCOPE not in session.scope.split():
            return _error(403, f"The token does not grant {MAS_ADMIN_SCOPE}")
        return None

    def body() -> dict[str, Any] | None:
        data = request.get_json(force=True, silent=True)
        return data if isinstance(data, dict) else None

    def user_or_404(user_id: str) -> User | Response:
        user = store.user(user_id)
        return user if user is not None else _error(404, f"User ID {user_id} not found")

    @app.post(f"{PREFIX}/users")
    def add_user() -> Response:
        data = body()
        username = data.get("username") if data else None
        if not isinstance(username, str) or not _USERNAME.match(username):
            return _error(400, "username must be 1 to 64 of a-z, 0-9 and . _ = / + -")
        try:
            user = core.create_user(username, None)
        except UsernameTaken:
            return _error(409, f"User with username {username} already exists")
        except HomeserverError:
            return _error(503, "The homeserver could not be reached")
        return _document(_user_resource(user), 201)

    @app.get(f"{PREFIX}/users/by-username/<username>")
    def user_by_username(username: str) -> Response:
        user = store.user_by_name(username)
        if user is None:
            return _error(404, f"User with username {username} not found")
        return _document(_user_resource(user))

    @app.get(f"{PREFIX}/users/<user_id>")
    def get_user(user_id: str) -> Response:
        found = user_or_404(user_id)
        return found if isinstance(found, Response) else _document(_user_resource(found))

    @app.post(f"{PREFIX}/users/<user_id>/set-password")
    def set_password(user_id: str) -> Response:
        found = user_or_404(user_id)
        if isinstance(found, Response):
            return found
        data = body()
        password = data.get("password") if data else None
        if not isinstance(password, str) or not password:
            return _error(400, "password must be a non-empty string")
        store.set_password(found.id, password)
        return Response(status=204)

    @app.post(f"{PREFIX}/users/<user_id>/deactivate")
    def deactivate(user_id: str) -> Response:
        found = user_or_404(user_id)
        if isinstance(found, Response):
            return found
        core.deactivate(found)
        refreshed = store.user(found.id)
        assert refreshed is not None
        return _document(_user_resource(refreshed))

    @app.post(f"{PREFIX}/personal-sessions")
    def add_personal_session() -> Response:
        data = body()
        if data is None:
            return _error(400, "The body must be a JSON object")
        actor, name, scope = data.get("actor_user_id"), data.get("human_name"), data.get("scope")
        expires_in = data.get("expires_in")
        if not isinstance(actor, str) or not isinstance(name, str) or not isinstance(scope, str):
            return _error(400, "actor_user_id, human_name and scope are required strings")
        if expires_in is not None and (
            not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0
        ):
            return _error(400, "expires_in must be a positive integer")
        try:
            parsed = parse_personal(scope)
        except ScopeError as exc:
            return _error(400, f"Invalid scope: {exc}")
        user = store.user(actor)
        if user is None:
            return _error(404, f"User ID {actor} not found")
        if user.deactivated_at is not None:
            return _error(400, "The user is deactivated")
        session = store.add_session(
            "personal",
            client_id=None,
            user_id=user.id,
            scope=str(parsed),
            device_id=parsed.device_id,
            human_name=name,
            expires_at=None if expires_in is None else time.time() + expires_in,
        )
        token = store.add_access_token(session, "mpt_", expires_in)
        if parsed.device_id is not None:  # as MAS: the device exists before the reply
            try:
                core.homeserver.upsert_device(user.username, parsed.device_id, name)
            except HomeserverError:
                store.finish_session(session.id)
                return _error(503, "The homeserver could not create the device")
        return _document(_session_resource(session, token), 201)

    @app.get(f"{PREFIX}/personal-sessions/<session_id>")
    def get_personal_session(session_id: str) -> Response:
        session = store.session(session_id)
        if session is None or session.kind != "personal":
            return _error(404, f"Personal session {session_id} not found")
        return _document(_session_resource(session))

    @app.post(f"{PREFIX}/personal-sessions/<session_id>/revoke")
    def revoke_personal_session(session_id: str) -> Response:
        session = store.session(session_id)
        if session is None or session.kind != "personal":
            return _error(404, f"Personal session {session_id} not found")
        if session.finished_at is not None:
            return _error(409, "The personal session is already revoked")
        core.end_session(session.id)
        ended = store.session(session.id)
        assert ended is not None
        return _document(_session_resource(ended))
