"""Legacy registration: the UIA challenge, username checks before UIA, availability, and
inhibit_login. Names are run-unique, and any account made here is cleaned up."""

import re

import pytest

from mxconform.errors import NotApplicable, Unsupported
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body, expect, expect_uia_challenge, match, require
from mxconform.spec.verdicts import observe, unmet

pytestmark = pytest.mark.api("legacy")

INVALID_NAME = "not a valid\u00a0name!"
# The localpart grammar for new user IDs (appendices: user identifiers).
VALID_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")


def skip_if_closed(resp):
    """Registration turned off is the server's configuration, not a rule it breaks: every
    check that needs it SKIPs (`/register/available` answers so too on Synapse)."""
    if resp.status_code == 403 and (body(resp) or {}).get("errcode") == "M_FORBIDDEN":
        raise NotApplicable(
            "the server has registration turned off (403 M_FORBIDDEN): configuration"
        )


@pytest.mark.check("legacy.register.challenge", "REG-UIA", "UIA-401-SHAPE")
async def check_registration_starts_with_a_uia_challenge(hs, legacy_users):
    """POST /register without auth answers 401 with flows of stages (and a session string,
    which the spec makes optional), and registers nobody."""
    name = legacy_users.unused_name("reg")
    resp = await legacy.register(hs, {"username": name, "password": "not-used-Passw0rd"})
    skip_if_closed(resp)
    expect_uia_challenge(resp)
    listed = await legacy.register_available(hs, name)
    skip_if_closed(listed)
    expect(listed, match.status(200), match.json_key_equal("available", True), req="REG-UIA")


@pytest.mark.check("legacy.register.in-use", "REG-PRECHECK-BEFORE-UIA")
async def check_taken_username_is_refused_before_uia(hs, fresh_user):
    """A taken username is refused with 400 M_USER_IN_USE before any UIA challenge."""
    resp = await legacy.register(
        hs, {"username": fresh_user.localpart, "password": "not-used-Passw0rd"}
    )
    skip_if_closed(resp)
    expect(resp, match.status(400), match.errcode("M_USER_IN_USE"))


@pytest.mark.check("legacy.register.invalid-username", "REG-PRECHECK-BEFORE-UIA", "REG-USERNAME")
async def check_invalid_username_is_refused_or_mapped(hs, legacy_users):
    """An ungrammatical username is refused with 400 M_INVALID_USERNAME before UIA, or mapped:
    then the registration is completed and the localpart actually made must be valid."""
    request = {"username": INVALID_NAME, "password": legacy_users.new_password()}
    resp = await legacy.register(hs, request)
    skip_if_closed(resp)
    if resp.status_code != 401:
        expect(resp, match.status(400), match.errcode("M_INVALID_USERNAME"))
        return
    auth = legacy.dummy_stage(resp)
    if auth is None:
        observe("the server started UIA for the name (mapping it), with no stage to complete")
        return
    done = await legacy.register(hs, {**request, "auth": auth})
    require(done, match.status(200), what="completing the registration (dummy stage)")
    user_id = str(body(done).get("user_id"))
    legacy_users.adopt(user_id, request["password"])
    localpart = user_id[1:].split(":", 1)[0]
    observe(f"the name was mapped to the localpart {localpart!r}")
    if not VALID_LOCALPART.fullmatch(localpart):
        unmet(
            f"the server registered the ungrammatical name as {user_id!r}",
            req="REG-USERNAME",
            expected="a localpart of a-z, 0-9 and ._=-/+ only",
            observed=repr(localpart),
        )


@pytest.mark.check("legacy.register.available", "REG-AVAILABLE")
async def check_availability_of_free_and_taken_names(hs, fresh_user, legacy_users):
    """GET /register/available says true for a free name and 400 M_USER_IN_USE for a taken one."""
    free = await legacy.register_available(hs, legacy_users.unused_name("free"))
    skip_if_closed(free)
    expect(free, match.status(200), match.json_key_equal("available", True))
    taken = await legacy.register_available(hs, fresh_user.localpart)
    expect(taken, match.status(400), match.errcode("M_USER_IN_USE"))


@pytest.mark.check("legacy.register.inhibit-login", "REG-INHIBIT-LOGIN")
async def check_inhibit_login_returns_no_token(hs, legacy_users):
    """Registration with inhibit_login answers the user ID without access token or device."""
    name, password = legacy_users.registration("inhibit")
    request = {"username": name, "password": password, "inhibit_login": True}
    challenge = await legacy.register(hs, request)
    skip_if_closed(challenge)
    auth = legacy.dummy_stage(challenge)
    if auth is None:
        flows = [f.get("stages") for f in (body(challenge) or {}).get("flows", [])]
        raise Unsupported(f"registration needs stages the harness cannot complete here: {flows}")
    request["auth"] = auth
    resp = await legacy.register(hs, request)
    expect(resp, match.status(200), match.json_key_type("user_id", str, absent_ok=False))
    legacy_users.adopt(body(resp)["user_id"], password)
    expect(
        resp,
        match.json_key_absent("access_token"),
        match.json_key_absent("device_id"),
        match.json_key_absent("refresh_token"),
    )
