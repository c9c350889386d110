"""Account management (v1.18): the actions a server advertises work in its web UI."""

from urllib.parse import urlencode

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.oauth.revocation import refusal_delay
from mxconform.spec.matchers import expect_true
from mxconform.spec.verdicts import note

pytestmark = pytest.mark.api("oauth")

DEVICE_DELETE = "org.matrix.device_delete"


@pytest.mark.check("oauth.account.device-delete", "OAUTH-ACCT-WEB", "OAUTH-ACCT-PARAMS")
async def check_device_delete_action_signs_the_device_out(
    hs, oauth, oauth_users, oauth_account, grace
):
    """With device_delete advertised, approving it on the account page for a device_id signs
    that device out: it leaves /devices and its token is refused; the other device stays."""
    uri = oauth.metadata.get("account_management_uri")
    if not isinstance(uri, str) or not oauth.metadata.supports(
        "account_management_actions_supported", DEVICE_DELETE
    ):
        raise NotApplicable(f"the server does not advertise {DEVICE_DELETE}")
    stays = await oauth_users.login(hs, oauth_account, "a device that stays")
    goes = await oauth_users.login(hs, oauth_account, "a device to sign out on the account page")
    query = urlencode({"action": DEVICE_DELETE, "device_id": goes.device_id})
    await oauth_users.driver.approve(
        oauth_account, uri + ("&" if "?" in uri else "?") + query, hs.recorder
    )
    delay, status = await refusal_delay(hs, goes.tokens.access_token, grace)
    listed = legacy.device_ids(await legacy.devices(hs, bearer_header(stays.tokens.access_token)))
    expect_true(
        delay is not None and goes.device_id not in listed and stays.device_id in listed,
        f"after {DEVICE_DELETE} for {goes.device_id}: its token answers HTTP {status}; "
        f"devices listed: {listed}",
        expected=f"{goes.device_id} gone and refused, {stays.device_id} kept",
        observed={"token": f"HTTP {status}", "devices": listed},
    )
    note(f"the signed-out device's token was refused {delay:.1f}s later")
