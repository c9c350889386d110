"""A deliberately non-conformant stand-in: a reverse proxy in front of a real Synapse that
breaks exactly one rule, so the project's tests can show each check turning FAIL.

Built on the standard library's threading HTTP server and httpx; each `Breakage` rewrites the
request on its way in or the response on its way out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

PROBE_PATHS = ("/account/whoami", "/devices", "/account_data/", "/profile/", "/sync")


@dataclass
class Exchange:
    method: str
    path: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] | None = None
    response_body: bytes = b""
    proxy: BreakingProxy | None = None
    set_cookies: list[str] | None = None

    def has_credentials(self) -> bool:
        query = dict(parse_qsl(urlsplit(self.path).query))
        return "access_token" in query or any(k.lower() == "authorization" for k, _ in self.headers)

    def is_probe(self) -> bool:
        return urlsplit(self.path).path.startswith("/_matrix/client/v3") and any(
            p in self.path for p in PROBE_PATHS
        )

    def json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    def set_json(self, data: Any) -> None:
        self.response_body = json.dumps(data).encode()


@dataclass(frozen=True)
class Breakage:
    """One broken rule: `inbound` may answer by itself (set status), `outbound` rewrites."""

    name: str
    inbound: Callable[[Exchange], None] = lambda ex: None
    outbound: Callable[[Exchange], None] = lambda ex: None
    # The same for requests the proxy forwards to the OAuth server.
    auth_inbound: Callable[[Exchange], None] = lambda ex: None
    auth_outbound: Callable[[Exchange], None] = lambda ex: None


def _strip_query_token(ex: Exchange) -> None:
    parts = urlsplit(ex.path)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"
    ]
    ex.path = parts.path + (f"?{urlencode(query)}" if query else "")


def _answer_without_token(ex: Exchange) -> None:
    if ex.is_probe() and not ex.has_credentials():
        ex.status = 200
        ex.response_headers = {"content-type": "application/json"}
        ex.set_json({"user_id": "@nobody:localhost"})


def _rewrite_errcode(ex: Exchange) -> None:
    data = ex.json()
    if isinstance(data, dict) and data.get("errcode") == "M_UNKNOWN_TOKEN":
        data["errcode"] = "M_FORBIDDEN"
        ex.set_json(data)


def _plain_text_errors(ex: Exchange) -> None:
    data = ex.json()
    if ex.status >= 400 and isinstance(data, dict):
        data.pop("error", None)
        ex.set_json(data)
        assert ex.response_headers is not None
        ex.response_headers["content-type"] = "text/plain"


def _advertise_v1_20(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/versions":
        ex.set_json({"versions": ["v1.20"]})


def _advertise_v1_12(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/versions":
        ex.set_json({"versions": ["v1.11", "v1.12"]})


def _whoami_wrong_device(ex: Exchange) -> None:
    data = ex.json()
    if (
        ex.path.startswith("/_matrix/client/v3/account/whoami")
        and isinstance(data, dict)
        and "device_id" in data
    ):
        data["device_id"] = "NOTMYDEVICE"
        ex.set_json(data)


def _accept_wrong_password(ex: Exchange) -> None:
    if ex.path.startswith("/_matrix/client/v3/login") and ex.method == "POST" and ex.status == 403:
        ex.status = 200
        ex.set_json(
            {
                "user_id": "@someone:localhost",
                "access_token": "forged-token-000",
                "device_id": "FORGED",
            }
        )


def _never_refuse_refresh(ex: Exchange) -> None:
    if ex.path.startswith("/_matrix/client/v3/refresh") and 400 <= ex.status < 500:
        ex.status = 200
        ex.set_json(
            {
                "access_token": "forged-access-000",
                "refresh_token": "forged-refresh-000",
                "expires_in_ms": 60000,
            }
        )


def _logout_does_nothing(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/v3/logout":
        ex.status = 200
        ex.response_headers = {"content-type": "application/json"}
        ex.set_json({})


def _uia_flows_without_stages(ex: Exchange) -> None:
    """UIA flows in the pre-r0 shape ({type} instead of {stages: [...]})."""
    data = ex.json()
    if ex.status == 401 and isinstance(data, dict) and isinstance(data.get("flows"), list):
        data["flows"] = [{"type": (f.get("stages") or ["?"])[0]} for f in data["flows"]]
        ex.set_json(data)


def _uia_before_username_check(ex: Exchange) -> None:
    data = ex.json()
    if (
        urlsplit(ex.path).path == "/_matrix/client/v3/register"
        and ex.status == 400
        and isinstance(data, dict)
        and data.get("errcode") == "M_USER_IN_USE"
    ):
        ex.status = 401
        ex.set_json({"flows": [{"stages": ["m.login.dummy"]}], "params": {}, "session": "s1"})


def _expired_is_hard_logout(ex: Exchange) -> None:
    data = ex.json()
    if isinstance(data, dict) and data.get("soft_logout") is True:
        data["soft_logout"] = False
        ex.set_json(data)


def _uia_wrong_password_accepted(ex: Exchange) -> None:
    data = ex.json()
    if (
        ex.status == 401
        and isinstance(data, dict)
        and "flows" in data
        and data.get("errcode") == "M_FORBIDDEN"
    ):
        ex.status = 200
        ex.set_json({})


def _authenticated_versions_without_versions(ex: Exchange) -> None:
    """/versions asked with a token answers without its required `versions` (only then:
    preflight asks without one)."""
    if _path(ex) == "/_matrix/client/versions" and ex.has_credentials() and ex.status == 200:
        ex.set_json({"unstable_features": {"org.example.tailored": True}})


def _guest_refusal_errcode(replacement: str | None) -> Callable[[Exchange], None]:
    """The 403 refusing `kind=guest` with its errcode replaced (another code is still a Matrix
    error: M_FORBIDDEN is registration.yaml's example) or dropped (no Matrix error at all)."""

    def change(ex: Exchange) -> None:
        kind = dict(parse_qsl(urlsplit(ex.path).query)).get("kind")
        if _path(ex).endswith("/register") and kind == "guest" and ex.status == 403:
            if replacement is None:
                ex.set_json({"message": "guests are not welcome"})
            else:
                ex.set_json({"errcode": replacement, "error": "Guest access is disabled"})

    return change


def _failed_stage_errcode(replacement: str | None) -> Callable[[Exchange], None]:
    """A failed UIA stage's 401 body with its errcode replaced (another code: still a
    conformant answer, the spec's M_FORBIDDEN being an example) or dropped with its error
    (not the standard error fields the spec asks for)."""

    def change(ex: Exchange) -> None:
        data = ex.json()
        if ex.status == 401 and isinstance(data, dict) and "flows" in data and "errcode" in data:
            if replacement is None:
                data.pop("errcode")
                data.pop("error", None)
            else:
                data["errcode"] = replacement
            ex.set_json(data)

    return change


def _delete_devices_does_nothing(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/v3/delete_devices" and b'"auth"' in ex.body:
        ex.status = 200
        ex.response_headers = {"content-type": "application/json"}
        ex.set_json({})


def _cross_signing_always_uia(ex: Exchange) -> None:
    if (
        urlsplit(ex.path).path == "/_matrix/client/v3/keys/device_signing/upload"
        and b'"auth"' not in ex.body
    ):
        ex.status = 401
        ex.response_headers = {"content-type": "application/json"}
        ex.set_json({"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": "x"})


def _identical_reupload_needs_uia(ex: Exchange) -> None:
    """A first cross-signing upload is accepted, but the same keys sent again without `auth`
    get a UIA challenge (v1.11 exempts an identical re-upload)."""
    if _path(ex) != "/_matrix/client/v3/keys/device_signing/upload" or b'"auth"' in ex.body:
        return
    master = json.dumps((_request_json(ex) or {}).get("master_key"), sort_keys=True)
    if master in _uploaded_masters:
        _answer(
            ex, 401, {"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": "x"}
        )
    _uploaded_masters.add(master)


_uploaded_masters: set[str] = set()


def _first_upload_needs_uia(ex: Exchange) -> None:
    """As a server before v1.11: an account's first cross-signing upload without `auth` gets
    a UIA challenge; with a password stage it is taken (the stage dropped before Synapse,
    which takes a first upload without); anything later is Synapse's to answer."""
    if _path(ex) != "/_matrix/client/v3/keys/device_signing/upload":
        return
    sent = _request_json(ex) or {}
    user = str((sent.get("master_key") or {}).get("user_id"))
    if user in _first_uploads:
        return
    if "auth" in sent:
        sent.pop("auth")
        ex.body = json.dumps(sent).encode()
        _first_uploads.add(user)
    else:
        _answer(
            ex, 401, {"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": "x"}
        )


_first_uploads: set[str] = set()


def _path(ex: Exchange) -> str:
    return urlsplit(ex.path).path


def _request_json(ex: Exchange) -> Any:
    try:
        return json.loads(ex.body) if ex.body else None
    except ValueError:
        return None


def _answer(ex: Exchange, status: int, data: Any) -> None:
    ex.status = status
    ex.response_headers = {"content-type": "application/json"}
    ex.set_json(data)


def _ignore_bearer_header(ex: Exchange) -> None:
    ex.headers = [(k, v) for k, v in ex.headers if k.lower() != "authorization"]


def _no_legacy_login(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v3/login" and ex.method == "GET":
        _answer(ex, 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})


def _3pid_add_unoffered(ex: Exchange) -> None:
    """POST /account/3pid/add answered as an endpoint the server does not implement (as
    Dendrite does): third-party identifiers are optional, so its UIA checks SKIP."""
    if _path(ex) == "/_matrix/client/v3/account/3pid/add":
        _answer(ex, 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})


def _3pid_add_not_found(ex: Exchange) -> None:
    """POST /account/3pid/add answered 404 M_NOT_FOUND before any UIA: not the answer to an
    unknown endpoint, so the missing challenge stays a FAIL."""
    if _path(ex) == "/_matrix/client/v3/account/3pid/add":
        _answer(ex, 404, {"errcode": "M_NOT_FOUND", "error": "No such session"})


def _serves_auth_metadata(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v1/auth_metadata":
        _answer(ex, 200, {"issuer": "https://example.org/"})


def _login_answers_without_device(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/login" and ex.status == 200 and isinstance(data, dict):
        data.pop("device_id", None)
        ex.set_json(data)


def _login_ignores_device_id(ex: Exchange) -> None:
    data, sent = ex.json(), _request_json(ex)
    if (
        _path(ex) == "/_matrix/client/v3/login"
        and ex.status == 200
        and isinstance(sent, dict)
        and "device_id" in sent
        and isinstance(data, dict)
    ):
        data["device_id"] = "SOMEOTHERDEVICE"
        ex.set_json(data)


def _drop_display_name(ex: Exchange) -> None:
    sent = _request_json(ex)
    if _path(ex) == "/_matrix/client/v3/login" and isinstance(sent, dict):
        sent.pop("initial_device_display_name", None)
        ex.body = json.dumps(sent).encode()


def _every_name_available(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v3/register/available":
        _answer(ex, 200, {"available": True})


def _invalid_username_wrong_errcode(ex: Exchange) -> None:
    data = ex.json()
    if isinstance(data, dict) and data.get("errcode") == "M_INVALID_USERNAME":
        data["errcode"] = "M_UNKNOWN"
        ex.set_json(data)


def _inhibit_login_ignored(ex: Exchange) -> None:
    data, sent = ex.json(), _request_json(ex)
    if (
        _path(ex) == "/_matrix/client/v3/register"
        and ex.status == 200
        and isinstance(sent, dict)
        and sent.get("inhibit_login")
        and isinstance(data, dict)
    ):
        data.update(access_token="unwanted-token-000", device_id="UNWANTED")
        ex.set_json(data)


def _refresh_without_access_token(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/refresh" and ex.status == 200 and isinstance(data, dict):
        data.pop("access_token", None)
        ex.set_json(data)


def _long_password_change(ex: Exchange) -> dict[str, Any] | None:
    """The body of a completed-UIA password change to a password over bcrypt's 72 bytes."""
    sent = _request_json(ex)
    if _path(ex) != "/_matrix/client/v3/account/password" or not isinstance(sent, dict):
        return None
    long = len(str(sent.get("new_password") or "").encode()) > 72
    return sent if long and isinstance(sent.get("auth"), dict) else None


def _long_password_change_500(ex: Exchange) -> None:
    """As a server handing the whole password to bcrypt: 500 past its 72 bytes."""
    if _long_password_change(ex) is not None:
        _answer(ex, 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})


def _long_password_change_ignored(ex: Exchange) -> None:
    """200 for the change, which never happens."""
    if _long_password_change(ex) is not None:
        _answer(ex, 200, {})


def _logout_all_does_nothing(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v3/logout/all":
        _answer(ex, 200, {})


_UIA_PATHS = (
    "/account/password",
    "/account/deactivate",
    "/account/3pid/add",
    "/devices/",
    "/delete_devices",
    "/keys/device_signing/upload",
    "/login/get_token",
)


def _uia_skipped_without_auth(ex: Exchange) -> None:
    sent = _request_json(ex)
    if (
        any(p in _path(ex) for p in _UIA_PATHS)
        and ex.method in ("POST", "DELETE")
        and not (isinstance(sent, dict) and "auth" in sent)
    ):
        _answer(ex, 200, {})


def _uia_completed_does_nothing(ex: Exchange) -> None:
    sent = _request_json(ex)
    if (
        any(p in _path(ex) for p in _UIA_PATHS)
        and isinstance(sent, dict)
        and isinstance(sent.get("auth"), dict)
        and sent["auth"].get("password")
    ):
        _answer(ex, 200, {"login_token": "forged-login-token", "expires_in_ms": 1000})


_first_unknown = {"left": 0}


def _wrong_errcode_twice(ex: Exchange) -> None:
    """Breaks the first two M_UNKNOWN_TOKEN answers after `use()`, then behaves: flaky."""
    data = ex.json()
    if (
        isinstance(data, dict)
        and data.get("errcode") == "M_UNKNOWN_TOKEN"
        and _first_unknown["left"] > 0
    ):
        _first_unknown["left"] -= 1
        data["errcode"] = "M_FORBIDDEN"
        ex.set_json(data)


# ---- OAuth 2.0 API stand-ins. With `auth_server` set, the proxy also fronts the OAuth server:
# the metadata it passes on points every endpoint at the proxy, and every path outside
# /_matrix and /_synapse is forwarded to the OAuth server, so one rule can be broken there too.


def is_auth_path(path: str) -> bool:
    return not path.startswith(("/_matrix", "/_synapse", "/.well-known/matrix"))


def _metadata(ex: Exchange) -> dict[str, Any] | None:
    data = ex.json()
    if _path(ex).endswith("/auth_metadata") and isinstance(data, dict):
        return data
    return None


def point_metadata_at_proxy(ex: Exchange) -> None:
    data = _metadata(ex)
    if data is None or ex.proxy is None or ex.proxy.auth_server is None:
        return
    for key, value in data.items():
        if isinstance(value, str) and value.startswith(ex.proxy.auth_server):
            data[key] = ex.proxy.base_url + value.removeprefix(ex.proxy.auth_server)
    ex.set_json(data)


def _metadata_edit(key: str, value: Any) -> Callable[[Exchange], None]:
    def edit(ex: Exchange) -> None:
        data = _metadata(ex)
        if data is not None:
            data[key] = value
            ex.set_json(data)

    return edit


def _form(ex: Exchange) -> dict[str, str]:
    return dict(parse_qsl(ex.body.decode(errors="replace")))


def _registration_accepts_http_redirect(ex: Exchange) -> None:
    """Registers the client with its http web redirect URIs quietly upgraded to https."""
    data = _request_json(ex)
    web = isinstance(data, dict) and data.get("application_type") == "web"
    if _path(ex) == "/oauth2/registration" and web:
        data["redirect_uris"] = [
            "https://" + u.removeprefix("http://") if u.startswith("http://") else u
            for u in data.get("redirect_uris", [])
        ]
        ex.body = json.dumps(data).encode()


def _registration_accepts_http_client_uri(ex: Exchange) -> None:
    data = _request_json(ex)
    plain = isinstance(data, dict) and str(data.get("client_uri", "")).startswith("http://")
    if _path(ex) == "/oauth2/registration" and plain:
        data["client_uri"] = "https://" + data["client_uri"].removeprefix("http://")
        ex.body = json.dumps(data).encode()


def _registration_accepts_client_bound_uris(ex: Exchange) -> None:
    """Registers clients whose logo, terms or policy URIs break the rules that bind the
    client (http, or off the client_uri host): rewritten to a valid URI before it arrives."""
    data = _request_json(ex)
    if _path(ex) != "/oauth2/registration" or not isinstance(data, dict):
        return
    base = str(data.get("client_uri") or "").rstrip("/")
    for key in ("logo_uri", "tos_uri", "policy_uri"):
        if isinstance(data.get(key), str) and not data[key].startswith(base + "/"):
            data[key] = f"{base}/{key}"
    ex.body = json.dumps(data).encode()


def _oauth_without_cors(ex: Exchange) -> None:
    """The authorisation server's answers without their CORS headers (preflights included)."""
    if ex.response_headers is not None:
        ex.response_headers = {
            k: v
            for k, v in ex.response_headers.items()
            if not k.lower().startswith("access-control-")
        }


def _revocation_does_nothing(ex: Exchange) -> None:
    if _path(ex) == "/oauth2/revoke":
        _answer(ex, 200, {})


def _revocation_needs_client_id(ex: Exchange) -> None:
    if _path(ex) == "/oauth2/revoke" and "client_id" not in _form(ex):
        _answer(ex, 401, {"error": "invalid_client"})


def _unknown_revocation_refused(ex: Exchange) -> None:
    if _path(ex) == "/oauth2/revoke" and "never-issued" in _form(ex).get("token", ""):
        _answer(ex, 400, {"error": "invalid_request"})


def _token_response_without(key: str) -> Callable[[Exchange], None]:
    def drop(ex: Exchange) -> None:
        data = ex.json()
        if _path(ex) == "/oauth2/token" and isinstance(data, dict) and key in data:
            del data[key]
            ex.set_json(data)

    return drop


def _scope_with_extra_device(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/oauth2/token" and isinstance(data, dict) and "scope" in data:
        data["scope"] += " urn:matrix:client:device:SOMEOTHERDEVICE"
        ex.set_json(data)


def _location(ex: Exchange, rewrite: Callable[[str], str]) -> None:
    headers = ex.response_headers or {}
    if "location" in headers:
        headers["location"] = rewrite(headers["location"])


def _state_dropped(ex: Exchange) -> None:
    def drop(url: str) -> str:
        parts = urlsplit(url)
        if "code=" not in url:
            return url
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "state"])
        fragment = urlencode([(k, v) for k, v in parse_qsl(parts.fragment) if k != "state"])
        return parts._replace(query=query, fragment=fragment).geturl()

    _location(ex, drop)


def _fragment_ignored(ex: Exchange) -> None:
    def to_query(url: str) -> str:
        parts = urlsplit(url)
        if "code=" not in parts.fragment:
            return url
        return parts._replace(query=parts.fragment, fragment="").geturl()

    _location(ex, to_query)


def _plain_pkce_accepted(ex: Exchange) -> None:
    """Turns a `plain` challenge into the S256 one the server wants (plain's challenge is the
    verifier itself), so the grant goes through."""
    parts = urlsplit(ex.path)
    query = dict(parse_qsl(parts.query))
    if _path(ex) == "/authorize" and query.get("code_challenge_method") == "plain":
        digest = hashlib.sha256(query["code_challenge"].encode()).digest()
        query["code_challenge"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        query["code_challenge_method"] = "S256"
        ex.path = parts.path + "?" + urlencode(query)


_SPENT_CODES: dict[str, tuple[int, bytes]] = {}


def _code_reusable_in(ex: Exchange) -> None:
    code = _form(ex).get("code")
    if _path(ex) == "/oauth2/token" and code in _SPENT_CODES:
        status, body = _SPENT_CODES[code]
        ex.status = status
        ex.response_headers = {"content-type": "application/json"}
        ex.response_body = body


def _code_reusable_out(ex: Exchange) -> None:
    code = _form(ex).get("code")
    if _path(ex) == "/oauth2/token" and code and ex.status == 200:
        _SPENT_CODES[code] = (ex.status, ex.response_body)


_USED_REFRESH: set[str] = set()


def _refresh_not_retryable(ex: Exchange) -> None:
    token = _form(ex).get("refresh_token")
    if _path(ex) == "/oauth2/token" and token:
        if token in _USED_REFRESH:
            _answer(ex, 400, {"error": "invalid_grant"})
        _USED_REFRESH.add(token)


def _device_grant_never_pending(ex: Exchange) -> None:
    data = ex.json()
    pending = isinstance(data, dict) and data.get("error") == "authorization_pending"
    if _path(ex) == "/oauth2/token" and pending:
        ex.set_json({"error": "invalid_grant"})


def _no_m_oauth_stage(ex: Exchange) -> None:
    data = ex.json()
    challenge = isinstance(data, dict) and ex.status == 401 and "flows" in data
    if _path(ex).endswith("/keys/device_signing/upload") and challenge:
        data["flows"] = [f for f in data["flows"] if "m.oauth" not in f.get("stages", [])]
        data.get("params", {}).pop("m.oauth", None)
        ex.set_json(data)


def _metadata_without(key: str) -> Callable[[Exchange], None]:
    def drop(ex: Exchange) -> None:
        data = _metadata(ex)
        if data is not None:
            data.pop(key, None)
            ex.set_json(data)

    return drop


def _authorize_query(ex: Exchange) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(ex.path).query)) if _path(ex) == "/authorize" else {}


def _loopback_port_refused(ex: Exchange) -> None:
    redirect = _authorize_query(ex).get("redirect_uri", "")
    if urlsplit(redirect).port is not None:
        ex.status = 400
        ex.response_headers = {"content-type": "text/html"}
        ex.response_body = b"<p>redirect_uri not registered</p>"


def _unregistered_redirect_followed(ex: Exchange) -> None:
    query = _authorize_query(ex)
    if query.get("redirect_uri", "").startswith("https://attacker."):
        ex.status = 303
        ex.response_headers = {
            "location": query["redirect_uri"] + "?error=invalid_request&state=" + query["state"]
        }


_FIXED_VERIFIER = "mxconform-stand-in-verifier-" + "v" * 40


def _verifier_not_checked(ex: Exchange) -> None:
    """The proxy swaps in its own PKCE pair: the client's verifier is never really checked."""
    parts = urlsplit(ex.path)
    query = _authorize_query(ex)
    if query.get("code_challenge_method") == "S256":
        digest = hashlib.sha256(_FIXED_VERIFIER.encode()).digest()
        query["code_challenge"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        ex.path = parts.path + "?" + urlencode(query)
    form = _form(ex)
    if _path(ex) == "/oauth2/token" and "code_verifier" in form:
        form["code_verifier"] = _FIXED_VERIFIER
        ex.body = urlencode(form).encode()


def _redirect_not_compared(ex: Exchange) -> None:
    form = _form(ex)
    if _path(ex) == "/oauth2/token" and form.get("redirect_uri", "").endswith("/other"):
        form["redirect_uri"] = form["redirect_uri"].removesuffix("/other")
        ex.body = urlencode(form).encode()


def _registration_refuses_native(ex: Exchange) -> None:
    data = _request_json(ex)
    if _path(ex) == "/oauth2/registration" and (data or {}).get("application_type") == "native":
        _answer(ex, 400, {"error": "invalid_client_metadata"})


def _registration_defaults_to_native(ex: Exchange) -> None:
    data = _request_json(ex)
    if _path(ex) == "/oauth2/registration" and isinstance(data, dict):
        data.setdefault("application_type", "native")
        ex.body = json.dumps(data).encode()


def _token_owner(ex: Exchange) -> tuple[str, str] | None:
    """The localpart and device of the request's token, asked of Synapse."""
    assert ex.proxy is not None
    headers = [(k, v) for k, v in ex.headers if k.lower() == "authorization"]
    who = ex.proxy._client.get(
        ex.proxy.upstream + "/_matrix/client/v3/account/whoami", headers=headers
    )
    if who.status_code != 200:
        return None
    data = who.json()
    return data["user_id"][1:].split(":")[0], data.get("device_id", "")


def _oauth_uia_obeyed(ex: Exchange) -> None:
    """A server that lets OAuth tokens through on UIA endpoints: some operations are done
    (behind Synapse's back, through its MAS API), some answered 200 without doing anything."""
    assert ex.proxy is not None and ex.proxy.homeserver is not None
    path, hs = _path(ex), ex.proxy.homeserver
    owner = _token_owner(ex) if path.startswith("/_matrix/client/") else None
    if owner is None:
        return
    localpart, device = owner
    if path.endswith("/delete_devices"):
        for other in (_request_json(ex) or {}).get("devices", []):
            hs.delete_device(localpart, other)
        _answer(ex, 200, {})
    elif ex.method == "DELETE" and "/devices/" in path:
        hs.delete_device(localpart, path.rsplit("/", 1)[1])
        _answer(ex, 200, {})
    elif path.endswith("/account/deactivate"):
        hs.delete_device(localpart, device)  # the account's only session ends
        _answer(ex, 200, {"id_server_unbind_result": "no-support"})
    elif path.endswith("/login/get_token"):
        _answer(ex, 200, {"login_token": "forged-login-token", "expires_in_ms": 120000})
    elif path.endswith(("/account/password", "/account/3pid/add")):
        _answer(ex, 200, {})  # claims success, changes nothing
    elif path.endswith("/keys/device_signing/upload"):
        hs.allow_cross_signing_reset(localpart)  # then forwarded: the reset goes through


def _device_delete_action_ignored(ex: Exchange) -> None:
    query = dict(parse_qsl(urlsplit(ex.path).query))
    if _path(ex) == "/account/" and ex.method == "POST" and "device_id" in query:
        ex.status = 200
        ex.response_headers = {"content-type": "text/html"}
        ex.response_body = b"<p>The device is signed out.</p>"


def _oauth_delete_devices_allowed(ex: Exchange) -> None:
    """Performs delete_devices for an OAuth token (through Synapse's MAS API)."""
    if not (_path(ex).endswith("/delete_devices") and ex.method == "POST"):
        return
    assert ex.proxy is not None and ex.proxy.homeserver is not None
    owner = _token_owner(ex)
    if owner is None:
        return
    for device in (_request_json(ex) or {}).get("devices", []):
        ex.proxy.homeserver.delete_device(owner[0], device)
    _answer(ex, 200, {})


def _garbage_versions(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/versions":
        ex.set_json({"versions": "garbage"})


def _versions_from_the_future(ex: Exchange) -> None:
    if urlsplit(ex.path).path == "/_matrix/client/versions":
        data = ex.json() or {}
        data["versions"] = [*data.get("versions", []), "v99.0", "not-a-version"]
        ex.set_json(data)


def _missing_token(ex: Exchange) -> None:
    _answer(ex, 401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})


def _setup_upload_refused(ex: Exchange) -> None:
    """Every cross-signing upload is refused as an older server might refuse a first one: a
    setup step of the replacement checks fails before their request under test is sent."""
    if _path(ex) == "/_matrix/client/v3/keys/device_signing/upload":
        _missing_token(ex)


def _uia_challenge_is_missing_token(ex: Exchange) -> None:
    """delete_devices without `auth` answers 401 M_MISSING_TOKEN, not a UIA challenge."""
    if _path(ex) == "/_matrix/client/v3/delete_devices" and b'"auth"' not in ex.body:
        _missing_token(ex)


UIA_PATHS = (
    "/delete_devices",
    "/account/password",
    "/account/deactivate",
    "/account/3pid/add",
    "/login/get_token",
    "/keys/device_signing/upload",
)


def _oauth_uia_noop(ex: Exchange) -> None:
    """Every UIA operation tried with an OAuth token answers 200 and does nothing."""
    path = _path(ex)
    if not path.startswith("/_matrix/client/") or not (
        path.endswith(UIA_PATHS) or (ex.method == "DELETE" and "/devices/" in path)
    ):
        return
    owner = _token_owner(ex)
    if owner is None:
        return
    if path.endswith("/keys/device_signing/upload") and owner[0] not in _first_uploads:
        _first_uploads.add(owner[0])  # the first keys (a setup step, no UIA) go through
        return
    _answer(ex, 200, {})


_first_uploads: set[str] = set()


# Stand-ins for the catalogue-closure checks (one rule each).


def _returned_refresh_token_broken(ex: Exchange) -> None:
    """The refresh token a /refresh returns is not one the server knows."""
    data = ex.json()
    if (
        _path(ex) == "/_matrix/client/v3/refresh"
        and isinstance(data, dict)
        and "refresh_token" in data
    ):
        data["refresh_token"] = "mxconform-broken-" + str(data["refresh_token"])[::-1]
        ex.set_json(data)


def _unrecognized_is_not_found(ex: Exchange) -> None:
    data = ex.json()
    if (
        ex.status in (404, 405)
        and isinstance(data, dict)
        and data.get("errcode") == "M_UNRECOGNIZED"
    ):
        ex.status = 404
        data["errcode"] = "M_NOT_FOUND"
        ex.set_json(data)


def _options_needs_token(ex: Exchange) -> None:
    if ex.method == "OPTIONS" and not ex.has_credentials():
        _answer(ex, 401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})


def _cors_without_authorization(ex: Exchange) -> None:
    if ex.response_headers is not None:
        for key in list(ex.response_headers):
            if key.lower() == "access-control-allow-headers":
                ex.response_headers[key] = "X-Requested-With, Content-Type"


def _device_rename_ignored(ex: Exchange) -> None:
    if ex.method == "PUT" and _path(ex).startswith("/_matrix/client/v3/devices/"):
        _answer(ex, 200, {})


def _unknown_device_found(ex: Exchange) -> None:
    if ex.method == "GET" and _path(ex).endswith("/devices/MXCNOSUCHDEVICE"):
        _answer(ex, 200, {"device_id": "MXCNOSUCHDEVICE"})


def _login_refusals_401(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v3/login" and ex.status in (400, 403):
        ex.status = 401


def _no_login_fallback(ex: Exchange) -> None:
    if _path(ex).startswith("/_matrix/static/client/login"):
        _answer(ex, 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})


_txn_counter = [0]


def _txn_not_replayed(ex: Exchange) -> None:
    """Every send is a new transaction: a retransmission makes a second event."""
    if ex.method == "PUT" and "/send/" in _path(ex):
        _txn_counter[0] += 1
        ex.path = ex.path + f"-mxc{_txn_counter[0]}"


def _non_auth_error_is_401(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/delete_devices" and ex.status == 400:
        ex.status = 401
        ex.set_json({**(data or {}), "flows": [{"stages": ["m.login.password"]}]})


def _logout_needs_body(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/v3/logout" and not ex.body:
        _answer(ex, 400, {"errcode": "M_NOT_JSON", "error": "Content not JSON."})


def _versions_refuses_token(ex: Exchange) -> None:
    if _path(ex) == "/_matrix/client/versions" and ex.has_credentials():
        _answer(ex, 401, {"errcode": "M_UNKNOWN_TOKEN", "error": "no tokens here"})


def _token_validity_true(ex: Exchange) -> None:
    if _path(ex).endswith("/register/m.login.registration_token/validity"):
        _answer(ex, 200, {"valid": True})


def _register_without_device(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/register" and ex.status == 200 and isinstance(data, dict):
        data.pop("device_id", None)
        ex.set_json(data)


def _uia_3pid_stage_accepted(ex: Exchange) -> None:
    """A password stage naming an unknown e-mail address is let through (200, nothing done)."""
    if _path(ex) == "/_matrix/client/v3/delete_devices" and b"m.id.thirdparty" in ex.body:
        _answer(ex, 200, {})


def _missing_token_403(ex: Exchange) -> None:
    """A request without a token is refused 403 (the errcode is kept): not the 401 asked for."""
    data = ex.json()
    if isinstance(data, dict) and data.get("errcode") == "M_MISSING_TOKEN":
        ex.status = 403


def _not_json(ex: Exchange) -> bool:
    try:
        return not isinstance(json.loads(ex.body or b"{}"), dict)
    except ValueError:
        return True


def _bad_json_is_500(path: str) -> Callable[[Exchange], None]:
    """A body that is not a JSON object crashes the endpoint: 500 M_UNKNOWN."""

    def rewrite(ex: Exchange) -> None:
        if _path(ex) == path and ex.method == "POST" and _not_json(ex):
            _answer(ex, 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})

    return rewrite


def _bad_json_plain_errors(ex: Exchange) -> None:
    """/refresh refuses a malformed body with a bare text/plain 400."""
    if _path(ex) == "/_matrix/client/v3/refresh" and ex.status == 400:
        ex.response_headers = {"content-type": "text/plain"}
        ex.response_body = b"Bad Request"


_LOGIN_KEYS = {"type", "identifier", "password", "user", "device_id"}
_LOGIN_KEYS |= {"initial_device_display_name", "refresh_token"}


def _login_accepts_malformed(ex: Exchange) -> None:
    """A /login body with unknown keys, or a password that is missing or not a string,
    logs the named user in without checking anything."""
    data = _request_json(ex)
    if _path(ex) != "/_matrix/client/v3/login" or not isinstance(data, dict):
        return
    ident = data.get("identifier")
    user = ident.get("user") if isinstance(ident, dict) else None
    malformed = not isinstance(data.get("password"), str) or bool(set(data) - _LOGIN_KEYS)
    if isinstance(user, str) and malformed:
        _answer(ex, 200, {"user_id": user, "access_token": "forged-000", "device_id": "X"})


def _password_change_without_auth(ex: Exchange) -> None:
    """/account/password without a well-formed password stage answers 200 (nothing done)."""
    data = _request_json(ex)
    if _path(ex) != "/_matrix/client/v3/account/password" or not isinstance(data, dict):
        return
    auth = data.get("auth")
    if not (isinstance(auth, dict) and isinstance(auth.get("password"), str)):
        _answer(ex, 200, {})


def _dcr_crashes_on_bad_metadata(ex: Exchange) -> None:
    """Client registration answers 500 to metadata that is not a JSON object."""
    if _path(ex).endswith("/registration") and _not_json(ex):
        ex.status = 500
        ex.response_headers = {"content-type": "text/html"}
        ex.response_body = b"<h1>Internal Server Error</h1>"


def _token_endpoint_bare_errors(ex: Exchange) -> None:
    """The token endpoint refuses with an empty body instead of an RFC 6749 error."""
    if _path(ex).endswith("/token") and ex.status >= 400:
        ex.response_headers = {"content-type": "text/plain"}
        ex.response_body = b""


_KEPT: dict[str, Any] = {"issued": {}, "dead": set()}  # access token -> refresh token


def _keep_refresh_in(ex: Exchange) -> None:
    """After a logout the session's refresh token still refreshes (a forged new pair)."""
    path = _path(ex)
    if path in ("/_matrix/client/v3/logout", "/_matrix/client/v3/logout/all"):
        auth = dict((k.lower(), v) for k, v in ex.headers).get("authorization", "")
        query = dict(parse_qsl(urlsplit(ex.path).query)).get("access_token")
        token = auth.removeprefix("Bearer ") if auth else query
        issued = _KEPT["issued"]
        _KEPT["dead"] |= set(issued.values()) if path.endswith("/all") else {issued.get(token)}
    data = _request_json(ex)
    if (
        path == "/_matrix/client/v3/refresh"
        and isinstance(data, dict)
        and data.get("refresh_token") in _KEPT["dead"]
    ):
        _answer(ex, 200, {"access_token": "forged-a", "refresh_token": "forged-r"})


def _keep_refresh_out(ex: Exchange) -> None:
    data = ex.json()
    login = _path(ex) == "/_matrix/client/v3/login" and isinstance(data, dict)
    if login and isinstance(data.get("refresh_token"), str):
        _KEPT["issued"][data.get("access_token")] = data["refresh_token"]


_locking: dict[str, set[str]] = {"tokens": set()}  # lock-revokes-tokens' memory, per use()


def _bearer(ex: Exchange) -> str | None:
    for key, value in ex.headers:
        if key.lower() == "authorization" and value.lower().startswith("bearer "):
            return value[7:]
    return None


def _locked_is_unknown_token(ex: Exchange) -> None:
    """A locked account's requests answered 401 M_UNKNOWN_TOKEN, without soft_logout."""
    data = ex.json()
    if isinstance(data, dict) and data.get("errcode") == "M_USER_LOCKED":
        _answer(ex, 401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"})


def _locked_login_issues_token(ex: Exchange) -> None:
    """A locked account's password login answered 200 with a token (a made-up one)."""
    data = ex.json()
    if (
        _path(ex) == "/_matrix/client/v3/login"
        and isinstance(data, dict)
        and data.get("errcode") == "M_USER_LOCKED"
    ):
        _answer(ex, 200, {"access_token": "mxconform-locked", "device_id": "LOCKED"})


def _locked_logout_refused(ex: Exchange) -> None:
    """/logout and /logout/all refused with M_USER_LOCKED once any account was locked."""
    request = _request_json(ex)
    locking = isinstance(request, dict) and request.get("locked") is True
    if _path(ex).startswith("/_synapse/admin/v2/users/") and locking:
        _locking["tokens"].add("locked")
    logout = _path(ex) in ("/_matrix/client/v3/logout", "/_matrix/client/v3/logout/all")
    if logout and "locked" in _locking["tokens"]:
        _answer(ex, 401, {"errcode": "M_USER_LOCKED", "error": "locked", "soft_logout": True})


def _lock_revokes_tokens_in(ex: Exchange) -> None:
    token = _bearer(ex)
    if token in _locking["tokens"]:
        _answer(ex, 401, {"errcode": "M_UNKNOWN_TOKEN", "error": "revoked by the lock"})


def _lock_revokes_tokens_out(ex: Exchange) -> None:
    """A token refused for a lock stays refused after the unlock (as if the lock revoked it)."""
    data = ex.json()
    token = _bearer(ex)
    if isinstance(data, dict) and data.get("errcode") == "M_USER_LOCKED" and token:
        _locking["tokens"].add(token)


def _suspended_is_forbidden(ex: Exchange) -> None:
    data = ex.json()
    if isinstance(data, dict) and data.get("errcode") == "M_USER_SUSPENDED":
        data["errcode"] = "M_FORBIDDEN"
        ex.set_json(data)


def _deactivated_login_token_accepted(ex: Exchange) -> None:
    """An m.login.token login refused (the account is deactivated) answered 200 instead."""
    request = _request_json(ex)
    if (
        _path(ex) == "/_matrix/client/v3/login"
        and isinstance(request, dict)
        and request.get("type") == "m.login.token"
        and ex.status == 403
    ):
        _answer(ex, 200, {"access_token": "mxconform-ghost", "device_id": "GHOST"})


_registered: dict[str, set[str]] = {"tokens": set()}  # tokens from /register or /refresh


def _register_token_wrong_device(ex: Exchange) -> None:
    """whoami names another device for a token that /register issued."""
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/register" and ex.status == 200 and isinstance(data, dict):
        _registered["tokens"].add(str(data.get("access_token")))
    elif _path(ex) == "/_matrix/client/v3/account/whoami" and isinstance(data, dict):
        query = dict(parse_qsl(urlsplit(ex.path).query))
        if (_bearer(ex) or query.get("access_token")) in _registered["tokens"]:
            data["device_id"] = "NOTTHEDEVICE"
            ex.set_json(data)


def _logout_keeps_refreshed_token_in(ex: Exchange) -> None:
    """POST /logout with a token that /refresh issued answers 200 and ends nothing."""
    if _path(ex) == "/_matrix/client/v3/logout" and _bearer(ex) in _registered["tokens"]:
        _answer(ex, 200, {})


def _logout_keeps_refreshed_token_out(ex: Exchange) -> None:
    data = ex.json()
    if _path(ex) == "/_matrix/client/v3/refresh" and ex.status == 200 and isinstance(data, dict):
        _registered["tokens"].add(str(data.get("access_token")))


def _invalid_username_kept(ex: Exchange) -> None:
    """A registration with an ungrammatical username is accepted and made exactly as sent."""
    request = _request_json(ex)
    if _path(ex) != "/_matrix/client/v3/register" or not isinstance(request, dict):
        return
    name = request.get("username")
    if not isinstance(name, str) or " " not in name:
        return
    if "auth" not in request:
        _answer(ex, 401, {"flows": [{"stages": ["m.login.dummy"]}], "params": {}, "session": "s"})
    else:
        made = {"user_id": f"@{name}:localhost", "access_token": "kept", "device_id": "KEPT"}
        _answer(ex, 200, made)


def _deactivated_password_login_accepted(ex: Exchange) -> None:
    """A refused password login (Synapse wipes a deactivated account's password, so it
    answers M_FORBIDDEN) answered 200 with a made-up token."""
    request, data = _request_json(ex), ex.json()
    if (
        _path(ex) == "/_matrix/client/v3/login"
        and isinstance(request, dict)
        and request.get("type") == "m.login.password"
        and ex.status == 403
        and isinstance(data, dict)
        and data.get("errcode") in ("M_USER_DEACTIVATED", "M_FORBIDDEN")
    ):
        _answer(ex, 200, {"access_token": "mxconform-ghost", "device_id": "GHOST"})


def _admin_api_private(ex: Exchange) -> None:
    """A reverse proxy set up as Synapse's documentation says: /_synapse/admin is not
    forwarded, and the proxy answers with its own HTML page."""
    if _path(ex).startswith("/_synapse/admin"):
        ex.status = 404
        ex.response_headers = {"content-type": "text/html", "server": "nginx/1.22.1"}
        ex.response_body = b"<html><body><center><h1>404 Not Found</h1></center></body></html>"


def _proxy_refuses_two_authorizations(ex: Exchange) -> None:
    """nginx in front: a request with two Authorization headers never reaches the
    homeserver; nginx answers with its own signed HTML 400."""
    if sum(k.lower() == "authorization" for k, _ in ex.headers) > 1:
        ex.status = 400
        ex.response_headers = {"content-type": "text/html", "server": "nginx/1.22.1"}
        ex.response_body = (
            b"<html><head><title>400 Bad Request</title></head><body><center><h1>400 Bad "
            b"Request</h1></center><hr><center>nginx/1.22.1</center></body></html>"
        )


def _registration_off(ex: Exchange) -> None:
    """`enable_registration: false`, as Synapse's generated configuration leaves it."""
    if _path(ex).startswith("/_matrix/client/v3/register"):
        ex.status = 403
        ex.response_headers = {"content-type": "application/json"}
        ex.set_json({"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"})


def point_discovery_at_proxy(ex: Exchange) -> None:
    """The issuer's OpenID discovery document, pointed at the proxy as auth_metadata is (the
    issuer the proxy's metadata names is itself: a client fetches the document there)."""
    data = ex.json()
    if _path(ex) != "/.well-known/openid-configuration" or not isinstance(data, dict):
        return
    assert ex.proxy is not None and ex.proxy.auth_server is not None
    for key, value in data.items():
        if isinstance(value, str) and value.startswith(ex.proxy.auth_server):
            data[key] = ex.proxy.base_url + value.removeprefix(ex.proxy.auth_server)
    ex.set_json(data)


def _discovery_without(key: str) -> Callable[[Exchange], None]:
    """The issuer's OpenID discovery document without one of its fields."""

    def drop(ex: Exchange) -> None:
        data = ex.json()
        if _path(ex) == "/.well-known/openid-configuration" and isinstance(data, dict):
            data.pop(key, None)
            ex.set_json(data)

    return drop


BREAKAGES = {
    b.name: b
    for b in (
        Breakage("conformant"),
        Breakage("proxy-refuses-two-authorization", inbound=_proxy_refuses_two_authorizations),
        Breakage("registration-off", inbound=_registration_off),
        Breakage("admin-api-private", inbound=_admin_api_private),
        Breakage("ignore-query-token", inbound=_strip_query_token),
        Breakage("accept-without-token", inbound=_answer_without_token),
        Breakage("wrong-errcode", outbound=_rewrite_errcode),
        Breakage("plain-text-errors", outbound=_plain_text_errors),
        Breakage("advertise-v1.20", outbound=_advertise_v1_20),
        Breakage("advertise-v1.12", outbound=_advertise_v1_12),
        Breakage("whoami-wrong-device", outbound=_whoami_wrong_device),
        Breakage("wrong-password-accepted", outbound=_accept_wrong_password),
        Breakage("refresh-never-refused", outbound=_never_refuse_refresh),
        Breakage("logout-does-nothing", inbound=_logout_does_nothing),
        Breakage("long-password-change-500", inbound=_long_password_change_500),
        Breakage("long-password-change-ignored", inbound=_long_password_change_ignored),
        Breakage("uia-flows-without-stages", outbound=_uia_flows_without_stages),
        Breakage("uia-before-username-check", outbound=_uia_before_username_check),
        Breakage("expired-is-hard-logout", outbound=_expired_is_hard_logout),
        Breakage("uia-wrong-password-accepted", outbound=_uia_wrong_password_accepted),
        Breakage(
            "authenticated-versions-without-versions",
            outbound=_authenticated_versions_without_versions,
        ),
        Breakage("guest-refusal-forbidden", outbound=_guest_refusal_errcode("M_FORBIDDEN")),
        Breakage("guest-refusal-not-a-matrix-error", outbound=_guest_refusal_errcode(None)),
        Breakage("uia-failed-stage-other-errcode", outbound=_failed_stage_errcode("M_UNKNOWN")),
        Breakage("uia-failed-stage-without-errcode", outbound=_failed_stage_errcode(None)),
        Breakage("delete-devices-does-nothing", inbound=_delete_devices_does_nothing),
        Breakage("cross-signing-always-uia", inbound=_cross_signing_always_uia),
        Breakage("first-cross-signing-upload-needs-uia", inbound=_first_upload_needs_uia),
        Breakage("ignore-bearer-header", inbound=_ignore_bearer_header),
        Breakage("no-legacy-login", inbound=_no_legacy_login),
        Breakage("serves-auth-metadata", inbound=_serves_auth_metadata),
        Breakage("login-answers-without-device", outbound=_login_answers_without_device),
        Breakage("login-ignores-device-id", outbound=_login_ignores_device_id),
        Breakage("drop-display-name", inbound=_drop_display_name),
        Breakage("every-name-available", inbound=_every_name_available),
        Breakage("invalid-username-wrong-errcode", outbound=_invalid_username_wrong_errcode),
        Breakage("inhibit-login-ignored", outbound=_inhibit_login_ignored),
        Breakage("refresh-without-access-token", outbound=_refresh_without_access_token),
        Breakage("logout-all-does-nothing", inbound=_logout_all_does_nothing),
        Breakage("uia-skipped-without-auth", inbound=_uia_skipped_without_auth),
        Breakage("3pid-add-unoffered", inbound=_3pid_add_unoffered),
        Breakage("3pid-add-not-found", inbound=_3pid_add_not_found),
        Breakage("uia-completed-does-nothing", inbound=_uia_completed_does_nothing),
        Breakage("wrong-errcode-twice", outbound=_wrong_errcode_twice),
        Breakage(
            "metadata-without-s256",
            outbound=_metadata_edit("code_challenge_methods_supported", ["plain"]),
        ),
        Breakage(
            "metadata-query-mode-only",
            outbound=_metadata_edit("response_modes_supported", ["query"]),
        ),
        Breakage(
            "metadata-without-refresh-grant",
            outbound=_metadata_edit("grant_types_supported", ["authorization_code"]),
        ),
        Breakage(
            "metadata-without-code", outbound=_metadata_edit("response_types_supported", ["token"])
        ),
        Breakage(
            "metadata-relative-endpoint",
            outbound=_metadata_edit("revocation_endpoint", "/oauth2/revoke"),
        ),
        Breakage(
            "metadata-prompt-values-not-strings",
            outbound=_metadata_edit("prompt_values_supported", ["create", 1]),
        ),
        Breakage(
            "metadata-device-endpoint-only",
            outbound=_metadata_edit(
                "grant_types_supported", ["authorization_code", "refresh_token"]
            ),
        ),
        Breakage(
            "registration-accepts-http-redirect", auth_inbound=_registration_accepts_http_redirect
        ),
        Breakage(
            "registration-accepts-http-client-uri",
            auth_inbound=_registration_accepts_http_client_uri,
        ),
        Breakage(
            "registration-accepts-client-bound-uris",
            auth_inbound=_registration_accepts_client_bound_uris,
        ),
        Breakage("oauth-without-cors", auth_outbound=_oauth_without_cors),
        Breakage("revocation-does-nothing", auth_inbound=_revocation_does_nothing),
        Breakage("revocation-needs-client-id", auth_inbound=_revocation_needs_client_id),
        Breakage("unknown-revocation-refused", auth_inbound=_unknown_revocation_refused),
        Breakage(
            "token-without-refresh-token", auth_outbound=_token_response_without("refresh_token")
        ),
        Breakage("token-without-expiry", auth_outbound=_token_response_without("expires_in")),
        Breakage("token-without-scope", auth_outbound=_token_response_without("scope")),
        Breakage("scope-with-extra-device", auth_outbound=_scope_with_extra_device),
        Breakage("state-dropped", auth_outbound=_state_dropped),
        Breakage("fragment-ignored", auth_outbound=_fragment_ignored),
        Breakage("plain-pkce-accepted", auth_inbound=_plain_pkce_accepted),
        Breakage("code-reusable", auth_inbound=_code_reusable_in, auth_outbound=_code_reusable_out),
        Breakage("refresh-not-retryable", auth_inbound=_refresh_not_retryable),
        Breakage("device-grant-never-pending", auth_outbound=_device_grant_never_pending),
        Breakage("no-m-oauth-stage", outbound=_no_m_oauth_stage),
        Breakage(
            "metadata-without-registration", outbound=_metadata_without("registration_endpoint")
        ),
        Breakage("loopback-port-refused", auth_inbound=_loopback_port_refused),
        Breakage("unregistered-redirect-followed", auth_inbound=_unregistered_redirect_followed),
        Breakage("verifier-not-checked", auth_inbound=_verifier_not_checked),
        Breakage("redirect-not-compared", auth_inbound=_redirect_not_compared),
        Breakage("registration-refuses-native", auth_inbound=_registration_refuses_native),
        Breakage("registration-defaults-to-native", auth_inbound=_registration_defaults_to_native),
        Breakage("oauth-uia-obeyed", inbound=_oauth_uia_obeyed),
        Breakage("device-delete-action-ignored", auth_inbound=_device_delete_action_ignored),
        Breakage("oauth-delete-devices-allowed", inbound=_oauth_delete_devices_allowed),
        Breakage("oauth-uia-noop", inbound=_oauth_uia_noop),
        Breakage("identical-reupload-needs-uia", inbound=_identical_reupload_needs_uia),
        Breakage("garbage-versions", outbound=_garbage_versions),
        Breakage("versions-from-the-future", outbound=_versions_from_the_future),
        Breakage("setup-upload-refused", inbound=_setup_upload_refused),
        Breakage("uia-challenge-missing-token", inbound=_uia_challenge_is_missing_token),
        Breakage("returned-refresh-token-broken", outbound=_returned_refresh_token_broken),
        Breakage("locked-is-unknown-token", outbound=_locked_is_unknown_token),
        Breakage("locked-login-issues-token", outbound=_locked_login_issues_token),
        Breakage("locked-logout-refused", inbound=_locked_logout_refused),
        Breakage(
            "lock-revokes-tokens",
            inbound=_lock_revokes_tokens_in,
            outbound=_lock_revokes_tokens_out,
        ),
        Breakage("suspended-is-forbidden", outbound=_suspended_is_forbidden),
        Breakage("register-token-wrong-device", outbound=_register_token_wrong_device),
        Breakage("invalid-username-kept", inbound=_invalid_username_kept),
        Breakage(
            "deactivated-password-login-accepted", outbound=_deactivated_password_login_accepted
        ),
        Breakage(
            "logout-keeps-refreshed-token",
            inbound=_logout_keeps_refreshed_token_in,
            outbound=_logout_keeps_refreshed_token_out,
        ),
        Breakage("deactivated-login-token-accepted", outbound=_deactivated_login_token_accepted),
        Breakage("unrecognized-is-not-found", outbound=_unrecognized_is_not_found),
        Breakage("options-needs-token", inbound=_options_needs_token),
        Breakage("cors-without-authorization", outbound=_cors_without_authorization),
        Breakage("device-rename-ignored", inbound=_device_rename_ignored),
        Breakage("unknown-device-found", inbound=_unknown_device_found),
        Breakage("login-refusals-401", outbound=_login_refusals_401),
        Breakage("no-login-fallback", inbound=_no_login_fallback),
        Breakage("txn-not-replayed", inbound=_txn_not_replayed),
        Breakage("non-auth-error-is-401", outbound=_non_auth_error_is_401),
        Breakage("logout-needs-body", inbound=_logout_needs_body),
        Breakage("versions-refuses-token", inbound=_versions_refuses_token),
        Breakage("token-validity-true", inbound=_token_validity_true),
        Breakage("register-without-device", outbound=_register_without_device),
        Breakage("uia-3pid-stage-accepted", inbound=_uia_3pid_stage_accepted),
        Breakage("missing-token-403", outbound=_missing_token_403),
        Breakage(
            "logout-keeps-refresh-token", inbound=_keep_refresh_in, outbound=_keep_refresh_out
        ),
        Breakage("bad-json-login-500", inbound=_bad_json_is_500("/_matrix/client/v3/login")),
        Breakage("bad-json-register-500", inbound=_bad_json_is_500("/_matrix/client/v3/register")),
        Breakage("bad-json-refresh-plain", outbound=_bad_json_plain_errors),
        Breakage("bad-json-logout-500", inbound=_bad_json_is_500("/_matrix/client/v3/logout")),
        Breakage("login-accepts-malformed", inbound=_login_accepts_malformed),
        Breakage("password-change-without-auth", inbound=_password_change_without_auth),
        Breakage("dcr-crashes-on-bad-metadata", auth_inbound=_dcr_crashes_on_bad_metadata),
        Breakage("token-endpoint-bare-errors", auth_outbound=_token_endpoint_bare_errors),
        Breakage("token-without-id-token", auth_outbound=_token_response_without("id_token")),
        Breakage("discovery-without-jwks-uri", auth_outbound=_discovery_without("jwks_uri")),
    )
}
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
}


class BreakingProxy:
    """Runs on a loopback port; `breakage` can be switched between runs."""

    def __init__(
        self,
        upstream: str,
        breakage: str = "conformant",
        *,
        auth_server: str | None = None,
        homeserver: Any = None,
        verify: Any = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host  # another address of this machine: a target not on loopback
        self.auth_server = auth_server.rstrip("/") if auth_server else None
        self.homeserver = homeserver  # the OAuth server's client for Synapse's MAS API
        self.breakage = BREAKAGES[breakage]
        self.paths: list[str] = []  # every request's path, as received
        self._client = httpx.Client(timeout=30, verify=verify)  # verify: the upstreams' CA
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes on a kept-alive connection: without
            # TCP_NODELAY the body waits for the client's delayed ACK (about 40 ms a request)
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                ex = Exchange(
                    self.command,
                    self.path,
                    [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP],
                    self.rfile.read(length) if length else b"",
                    proxy=proxy,
                )
                proxy.paths.append(_path(ex))
                to_auth = proxy.auth_server is not None and is_auth_path(_path(ex))
                breakage = proxy.breakage
                (breakage.auth_inbound if to_auth else breakage.inbound)(ex)
                if not ex.status:
                    base = proxy.auth_server if to_auth else proxy.upstream
                    assert base is not None
                    upstream = proxy._client.request(
                        ex.method, base + ex.path, headers=ex.headers, content=ex.body
                    )
                    proxy._client.cookies.clear()  # users' cookies pass through, never kept
                    ex.status = upstream.status_code
                    ex.response_headers = {
                        k.lower(): v
                        for k, v in upstream.headers.items()
                        if k.lower() not in _HOP and k.lower() != "set-cookie"
                    }
                    ex.set_cookies = upstream.headers.get_list("set-cookie")
                    ex.response_body = upstream.content
                    if to_auth:
                        point_discovery_at_proxy(ex)
                        breakage.auth_outbound(ex)
                    else:
                        point_metadata_at_proxy(ex)
                        breakage.outbound(ex)
                self.send_response(ex.status)
                for key, value in (ex.response_headers or {}).items():
                    self.send_header(key, value)
                for cookie in ex.set_cookies or []:
                    self.send_header("set-cookie", cookie)
                self.send_header("content-length", str(len(ex.response_body)))
                self.end_headers()
                self.wfile.write(ex.response_body)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _handle

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def use(self, breakage: str) -> None:
        self.breakage = BREAKAGES[breakage]
        _first_unknown["left"] = 2
        _locking["tokens"] = set()
        _registered["tokens"] = set()

    def __enter__(self) -> BreakingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
