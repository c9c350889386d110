"""The device authorisation grant (RFC 8628, v1.18) and registration through prompt=create,
each when the server advertises it."""

import asyncio
import time

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.oauth.client import DEVICE_CODE_GRANT, new_device_id, scope_for
from mxconform.oauth.drivers.base import Account, NoRegistrationPage
from mxconform.spec.matchers import body, expect, expect_true, match
from mxconform.spec.verdicts import unmet

pytestmark = pytest.mark.api("oauth")


@pytest.mark.check("oauth.device.grant", "OAUTH-DEVICE-REQ", "OAUTH-DEVICE-POLL")
async def check_device_grant_completes(hs, oauth, oauth_users, account):
    """The device grant: a user code, `authorization_pending` while waiting, and once the
    user approves, tokens with a refresh token and the scope."""
    if not oauth.metadata.supports("grant_types_supported", DEVICE_CODE_GRANT):
        raise NotApplicable("the server does not advertise the device authorisation grant")
    client_id = await oauth_users.client_id(hs)
    device = new_device_id()
    start = await oauth.device_authorization(client_id, scope_for(device))
    expect(
        start,
        match.status(200),
        match.json_keys_present("device_code", "user_code", "verification_uri", "expires_in"),
    )
    data = body(start)
    pending = await oauth.poll_device(client_id, data["device_code"])
    expect(pending, match.oauth_error("authorization_pending", "slow_down"))
    if pending.status_code != 400:
        unmet(
            f"a pending device grant answers HTTP {pending.status_code}: a token error "
            "response is HTTP 400 (RFC 6749 section 5.2, RFC 8628 section 3.5)",
            req="OAUTH-DEVICE-POLL",
            expected="HTTP 400",
            observed=f"HTTP {pending.status_code}",
        )
    uri = data.get("verification_uri_complete") or data["verification_uri"]
    await oauth_users.driver.approve_device(account, uri, data["user_code"], hs.recorder)
    interval = data.get("interval", 5) if isinstance(data.get("interval"), int) else 5
    deadline = time.monotonic() + 3 * interval + 10
    while True:
        await asyncio.sleep(interval)
        resp = await oauth.poll_device(client_id, data["device_code"])
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        if (body(resp) or {}).get("error") == "slow_down":
            interval += 5
    expect(
        resp,
        match.status(200),
        match.json_key_type("access_token", str, absent_ok=False),
        match.json_key_type("refresh_token", str, absent_ok=False),
        match.json_key_type("scope", str, absent_ok=False),
    )
    oauth_users.remember(account, resp, client_id, device)
    who = await legacy.whoami(hs, bearer_header(body(resp)["access_token"]))
    expect(
        who,
        match.status(200),
        match.json_key_equal("device_id", device),
        req="OAUTH-SCOPE-DEVICE-ONE",
    )


@pytest.mark.destructive
@pytest.mark.check("oauth.authz.prompt-create", "OAUTH-PROMPT-CREATE")
async def check_prompt_create_shows_registration(hs, oauth, oauth_users, target):
    """With prompt=create the server shows its registration UI; the new account works."""
    if not oauth.metadata.supports("prompt_values_supported", "create"):
        raise NotApplicable("the server does not advertise prompt=create")
    username = oauth_users.unused_name("create")
    account = Account(username, oauth_users.new_password(), f"@{username}:{target.server_name}")
    try:
        grant = await oauth_users.code_grant(hs, account, create=True, prompt="create")
    except NoRegistrationPage as exc:
        unmet(
            str(exc),
            req="OAUTH-PROMPT-CREATE",
            expected="a registration page",
            observed="a login page",
        )
        return
    oauth_users.adopt(account)
    expect(grant.exchange, match.status(200), req="OAUTH-TOKEN-AC")
    who = await legacy.whoami(hs, bearer_header(grant.login.tokens.access_token))
    expect_true(
        (body(who) or {}).get("user_id") == account.user_id,
        "the token from the registration does not belong to the new account",
        observed=(body(who) or {}).get("user_id"),
    )
