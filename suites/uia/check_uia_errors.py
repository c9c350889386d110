"""UIA details beyond the eight operations' challenge and completion: a password stage naming an
unknown third-party identifier, an error that has nothing to do with authentication, and a
login whose device ID collides with a cross-signing key. All on the check's own account."""

import pytest

from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.devices import extra_device
from mxconform.legacy.uia import cross_signing_keys, master_key_id, upload_first_keys
from mxconform.spec.matchers import body, expect, expect_true, match, require
from mxconform.spec.verdicts import precondition

pytestmark = pytest.mark.api("legacy")


async def open_session(hs, users, user):
    """A second device of `user`, and a UIA session opened to delete it."""
    device = (await extra_device(hs, users, user)).device_id
    first = await legacy.delete_devices(hs, bearer_header(user.access_token), [device])
    require(first, match.status(401), match.flows_of_stages(), what="the UIA challenge")
    return device, body(first).get("session")


@pytest.mark.check("uia.password.unknown-3pid", "UIA-PASSWORD-3PID")
async def check_password_stage_with_unknown_3pid_is_forbidden(hs, fresh_user, legacy_users):
    """A password stage naming an e-mail address no account has fails with 403."""
    device, session = await open_session(hs, legacy_users, fresh_user)
    address = f"{legacy_users.unused_name('3pid')}@mxconform.invalid"
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
        "password": fresh_user.password,
        **({"session": session} if session else {}),
    }
    resp = await legacy.delete_devices(hs, bearer_header(fresh_user.access_token), [device], auth)
    expect(resp, match.status(403))
    after = legacy.device_ids(await legacy.devices(hs, bearer_header(fresh_user.access_token)))
    expect_true(device in after, "the device is still listed", expected=device, observed=after)


@pytest.mark.check("uia.other-errors", "UIA-OTHER-ERRORS", "API-ERR-SHAPE")
async def check_non_auth_error_is_a_plain_matrix_error(hs, fresh_user, legacy_users):
    """A completed password stage on a malformed request gets a plain 4xx Matrix error
    (`devices` not a list), not a 401 challenge, and nothing is deleted."""
    device, session = await open_session(hs, legacy_users, fresh_user)
    resp = await hs.request(
        "POST",
        "/_matrix/client/v3/delete_devices",
        json={
            "devices": device,  # a string, not a list
            "auth": legacy.password_auth(fresh_user.user_id, fresh_user.password, session),
        },
        credentials=bearer_header(fresh_user.access_token),
    )
    expect(
        resp,
        match.status_in((400, 403, 404, 422), "a 4xx other than 401"),
        match.json_keys_present("errcode", "error"),
    )
    after = legacy.device_ids(await legacy.devices(hs, bearer_header(fresh_user.access_token)))
    expect_true(device in after, "the device is still listed", expected=device, observed=after)


@pytest.mark.destructive  # sets the account's cross-signing identity
@pytest.mark.check("legacy.login.device-is-xsign-key", "DEVICE-XSIGN-CLASH")
async def check_login_with_a_cross_signing_key_id_is_forbidden(hs, fresh_user):
    """A login whose device_id is the user's master cross-signing key ID is refused 403."""
    keys = cross_signing_keys(fresh_user.user_id)
    with precondition("a first set of cross-signing keys"):
        await upload_first_keys(hs, fresh_user, keys)  # through UIA before v1.11
    key_id = master_key_id(keys).split(":", 1)[-1]
    resp = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, device_id=key_id
    )
    expect(resp, match.status(403), match.errcode("M_FORBIDDEN"))
