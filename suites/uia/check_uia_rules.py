"""UIA rules beyond one operation: cross-signing uploads that need no UIA, the fallback page,
and what a server does with a session replayed or changed (recorded where the spec is silent).
"""

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.devices import extra_device
from mxconform.legacy.uia import (
    cross_signing_keys,
    master_key_id,
    stored_master_key,
    upload_cross_signing,
    upload_first_keys,
)
from mxconform.spec.matchers import body, expect, expect_true, match, require
from mxconform.spec.verdicts import observe

pytestmark = pytest.mark.api("legacy")


@pytest.mark.destructive  # sets the account's cross-signing identity
@pytest.mark.check("uia.cross-signing.first-upload", "XSIGN-UIA-EXEMPT")
async def check_first_cross_signing_upload_needs_no_uia(hs, fresh_user):
    """The first upload of cross-signing keys succeeds without UIA, and the keys are stored."""
    keys = cross_signing_keys(fresh_user.user_id)
    resp = await upload_cross_signing(hs, fresh_user, keys)
    expect(resp, match.status(200))
    stored = await stored_master_key(hs, fresh_user)
    expect_true(
        stored == master_key_id(keys),
        "the uploaded master key is stored",
        expected=master_key_id(keys),
        observed=stored,
    )


@pytest.mark.destructive  # sets the account's cross-signing identity
@pytest.mark.check("uia.cross-signing.identical-reupload", "XSIGN-UIA-EXEMPT")
async def check_identical_reupload_needs_no_uia(hs, fresh_user):
    """Uploading exactly the stored cross-signing keys again succeeds without UIA (v1.11).
    The first upload goes through the password stage where the server asks for it (a server
    whose first upload needs UIA breaks another rule, judged by the first-upload check)."""
    keys = cross_signing_keys(fresh_user.user_id)
    await upload_first_keys(hs, fresh_user, keys)
    expect(await upload_cross_signing(hs, fresh_user, keys), match.status(200))


async def delete_devices_session(hs, users, user):
    """Two extra devices of `user`, and a UIA session opened to delete the first."""
    devices = [(await extra_device(hs, users, user)).device_id for _ in range(2)]
    first = await legacy.delete_devices(hs, bearer_header(user.access_token), devices[:1])
    require(first, match.status(401), match.flows_of_stages(), what="the UIA challenge")
    session = body(first).get("session")
    if session is None:
        raise NotApplicable("the server gave no UIA session (the spec makes it optional)")
    return devices, session


async def complete_deleting(hs, user, devices, session):
    auth = legacy.password_auth(user.user_id, user.password, session)
    return await legacy.delete_devices(hs, bearer_header(user.access_token), devices, auth)


async def listed(hs, user):
    return legacy.device_ids(await legacy.devices(hs, bearer_header(user.access_token)))


@pytest.mark.check("uia.fallback-page", "UIA-FALLBACK-PAGE")
async def check_password_fallback_page_is_html(hs, fresh_user, legacy_users):
    """The fallback page of the password stage answers an HTML page for an open session."""
    _, session = await delete_devices_session(hs, legacy_users, fresh_user)
    resp = await legacy.fallback_page(hs, "m.login.password", session)
    expect(resp, match.status(200), match.content_type("text/html"))


@pytest.mark.check("uia.session.replay", "UIA-SESSION-SCOPE")
async def check_completed_session_replayed_for_another_request(hs, fresh_user, legacy_users):
    """A session completed for one request, replayed for a different one: recorded."""
    devices, session = await delete_devices_session(hs, legacy_users, fresh_user)
    done = await complete_deleting(hs, fresh_user, devices[:1], session)
    require(done, match.status(200), what="completing the first deletion")
    replay = await legacy.delete_device(
        hs, bearer_header(fresh_user.access_token), devices[1], {"session": session}
    )
    if replay.status_code >= 400:
        expect(replay, match.json_keys_present("errcode"), req="API-ERR-SHAPE")
    still = devices[1] in await listed(hs, fresh_user)
    observe(
        f"replay on another endpoint: HTTP {replay.status_code} "
        f"{(body(replay) or {}).get('errcode')}; other device still there: {still}"
    )


@pytest.mark.check("uia.session.body-change", "UIA-SESSION-SCOPE")
async def check_body_changed_mid_session(hs, fresh_user, legacy_users):
    """A UIA session opened for one body and completed with another: recorded."""
    devices, session = await delete_devices_session(hs, legacy_users, fresh_user)
    resp = await complete_deleting(hs, fresh_user, devices[1:], session)
    remaining = await listed(hs, fresh_user)
    observe(
        f"completed with a changed body: HTTP {resp.status_code}; first device deleted: "
        f"{devices[0] not in remaining}; second (the new body's) deleted: "
        f"{devices[1] not in remaining}"
    )
