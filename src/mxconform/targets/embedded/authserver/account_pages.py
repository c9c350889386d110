"""The pages a person sees after logging in: device verification and account management."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, redirect, request, session
from werkzeug.wrappers import Response

from . import pages
from .core import Core
from .homeserver import HomeserverError
from .store import User

# Older names MAS also accepts for the same pages.
_ACTION_ALIASES = {
    "org.matrix.sessions_list": "org.matrix.devices_list",
    "org.matrix.session_view": "org.matrix.device_view",
    "org.matrix.session_end": "org.matrix.device_delete",
}


@dataclass(frozen=True)
class PageKit:
    """The browser-state helpers that every page view shares (made by `build_app`)."""

    current_user: Callable[[], User | None]
    csrf_ok: Callable[[], bool]
    page: Callable[..., Response]
    error_page: Callable[..., Response]
    login_redirect: Callable[..., Response]
    user_id_of: Callable[[User], str]


def register_account_pages(app: Flask, core: Core, kit: PageKit) -> None:
    """Device verification (`/link`, `/device/<id>`) and `account_management_uri` pages."""
    store = core.store
    current_user, csrf_ok, page, error_page = (
        kit.current_user,
        kit.csrf_ok,
        kit.page,
        kit.error_page,
    )
    login_redirect, user_id_of = kit.login_redirect, kit.user_id_of

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


def _session_name(core: Core, client_id: str | None, human_name: str | None, kind: str) -> str:
    if kind == "personal":
        return f"Personal session: {human_name or 'unnamed'}"
    client = core.client(client_id)
    return client.name if client is not None else "Unknown client"
