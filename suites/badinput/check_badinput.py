"""Bad input: malformed bodies, drawn by hypothesis, sent to the auth endpoints.

The bodies (`mxconform.spec.badinput`): invalid JSON, JSON that is not an object, known fields
of the wrong type or left out, `auth` null or not an object or a stage that cannot complete,
oversized and non-ASCII strings, unknown keys, and wrong Content-Types. `--hypothesis-examples`
bounds them per endpoint; the run's seed (`run.hypothesis_seed` in results.json) replays them
with `--hypothesis-seed`.

Each body is judged on its own: a 4xx refusal with a Matrix error body (`errcode` and `error`)
or, on a UIA endpoint, a UIA challenge; for the OAuth endpoints an RFC 6749 / RFC 7591 error
body (`error`); never a 5xx; never a 2xx that did something (a token, an account, a deleted
device, a changed password), which is read back. Bad requests only touch the check's own
account: `/logout`, `/delete_devices` and `/account/password` carry the check's own user's
token, and no body ever carries its password.

Shrinking is by hand (hypothesis's shrinker would have to call the server synchronously from
inside the running event loop): the first body that breaks a rule is made smaller step by step
(`badinput.simpler`: keys dropped, strings halved), each step re-sent, within a budget; the
message shows the smallest body that still breaks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from mxconform.errors import NotApplicable, PreconditionFailed
from mxconform.http.credentials import NO_CREDENTIALS, Credentials, bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.devices import extra_device
from mxconform.legacy.readback import password_taken
from mxconform.oauth.client import native_client
from mxconform.plugin.state import get_run
from mxconform.spec import badinput
from mxconform.spec.badinput import BadBody, Shape
from mxconform.spec.matchers import body, match, require
from mxconform.spec.verdicts import note, precondition, unmet

legacy_ok = match.status(200)
SHRINK_BUDGET = 12  # re-sends spent making a failing body smaller
V3 = legacy.CLIENT_V3


@dataclass(frozen=True)
class Broken:
    req: str
    message: str
    expected: str
    observed: str


Send = Callable[[BadBody], Awaitable[httpx.Response]]
Judge = Callable[[BadBody, httpx.Response], Awaitable[Broken | None]]


def _matrix_error(resp: httpx.Response, *, uia: bool) -> Broken | None:
    """A 4xx with a Matrix error body (or a UIA challenge), never a 5xx; 2xx is judged by
    the caller (it needs a read-back)."""
    data = body(resp)
    status = resp.status_code
    if status >= 500:
        return Broken(
            "API-BAD-JSON",
            f"HTTP {status}: a server error for a malformed request",
            "a 4xx refusal",
            f"HTTP {status}",
        )
    if not 400 <= status < 500:
        return Broken("API-BAD-JSON", f"HTTP {status}", "a 4xx refusal", f"HTTP {status}")
    if uia and status == 401 and isinstance(data, dict) and "flows" in data:
        return None  # a UIA challenge: the body still needs a completed stage
    if not (isinstance(data, dict) and "errcode" in data and "error" in data):
        return Broken(
            "API-ERR-SHAPE",
            f"HTTP {status} without a standard error body",
            "a JSON object with errcode and error",
            f"HTTP {status} {resp.headers.get('content-type')!r}: {resp.text[:120]!r}",
        )
    return None


def _oauth_error(resp: httpx.Response, req: str) -> Broken | None:
    status = resp.status_code
    data = body(resp)
    if status >= 500 or not 400 <= status < 500:
        return Broken(req, f"HTTP {status} for a malformed request", "a 4xx refusal", str(status))
    if not (isinstance(data, dict) and isinstance(data.get("error"), str)):
        return Broken(
            req,
            f"HTTP {status} without an OAuth error body",
            "a JSON object with an error code",
            f"HTTP {status}: {resp.text[:120]!r}",
        )
    return None


def _done(what: str, resp: httpx.Response, req: str = "API-BAD-JSON") -> Broken:
    return Broken(
        req,
        f"HTTP {resp.status_code} to a malformed request: {what}",
        "a 4xx refusal, nothing done",
        f"HTTP {resp.status_code}; {what}",
    )


async def explore(
    request: pytest.FixtureRequest, shape: Shape, user: str, send: Send, judge: Judge
):
    """Draw the bodies, send each, judge each; shrink the first that breaks a rule."""
    run = get_run(request.config)
    examples = badinput.draw_examples(
        badinput.bodies(shape, user), run.hypothesis_examples, run.hypothesis_seed
    )
    kinds = sorted({e.kind for e in examples})
    note(f"{len(examples)} bodies (seed {run.hypothesis_seed}): {', '.join(kinds)}")
    for example in examples:
        broken = await judge(example, await send(example))
        if broken is None:
            continue
        smallest, budget = example, SHRINK_BUDGET
        improved = True
        while improved and budget > 0:
            improved = False
            for candidate in badinput.simpler(smallest):
                if budget <= 0:
                    break
                budget -= 1
                again = await judge(candidate, await send(candidate))
                if again is not None and again.req == broken.req:
                    smallest, broken, improved = candidate, again, True
                    break
        unmet(
            f"{broken.message}; smallest failing body: {smallest.describe()}",
            req=broken.req,
            expected=broken.expected,
            observed=broken.observed,
        )


def sender(
    hs, path: str, credentials: Credentials = NO_CREDENTIALS, origins: frozenset[str] = frozenset()
) -> Send:
    """POST each example to `path`; `origins`: the OAuth server's, as servers.yaml names them
    (a bad body may still hold a value the run keeps secret)."""

    async def send(example: BadBody) -> httpx.Response:
        return await hs.request(
            "POST",
            path,
            content=example.content,
            headers=example.headers(),
            credentials=credentials,
            note=f"bad input: {example.kind}",
            allow_origins=origins,
        )

    return send


# ---- legacy: no token ----------------------------------------------------------------------


@pytest.mark.api("legacy")
@pytest.mark.check("badinput.login", "API-BAD-JSON", "API-ERR-SHAPE")
async def check_login_refuses_malformed_bodies(hs, fresh_user, request):
    """POST /login with malformed bodies: 4xx Matrix errors, never 5xx, never a token."""
    shape = Shape(
        base={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": fresh_user.user_id},
            "password": "mxconform-wrong-password",
        },
        fields={
            "type": "string",
            "identifier": "object",
            "password": "string",
            "device_id": "string",
            "initial_device_display_name": "string",
            "refresh_token": "bool",
        },
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            who = await legacy.whoami(hs, legacy.bearer_of(resp), note="read-back: token live?")
            return _done(f"a login answered (the token then answers HTTP {who.status_code})", resp)
        return _matrix_error(resp, uia=False)

    await explore(request, shape, fresh_user.user_id, sender(hs, f"{V3}/login"), judge)


@pytest.mark.api("legacy")
@pytest.mark.check("badinput.register", "API-BAD-JSON", "API-ERR-SHAPE")
async def check_register_refuses_malformed_bodies(hs, request):
    """POST /register with malformed bodies (never a stage that can complete): 4xx Matrix
    errors or a UIA challenge, never 5xx, never an account."""
    name = get_run(request.config).names.next("badinput")
    shape = Shape(
        base={"username": name, "password": "mxconform-bad-input-password"},
        fields={
            "username": "string",
            "password": "string",
            "device_id": "string",
            "initial_device_display_name": "string",
            "inhibit_login": "bool",
            "refresh_token": "bool",
        },
        auth=True,
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            return _done(f"registered {body(resp).get('user_id') if body(resp) else '?'}", resp)
        return _matrix_error(resp, uia=True)

    await explore(request, shape, f"@{name}:invalid", sender(hs, f"{V3}/register"), judge)


@pytest.mark.api("legacy")
@pytest.mark.check("badinput.refresh", "API-BAD-JSON", "API-ERR-SHAPE")
async def check_refresh_refuses_malformed_bodies(hs, request):
    """POST /refresh with malformed bodies: 4xx Matrix errors, never 5xx, never a token."""
    shape = Shape(
        base={"refresh_token": "mxconform-never-issued-refresh-token"},
        fields={"refresh_token": "string"},
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            return _done("a token pair issued", resp)
        return _matrix_error(resp, uia=False)

    await explore(request, shape, "@nobody:invalid", sender(hs, f"{V3}/refresh"), judge)


# ---- legacy: the check's own token -----------------------------------------------------------


@pytest.mark.api("legacy")
@pytest.mark.check("badinput.logout", "API-BAD-JSON", "API-ERR-SHAPE", "LOGOUT-1")
async def check_logout_with_malformed_bodies(hs, fresh_user, legacy_users, request):
    """POST /logout (a device of the check's own) with malformed bodies: the body may be
    ignored (200, and the token is then refused) or refused (4xx Matrix error, and the token
    still works); never 5xx."""
    shape = Shape(base={}, fields={})
    sent_with: dict[int, Credentials] = {}  # each body goes out with a device of its own

    async def send(example: BadBody) -> httpx.Response:
        # a newly provisioned account's device, not a login: logins are what servers
        # rate-limit hardest, and this check judges /logout
        with precondition("provisioning a device to log out"):
            device = await legacy_users.fresh(hs)
        creds = bearer_header(device.access_token)
        resp = await sender(hs, f"{V3}/logout", creds)(example)
        sent_with[id(resp)] = creds
        return resp

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        creds = sent_with.pop(id(resp))
        if resp.status_code >= 500:
            return _matrix_error(resp, uia=False)
        after = await legacy.whoami(hs, creds, note="read-back: is the token still live?")
        if resp.is_success:
            if after.status_code != 401:
                return Broken(
                    "LOGOUT-1",
                    f"logout answered HTTP {resp.status_code} but the token still answers "
                    f"HTTP {after.status_code}",
                    "the token refused after a 2xx logout",
                    f"whoami HTTP {after.status_code}",
                )
            return None
        broken = _matrix_error(resp, uia=False)
        if broken is None and after.status_code != 200:
            return _done(f"refused, yet the token now answers HTTP {after.status_code}", resp)
        return broken

    await explore(request, shape, fresh_user.user_id, send, judge)


async def _device_ids(hs, user) -> set[str]:
    listed = await legacy.devices(hs, bearer_header(user.access_token))
    require(listed, legacy_ok, what="reading the devices back")
    return legacy.device_ids(listed)


@pytest.mark.destructive  # a server that ignored the malformed body would delete a device
@pytest.mark.api("legacy")
@pytest.mark.check("badinput.delete-devices", "API-BAD-JSON", "API-ERR-SHAPE", "UIA-NOAUTH-401")
async def check_delete_devices_refuses_malformed_bodies(hs, fresh_user, legacy_users, request):
    """POST /delete_devices (the check's own second device, no completed stage) with
    malformed bodies: 4xx Matrix errors or a UIA challenge, never 5xx, no device deleted."""
    with precondition("a second device"):
        second = await extra_device(hs, legacy_users, fresh_user)
        before = await _device_ids(hs, fresh_user)
    shape = Shape(
        base={"devices": [second.device_id]},
        fields={"devices": "list", "auth": "object"},
        auth=True,
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            gone = before - await _device_ids(hs, fresh_user)
            return _done(f"devices deleted: {sorted(gone) or 'none'}", resp, "UIA-NOAUTH-401")
        return _matrix_error(resp, uia=True)

    creds = bearer_header(fresh_user.access_token)
    await explore(
        request, shape, fresh_user.user_id, sender(hs, f"{V3}/delete_devices", creds), judge
    )
    gone = before - await _device_ids(hs, fresh_user)
    if gone:
        unmet(
            f"devices deleted by refused malformed requests: {sorted(gone)}",
            req="API-BAD-JSON",
            expected=sorted(before),
            observed=sorted(before - gone),
        )


@pytest.mark.destructive  # a server that ignored the malformed body would change the password
@pytest.mark.api("legacy")
@pytest.mark.check("badinput.account-password", "API-BAD-JSON", "API-ERR-SHAPE", "UIA-NOAUTH-401")
async def check_password_change_refuses_malformed_bodies(hs, fresh_user, request):
    """POST /account/password (the check's own account, no completed stage) with malformed
    bodies: 4xx Matrix errors or a UIA challenge, never 5xx; the password is unchanged."""
    shape = Shape(
        base={"new_password": "mxconform-bad-input-new-password", "logout_devices": False},
        fields={"new_password": "string", "logout_devices": "bool", "auth": "object"},
        auth=True,
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            _, seen = await password_taken(hs, fresh_user, fresh_user.password)
            return _done(f"then the old password: {seen}", resp, "UIA-NOAUTH-401")
        return _matrix_error(resp, uia=True)

    creds = bearer_header(fresh_user.access_token)
    send = sender(hs, f"{V3}/account/password", creds)
    await explore(request, shape, fresh_user.user_id, send, judge)
    taken, seen = await password_taken(hs, fresh_user, fresh_user.password)
    if taken is None:
        raise PreconditionFailed(f"precondition failed: reading the password back: {seen}")
    if not taken:
        unmet(
            "the old password is no longer the account's after refused malformed requests",
            req="API-BAD-JSON",
            expected="the old password accepted",
            observed=seen,
        )


# ---- OAuth: client registration and the token endpoint -------------------------------------

NOT_JSON_KINDS = ("invalid-json", "not-object")


@pytest.mark.api("oauth")
@pytest.mark.check("badinput.oauth.registration", "OAUTH-DCR-ERR")
async def check_client_registration_refuses_malformed_metadata(hs, oauth_metadata, request):
    """POST registration_endpoint with malformed metadata: a 4xx with an RFC 7591 `error`,
    never 5xx; a body that is not a JSON object never registers a client (other bodies may
    be accepted with values replaced, RFC 7591 §2, but then with a client_id)."""
    if not oauth_metadata.get("registration_endpoint"):
        raise NotApplicable("the server offers no registration_endpoint")
    shape = Shape(
        base=native_client(["http://127.0.0.1/callback"]),
        fields={
            "redirect_uris": "list",
            "client_uri": "string",
            "client_name": "string",
            "application_type": "string",
            "grant_types": "list",
            "response_types": "list",
            "token_endpoint_auth_method": "string",
        },
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            form = example.content_type not in (badinput.JSON, None, "text/plain")
            if example.kind in NOT_JSON_KINDS or form:
                return _done("a client registered", resp, "OAUTH-DCR-ERR")
            data = body(resp)
            if not (isinstance(data, dict) and isinstance(data.get("client_id"), str)):
                return _done("no client_id in the answer", resp, "OAUTH-DCR-ERR")
            return None
        return _oauth_error(resp, "OAUTH-DCR-ERR")

    send = sender(
        hs, oauth_metadata.endpoint("registration_endpoint"), origins=oauth_metadata.origins
    )
    await explore(request, shape, "@nobody:invalid", send, judge)


@pytest.mark.api("oauth")
@pytest.mark.check("badinput.oauth.token", "OAUTH-TOKEN-ERR")
async def check_token_endpoint_refuses_malformed_requests(hs, oauth_metadata, oauth_users, request):
    """POST token_endpoint with malformed requests (never a grant that exists): a 4xx with
    an RFC 6749 `error`, never 5xx, never a token."""
    with precondition("the harness's own registered client"):
        client_id = await oauth_users.client_id(hs)
    shape = Shape(
        base={
            "grant_type": "refresh_token",
            "refresh_token": "mxconform-never-issued-refresh-token",
            "client_id": client_id,
        },
        fields={"grant_type": "string", "refresh_token": "string", "client_id": "string"},
        form=True,
    )

    async def judge(example: BadBody, resp: httpx.Response) -> Broken | None:
        if resp.is_success:
            return _done("a token issued", resp, "OAUTH-TOKEN-ERR")
        return _oauth_error(resp, "OAUTH-TOKEN-ERR")

    send = sender(hs, oauth_metadata.endpoint("token_endpoint"), origins=oauth_metadata.origins)
    await explore(request, shape, "@nobody:invalid", send, judge)
