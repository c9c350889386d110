"""Tokens end with the run: after the OAuth users' cleanup, every token the run was issued
(a login's, a refresh rotation a check did by itself, a device grant's) is inactive on the
embedded OAuth server, even on a given account that cleanup never deactivates."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from mxconform.http.client import MatrixClient, Pacer, RequestPolicy, new_http_client, tls_context
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.legacy.users import UserNames
from mxconform.oauth.client import OAuthApi, discover, new_device_id, scope_for, token_set
from mxconform.oauth.drivers.mas_admin import MasAdminApi
from mxconform.oauth.origins import bind, named_origins
from mxconform.oauth.revocation import revoke_issued
from mxconform.oauth.tokens import IssuedTokens
from mxconform.oauth.users import OAuthUsers
from mxconform.spec.matchers import body
from mxconform.targets.config import OAuthAccount, OAuthConfig, SecretRef, Target
from mxconform.targets.lifecycle import RunningTarget

PASSWORD_VAR = "MXCONFORM_TEST_GIVEN_PASSWORD"


async def _device_grant(
    api: OAuthApi, users: OAuthUsers, client_id: str, account
) -> httpx.Response:
    start = body(await api.device_authorization(client_id, scope_for(new_device_id())))
    uri = start.get("verification_uri_complete") or start["verification_uri"]
    await users.driver.approve_device(account, uri, start["user_code"], api.client.recorder)
    for _ in range(10):
        await asyncio.sleep(start.get("interval", 1))
        resp = await api.poll_device(client_id, start["device_code"])
        if resp.status_code == 200:
            return resp
    raise AssertionError("the device grant never completed")


@pytest.mark.integration
async def test_every_token_the_run_was_issued_is_inactive_after_cleanup(
    synapse_oauth: RunningTarget, monkeypatch: pytest.MonkeyPatch
):
    admin = synapse_oauth.oauth_admin
    assert admin is not None and synapse_oauth.ca_file is not None
    password = "given-account-password-value"
    monkeypatch.setenv(PASSWORD_VAR, password)
    username = UserNames().next("given")
    target = Target(
        name="revoked",
        base_url=synapse_oauth.base_url,
        server_name="localhost",
        auth=["oauth"],
        oauth=OAuthConfig(
            driver="form",
            issuer=synapse_oauth.oauth_issuer,
            accounts=[OAuthAccount(username=username, password=SecretRef(f"${{{PASSWORD_VAR}}}"))],
        ),
    )
    # a remote target with a given account: no admin access, so nothing is deactivated
    running = dataclasses.replace(
        synapse_oauth, target=target, oauth_admin=None, oauth_issuer=None, embedded=None
    )
    tls = tls_context(None, True, str(synapse_oauth.ca_file))
    async with new_http_client(tls) as http:
        client = MatrixClient(
            http,
            running.base_url,
            Recorder(),
            SecretRegistry(),
            Pacer(1000),
            RequestPolicy(),
            tls=tls,
        )
        await MasAdminApi(admin).create_user(client, username, password)
        found, _ = await discover(client)
        assert found is not None
        metadata = bind(found, named_origins(target, running), target.name)
        users = OAuthUsers(target, running, metadata, client, client.secrets, UserNames())
        account = await users.account(client, "given")
        first = await users.login(client, account, "a login")
        api = OAuthApi(client, metadata, users.issued)  # as a check's `oauth` fixture
        rotated = token_set(await api.refresh(first.client_id, first.tokens.refresh_token))
        assert rotated is not None  # a rotation the check did not `track`
        second = await users.login(client, account, "another login")
        assert first.client_id is not None
        device = token_set(await _device_grant(api, users, first.client_id, account))
        assert device is not None  # a device grant the check did not `remember`
        pairs = [first.tokens, rotated, second.tokens, device]
        await users.cleanup(client)

        introspect = str(found.get("introspection_endpoint"))
        shared = synapse_oauth.held_secrets[0]  # only Synapse may introspect
        for pair in pairs:
            resp = await http.post(
                introspect,
                data={"token": pair.access_token},
                headers={"Authorization": f"Bearer {shared}"},
            )
            assert resp.json() == {"active": False}
            assert pair.refresh_token is not None
            again = await api.refresh(first.client_id, pair.refresh_token, "a revoked refresh")
            assert again.status_code == 400 and body(again)["error"] == "invalid_grant"
        assert users.housekeeping.problems == []
        assert users.housekeeping.devices_logged_out == 3  # two logins and the device grant


def test_the_ledger_groups_a_grant_with_its_refreshes_and_spares_the_operators_session():
    issued = IssuedTokens()
    issued.note({"client_id": "c1", "code": "x"}, "at1", "rt1")
    issued.note({"client_id": "c1", "refresh_token": "rt1"}, "at2", "rt2")
    issued.note({"client_id": "c2", "device_code": "d"}, "at3", None)
    issued.spare("given-at", "given-rt")
    issued.note({"client_id": "c3", "refresh_token": "given-rt"}, "at4", "rt4")
    issued.note({"client_id": "c3", "refresh_token": "rt4"}, "at5", "rt5")
    assert [(g.client_id, g.newest_first()) for g in issued.grants] == [
        (
            "c1",
            [
                ("rt2", "refresh_token"),
                ("at2", "access_token"),
                ("rt1", "refresh_token"),
                ("at1", "access_token"),
            ],
        ),
        ("c2", [("at3", "access_token")]),
    ]


async def test_tokens_are_never_sent_to_a_revocation_endpoint_servers_yaml_does_not_name():
    issued = IssuedTokens()
    issued.note({"client_id": "c"}, "at1", "rt1")
    sent: list[str] = []

    async def revoke(client_id: str | None, token: str, hint: str) -> int:
        sent.append(token)
        return 200

    kept = Housekeeping()
    named = frozenset({"https://matrix.example.org"})
    gate = asyncio.Semaphore(1)
    await revoke_issued(issued, revoke, "https://evil.example/revoke", named, kept, gate)
    assert sent == [] and kept.devices_logged_out == 0
    assert kept.problems == [
        "2 OAuth tokens of the run left live: the revocation endpoint is on "
        "https://evil.example, which servers.yaml does not name (https://matrix.example.org): "
        "nothing was sent there"
    ]
    await revoke_issued(issued, revoke, "https://matrix.example.org/revoke", named, kept, gate)
    assert sent == ["rt1", "at1"] and kept.devices_logged_out == 1
